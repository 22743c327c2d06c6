"""Video input: a video file or a folder of images, streamed one upright BGR frame at a time.

`open_video` checks the source (it decodes the first selected frame) and returns a `VideoSource`;
iterating the source yields ``(index_in_source, frame)`` pairs without ever holding the clip in memory.

Rotation
--------
Phones store portrait video as landscape frames plus a rotation tag (the mp4 'tkhd' display matrix).
OpenCV 4.11's FFmpeg backend reports the tag as ``CAP_PROP_ORIENTATION_META`` (degrees the frame must
turn *clockwise* to display upright: 90 for a phone held upright) and would apply it itself when
``CAP_PROP_ORIENTATION_AUTO`` is on, but in this build that switch reads 0 (off) after opening a file.
We switch it off explicitly and turn each frame with ``cv2.rotate`` ourselves, so the output is
upright whatever the backend's default; if a backend refuses to switch it off and reports it on, its
own rotation is trusted instead. ``VideoSource.width`` / ``height`` are the upright sizes.

Truncated files
---------------
A file that opens but whose frames stop early (a cut download or copy) yields every frame that decodes;
after iteration ``source.truncated`` is True and ``source.warning`` says how many frames were read.
A file where not even the first selected frame decodes raises `CaptureError` from `open_video`.

Library noise
-------------
FFmpeg (``[mov,mp4,m4a,3gp,3g2,mj2 @ 0x...] moov atom not found``, ``[h264 @ ...] Invalid NAL unit size``)
and OpenCV (``[ WARN:0@0.01] global cap.cpp:215 open VIDEOIO(FFMPEG): ...``) write straight to the
process's stderr from C. A bad file already ends in one `CaptureError` that says what is wrong, so before
OpenCV is first used `_cv2` quiets both: ``OPENCV_FFMPEG_LOGLEVEL=-8`` (FFmpeg's AV_LOG_QUIET) and
``OPENCV_LOG_LEVEL=SILENT``. Both are defaults only: set either variable to see the libraries' own lines
(e.g. ``OPENCV_FFMPEG_LOGLEVEL=24 OPENCV_LOG_LEVEL=INFO`` while debugging a file).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import CaptureError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
FOLDER_FPS = 30.0

# FourCC (as OpenCV reports it) -> the codec name users know.
_CODEC_NAMES = {
    "avc1": "h264", "h264": "h264", "x264": "h264",
    "hvc1": "hevc", "hev1": "hevc", "hevc": "hevc", "h265": "hevc",
    "fmp4": "mpeg4", "mp4v": "mpeg4", "xvid": "mpeg4", "divx": "mpeg4",
    "mjpg": "mjpeg", "av01": "av1", "vp09": "vp9", "vp80": "vp8", "apcn": "prores", "apch": "prores",
}


# Read by OpenCV when it first logs / first opens FFmpeg, so they are set before any capture is opened.
QUIET_ENV = {"OPENCV_FFMPEG_LOGLEVEL": "-8", "OPENCV_LOG_LEVEL": "SILENT"}


def quiet_native_logs() -> None:
    """Keep OpenCV's and FFmpeg's own log lines off stderr (defaults: a variable already set is kept)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def _cv2():
    quiet_native_logs()
    import cv2  # heavy import at the edge

    return cv2


def natural_key(name: str) -> tuple:
    """Sort key that orders "img2" before "img10" (digit runs compare as numbers)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in re.split(r"(\d+)", name) if p)


def _codec_name(fourcc: float) -> str:
    code = int(fourcc)
    if code <= 0:
        return "unknown"
    raw = bytes((code >> (8 * i)) & 0xFF for i in range(4)).decode("latin-1").strip("\x00 ")
    return _CODEC_NAMES.get(raw.lower(), raw or "unknown")


_ROTATE_CODES = {90: "ROTATE_90_CLOCKWISE", 180: "ROTATE_180", 270: "ROTATE_90_COUNTERCLOCKWISE"}


class VideoSource:
    """An opened video file or image folder; iterate it for ``(index_in_source, frame)``.

    Attributes:
        path: Path of the file or folder.
        fps: float, frames per second of the source (``FOLDER_FPS`` = 30 for image folders).
        source_frame_count: int, frames in the whole source (as the container reports it).
        start, end, stride: the selected range ``range(start, end, stride)`` of source indices.
        width, height: int, size in pixels of the yielded (upright) frames; for a folder, of its first selected
            image: a folder's images may differ in size, and each is yielded at its own size.
        rotation: int, degrees clockwise from the file's rotation tag (0, 90, 180 or 270), 0 for folders.
        is_folder: bool, True for a folder of images.
        codec: str, codec name ("h264", "hevc", "mpeg4", ...; "image" for folders).
        truncated: bool, set after iteration when fewer frames decoded than the range promised.
        warning: str or None, the user-facing message when ``truncated``.
    Frames are ``(height, width, 3) uint8`` BGR arrays, a new array per frame (take a folder image's size from
    the frame itself).
    """

    def __init__(self, path: Path, *, fps: float, source_frame_count: int, start: int, end: int, stride: int,
                 width: int, height: int, rotation: int, is_folder: bool, codec: str,
                 images: tuple[Path, ...] = (), self_rotate: bool = False):
        self.path = path
        self.fps = fps
        self.source_frame_count = source_frame_count
        self.start = start
        self.end = end
        self.stride = stride
        self.width = width
        self.height = height
        self.rotation = rotation
        self.is_folder = is_folder
        self.codec = codec
        self.truncated = False
        self.warning: str | None = None
        self._images = images
        self._self_rotate = self_rotate

    @property
    def frame_count(self) -> int:
        """Frames in the selected range after stride: ``len(range(start, end, stride))``."""
        return len(range(self.start, self.end, self.stride))

    @property
    def frame_indices(self) -> np.ndarray:
        """``(frame_count,) int64`` source index of each selected frame."""
        return np.arange(self.start, self.end, self.stride, dtype=np.int64)

    def __len__(self) -> int:
        return self.frame_count

    def __repr__(self) -> str:
        kind = "folder" if self.is_folder else self.codec
        return (f"VideoSource({self.path.name!r}, {kind}, {self.width}x{self.height}, {self.fps:g} fps, "
                f"frames {self.start}:{self.end}:{self.stride} of {self.source_frame_count}, rotation {self.rotation})")

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        return self._iter_images() if self.is_folder else self._iter_video()

    # -- folders ---------------------------------------------------------------------------------
    def _iter_images(self) -> Iterator[tuple[int, np.ndarray]]:
        for i in range(self.start, self.end, self.stride):
            yield i, _read_image(self._images[i], self.path)  # each image at its own size

    def image_path(self, index: int) -> Path | None:
        """The file of source image ``index`` of a folder (None for a video file)."""
        return self._images[index] if self.is_folder else None

    # -- video files -----------------------------------------------------------------------------
    def _iter_video(self) -> Iterator[tuple[int, np.ndarray]]:
        cv2 = _cv2()
        cap = _open_at(self.path, self.start)
        self.truncated = False
        self.warning = None
        n_read = 0
        i = self.start
        try:
            rotate_code = getattr(cv2, _ROTATE_CODES[self.rotation]) if self._self_rotate and self.rotation else None
            while i < self.end:
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                if rotate_code is not None:
                    frame = cv2.rotate(frame, rotate_code)
                n_read += 1
                yield i, frame
                # skipped frames: grab() demuxes and decodes but skips the colour conversion
                skip_ok = True
                for _ in range(min(self.stride - 1, self.end - i - 1)):
                    if not cap.grab():
                        skip_ok = False
                        break
                i += self.stride
                if not skip_ok:
                    break
        finally:
            cap.release()
        if n_read < self.frame_count:
            self.mark_truncated(n_read)

    def mark_truncated(self, n_read: int) -> None:
        """Record that only the first ``n_read`` selected frames decoded (``truncated``, ``warning``); the
        iteration calls it, and a capture that read the clip in segments (`core.detect.segments`)."""
        self.truncated = True
        last = self.start + (n_read - 1) * self.stride if n_read else self.start
        self.warning = (
            f"{self.path.name}: only {n_read} of {self.frame_count} selected frames decoded (the file says "
            f"{self.source_frame_count} frames; decoding stopped after frame {last}); the video looks "
            f"truncated, so the frames that decoded were used")
        log.info(self.warning)  # `warning` is the channel: the capture job reports it once


READ_AHEAD = 2  # frames decoded ahead of the detector (`read_ahead`): enough to overlap; memory stays flat


def read_ahead(frames: Iterable, depth: int = READ_AHEAD) -> Iterator:
    """Iterate ``frames`` (e.g. a `VideoSource`) while a thread decodes the next ``depth`` items: decoding overlaps
    the consumer's work (OpenCV's decoder and the detectors release the interpreter's lock). The items, their
    order and the source's state afterwards (``truncated``, ``warning``) are those of iterating it directly; an
    error of the source is raised where its item would have come; leaving the loop early stops the thread (at
    most ``depth`` + 1 frames were decoded in vain). ``depth`` 0 iterates directly."""
    if depth <= 0:
        yield from frames
        return
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    it = iter(frames)

    def work():
        try:
            for item in it:
                if not put((item, None)):
                    close = getattr(it, "close", None)  # a generator source releases its decoder now
                    if close is not None:
                        close()
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((end, exc))
            return
        put((end, None))

    t = threading.Thread(target=work, name="handcap-read-ahead", daemon=True)
    t.start()
    try:
        while True:
            item, exc = q.get()
            if item is end:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        t.join()


def _read_image(p: Path, folder: Path) -> np.ndarray:
    cv2 = _cv2()
    # imdecode of the bytes: works for non-ASCII paths on Windows; IMREAD_COLOR applies EXIF orientation
    try:
        data = np.fromfile(str(p), dtype=np.uint8)
    except OSError as exc:
        raise CaptureError(f"cannot read image {p.name} in {folder.name}: {exc.strerror}") from None
    frame = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if frame is None:
        raise CaptureError(f"cannot decode image {p.name} in {folder.name}: the file is damaged or not an image; "
                           f"remove it from the folder or replace it")
    return frame


def _open_capture(path: Path):
    """A cv2.VideoCapture on ``path`` (FFmpeg backend first) with automatic rotation switched off."""
    cv2 = _cv2()
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        cap = cv2.VideoCapture(str(path))
    if cap.isOpened():
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    return cap


def _open_at(path: Path, start: int):
    """A capture on ``path`` whose next read returns frame ``start`` (seek, else decode forward)."""
    cv2 = _cv2()
    cap = _open_capture(path)
    if start > 0 and cap.isOpened():
        if not cap.set(cv2.CAP_PROP_POS_FRAMES, float(start)) or int(round(cap.get(cv2.CAP_PROP_POS_FRAMES))) != start:
            cap.release()
            cap = _open_capture(path)
            for _ in range(start):
                if not cap.grab():
                    break
    return cap


def _check_range(name: str, count: int, start: int, end: int | None, stride: int) -> int:
    problems = []
    if int(stride) != stride or stride < 1:
        problems.append(f"stride must be a whole number >= 1; got {stride}")
    if int(start) != start or start < 0:
        problems.append(f"start must be a frame index >= 0; got {start}")
    elif start >= count:
        problems.append(f"start frame {start} is past the end (frames 0-{count - 1})")
    if end is not None and (int(end) != end or end <= start):
        problems.append(f"end must be a frame index greater than start {start}; got {end}")
    if problems:
        raise CaptureError(f"{name} has {count} frames: " + "; ".join(problems))
    return count if end is None else min(int(end), count)


def open_video(path: str | Path, start: int = 0, end: int | None = None, stride: int = 1) -> VideoSource:
    """Open a video file (mp4, mov, avi, mkv, ...) or a folder of images for streaming.

    Args:
        path: a video file, or a folder of .jpg/.jpeg/.png/.bmp/.webp images (sorted naturally:
            "2.png" before "10.png"; hidden files skipped).
        start: first source frame index to yield.
        end: one past the last source index (None: to the end; clamped to the frame count).
        stride: yield every ``stride``-th frame of ``range(start, end)``.
    Returns:
        VideoSource (see its attributes); iterate it for ``(index_in_source, (H, W, 3) uint8 BGR)``.
    Raises:
        CaptureError: missing path, empty folder, not a readable video, no decodable frame, bad range.
    """
    path = check_source(path)
    if path.is_dir():
        return _open_folder(path, start, end, stride)
    return _open_file(path, start, end, stride)


def check_source(path: str | os.PathLike) -> Path:
    """The cheap checks of `open_video` (no decoding): ``path`` is an existing folder, or an existing file
    that is not a single image. Returns it as a Path; raises CaptureError otherwise."""
    path = Path(path)
    try:
        if path.is_dir():
            return path
        found = path.is_file()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise CaptureError(f"cannot open {path}: {exc.strerror or exc}") from None
    if not found:
        raise CaptureError(f"video not found: {path}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise CaptureError(f"{path.name} is a single image: choose a video file, or a folder holding the image(s)")
    return path


def _open_folder(path: Path, start: int, end: int | None, stride: int) -> VideoSource:
    try:
        images = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                         and not p.name.startswith(".") and p.is_file()), key=lambda p: natural_key(p.name))
    except OSError as exc:  # no permission to list it, ...
        raise CaptureError(f"cannot read the image folder {path}: {exc.strerror or exc}") from None
    if not images:
        raise CaptureError(f"no images in folder {path} (expected {', '.join(s[1:] for s in IMAGE_SUFFIXES)} files)")
    end_ = _check_range(f"image folder {path.name}", len(images), start, end, stride)
    first = _read_image(images[start], path)
    return VideoSource(path, fps=FOLDER_FPS, source_frame_count=len(images), start=int(start), end=end_,
                       stride=int(stride), width=int(first.shape[1]), height=int(first.shape[0]), rotation=0,
                       is_folder=True, codec="image", images=tuple(images))


def _open_file(path: Path, start: int, end: int | None, stride: int) -> VideoSource:
    cv2 = _cv2()
    cap = _open_capture(path)
    try:
        if not cap.isOpened():
            raise CaptureError(f"cannot open {path.name} as a video: it is not a video file OpenCV/FFmpeg can read "
                               f"(expected mp4, mov, avi or mkv); choose another file or convert it to H.264 MP4")
        codec = _codec_name(cap.get(cv2.CAP_PROP_FOURCC))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not np.isfinite(fps) or fps <= 0 or fps > 1000:
            log.warning("%s reports no usable frame rate (%r); assuming %g fps", path.name, fps, FOLDER_FPS)
            fps = FOLDER_FPS
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        rotation = int(round(float(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0.0) / 90.0)) * 90 % 360
        self_rotate = float(cap.get(cv2.CAP_PROP_ORIENTATION_AUTO) or 0.0) == 0.0
        if count <= 0:  # stream without a frame count: count by decoding (rare, e.g. some raw streams)
            count = 0
            while cap.grab():
                count += 1
            cap.release()
            cap = _open_capture(path)
            if count == 0:
                raise CaptureError(f"No readable frames in {path.name} (codec {codec}): "
                                   f"convert it to H.264 or choose another file.")
        end_ = _check_range(path.name, count, start, end, stride)
        if start > 0:
            cap.release()
            cap = _open_at(path, start)
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok or frame is None:
        at = "" if start == 0 else f" from frame {start} on (the file may be truncated; try an earlier start)"
        raise CaptureError(f"No readable frames in {path.name}{at} (codec {codec}): "
                           f"convert it to H.264 or choose another file.")
    if self_rotate and rotation:
        frame = cv2.rotate(frame, getattr(cv2, _ROTATE_CODES[rotation]))
    return VideoSource(path, fps=fps, source_frame_count=count, start=int(start), end=end_, stride=int(stride),
                       width=int(frame.shape[1]), height=int(frame.shape[0]), rotation=rotation, is_folder=False,
                       codec=codec, self_rotate=self_rotate)
