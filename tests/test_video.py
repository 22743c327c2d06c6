"""core.io.video: files and folders, range and stride, rotation tags, and every error path."""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import CaptureError
from core.io.video import natural_key, open_video

W, H, N = 64, 48, 12


def frame_image(i: int, w: int = W, h: int = H) -> np.ndarray:
    """Frame ``i``: grey level 10*i everywhere, a red block in the top-left corner (marks 'up')."""
    img = np.full((h, w, 3), 10 * i + 20, np.uint8)
    img[: h // 4, : w // 3] = (0, 0, 255)
    return img


def write_video(path: Path, n: int = N, fourcc: str = "mp4v", w: int = W, h: int = H) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30.0, (w, h))
    assert writer.isOpened(), f"cv2.VideoWriter cannot write {path.suffix} with {fourcc}"
    for i in range(n):
        writer.write(frame_image(i, w, h))
    writer.release()
    return path


def frame_level(frame: np.ndarray) -> int:
    """Frame number encoded by `frame_image` (grey level of the bottom-right area, codec noise rounded)."""
    return int(round((float(np.median(frame[-8:, -8:, 1])) - 20) / 10))


def red_centre(frame: np.ndarray) -> tuple[float, float]:
    """Normalised (x, y) centre of the red block."""
    red = (frame[..., 2] > 180) & (frame[..., 1] < 120)
    ys, xs = np.nonzero(red)
    return xs.mean() / frame.shape[1], ys.mean() / frame.shape[0]


# -- mp4 box surgery (no ffmpeg on this machine) ----------------------------------------------------
def _boxes(data: bytes, start: int = 0, end: int | None = None):
    i, end = start, len(data) if end is None else end
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        yield kind, i, size
        i += size


def set_rotation(src: Path, dst: Path, degrees: int) -> Path:
    """Copy an mp4 with the video track's 'tkhd' matrix set to the display rotation ``degrees`` clockwise.

    tkhd (version 0): size, 'tkhd', version/flags, creation, modification, track id, reserved, duration,
    8 reserved, layer, alternate group, volume, reserved, then the 3x3 matrix {a b u; c d v; x y w}
    (16.16 fixed point, u v w 2.30) at byte 48. FFmpeg's "rotate=90" (phone held upright) writes
    a=0 b=1 c=-1 d=0.
    """
    data = bytearray(src.read_bytes())
    i = data.find(b"tkhd") - 4
    offset = i + (48 if data[i + 8] == 0 else 60)
    one = 0x10000
    a, b, c, d = {0: (one, 0, 0, one), 90: (0, one, -one, 0), 180: (-one, 0, 0, -one), 270: (0, -one, one, 0)}[degrees]
    struct.pack_into(">9i", data, offset, a, b, 0, c, d, 0, 0, 0, 0x40000000)
    dst.write_bytes(bytes(data))
    return dst


def moov_first(src: Path, dst: Path) -> tuple[Path, int, int]:
    """Rewrite an mp4 as ftyp, moov, mdat ("fast start", chunk offsets fixed); returns (path, mdat start, end)."""
    data = src.read_bytes()
    top = {kind: (i, size) for kind, i, size in _boxes(data)}
    (fi, fs), (mi, ms), (di, ds) = top[b"ftyp"], top[b"moov"], top[b"mdat"]
    moov = bytearray(data[mi:mi + ms])
    shift = fi + fs + ms - di  # mdat moves from di to fi + fs + ms

    def fix(start: int, end: int) -> None:
        for kind, i, size in _boxes(moov, start, end):
            if kind in (b"trak", b"mdia", b"minf", b"stbl"):
                fix(i + 8, i + size)
            elif kind == b"stco":
                (n,) = struct.unpack(">I", moov[i + 12:i + 16])
                for k in range(n):
                    (off,) = struct.unpack(">I", moov[i + 16 + 4 * k:i + 20 + 4 * k])
                    struct.pack_into(">I", moov, i + 16 + 4 * k, off + shift)

    fix(8, len(moov))
    out = data[fi:fi + fs] + bytes(moov) + data[di:di + ds]
    dst.write_bytes(out)
    return dst, fi + fs + ms, len(out)


@pytest.fixture()
def clip(tmp_path) -> Path:
    return write_video(tmp_path / "clip.mp4")


# -- files ---------------------------------------------------------------------------------------
def test_open_and_stream(clip):
    src = open_video(clip)
    assert (src.fps, src.source_frame_count, src.frame_count, src.width, src.height) == (30.0, N, N, W, H)
    assert (src.rotation, src.is_folder, src.codec, len(src)) == (0, False, "mpeg4", N)
    got = [(i, f) for i, f in src]
    assert [i for i, _ in got] == list(range(N))
    for i, f in got:
        assert f.shape == (H, W, 3) and f.dtype == np.uint8
        assert frame_level(f) == i
    assert not src.truncated and src.warning is None
    assert [i for i, _ in src] == list(range(N)), "a source can be iterated twice"


@pytest.mark.parametrize("start,end,stride", [(0, None, 3), (5, None, 1), (2, 9, 2), (4, 100, 5), (11, None, 4)])
def test_range_and_stride(clip, start, end, stride):
    src = open_video(clip, start=start, end=end, stride=stride)
    want = list(range(start, min(end or N, N), stride))
    assert src.frame_count == len(want)
    np.testing.assert_array_equal(src.frame_indices, want)
    got = [(i, frame_level(f)) for i, f in src]
    assert got == [(i, i) for i in want]
    assert not src.truncated


@pytest.mark.parametrize("suffix,fourcc", [(".avi", "MJPG"), (".mkv", "mp4v"), (".mov", "mp4v")])
def test_other_containers(tmp_path, suffix, fourcc):
    src = open_video(write_video(tmp_path / f"clip{suffix}", fourcc=fourcc), stride=2)
    assert src.source_frame_count == N and src.frame_count == N // 2
    assert [(i, frame_level(f)) for i, f in src] == [(i, i) for i in range(0, N, 2)]


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_tag_gives_upright_frames(clip, tmp_path, degrees):
    rotated = set_rotation(clip, tmp_path / f"rot{degrees}.mp4", degrees)
    # what OpenCV itself reports for the tag
    cap = cv2.VideoCapture(str(rotated), cv2.CAP_FFMPEG)
    assert cap.get(cv2.CAP_PROP_ORIENTATION_META) == degrees
    cap.release()

    src = open_video(rotated)
    assert src.rotation == degrees
    assert (src.width, src.height) == ((H, W) if degrees in (90, 270) else (W, H))
    frames = [f for _, f in src]
    assert len(frames) == N and frames[0].shape == (src.height, src.width, 3)
    # the red block (top-left of the stored frame) lands where turning the picture clockwise puts it
    x, y = red_centre(frames[0])
    x0, y0 = red_centre(frame_image(0))  # ~ (0.17, 0.13)
    want = {90: (1 - y0, x0), 180: (1 - x0, 1 - y0), 270: (y0, 1 - x0)}[degrees]
    np.testing.assert_allclose((x, y), want, atol=0.05)
    # same pixels as rotating the untagged file's frames
    plain = next(iter(open_video(clip)))[1]
    code = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}[degrees]
    np.testing.assert_array_equal(frames[0], cv2.rotate(plain, code))


def test_truncated_video_yields_what_decodes(clip, tmp_path):
    fast, mdat_start, size = moov_first(clip, tmp_path / "fast.mp4")
    assert [frame_level(f) for _, f in open_video(fast)] == list(range(N)), "moov-first copy is intact"
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[: mdat_start + (size - mdat_start) // 2])
    src = open_video(cut)
    assert src.source_frame_count == N  # the header still promises every frame
    got = [i for i, _ in src]
    assert 0 < len(got) < N and got == list(range(len(got)))
    assert src.truncated
    assert "cut.mp4" in src.warning and f"only {len(got)} of {N}" in src.warning and "truncated" in src.warning


def test_no_decodable_frames(clip, tmp_path):
    fast, mdat_start, _ = moov_first(clip, tmp_path / "fast.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(fast.read_bytes()[: mdat_start + 8])  # header and mdat box header only
    with pytest.raises(CaptureError, match=r"No readable frames in empty\.mp4 \(codec mpeg4\): convert it to H\.264"):
        open_video(empty)


@pytest.mark.parametrize("content", [b"this is not a video\n" * 50, b""])
def test_not_a_video(tmp_path, content):
    fake = tmp_path / "notes.mp4"
    fake.write_bytes(content)
    with pytest.raises(CaptureError, match=r"cannot open notes\.mp4 as a video"):
        open_video(fake)


def test_missing_file(tmp_path):
    with pytest.raises(CaptureError, match=r"video not found: .*nope\.mp4"):
        open_video(tmp_path / "nope.mp4")


@pytest.mark.parametrize("kw,pattern", [
    (dict(start=N), rf"start frame {N} is past the end \(frames 0-{N - 1}\)"),
    (dict(start=-1), "start must be a frame index >= 0"),
    (dict(start=4, end=4), "end must be a frame index greater than start 4"),
    (dict(stride=0), "stride must be a whole number >= 1"),
])
def test_bad_range(clip, kw, pattern):
    with pytest.raises(CaptureError, match=r"clip\.mp4 has 12 frames: .*" + pattern):
        open_video(clip, **kw)


def test_bad_range_lists_every_problem(clip):
    with pytest.raises(CaptureError) as info:
        open_video(clip, start=99, stride=0)
    assert "stride" in str(info.value) and "start frame 99" in str(info.value)


# -- image folders -------------------------------------------------------------------------------
def test_image_folder(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    names = ["f10.png", "f2.jpg", "f1.bmp", "f3.webp", "F11.PNG"]
    for k, name in zip([10, 2, 1, 3, 11], names):
        cv2.imwrite(str(folder / name), frame_image(k), [cv2.IMWRITE_JPEG_QUALITY, 100])
    (folder / "notes.txt").write_text("ignored")
    (folder / ".hidden.png").write_bytes(b"junk")
    src = open_video(folder)
    assert (src.is_folder, src.fps, src.source_frame_count, src.width, src.height, src.rotation) == (True, 30.0, 5, W, H, 0)
    got = [(i, frame_level(f)) for i, f in src]
    assert got == [(0, 1), (1, 2), (2, 3), (3, 10), (4, 11)]
    assert [frame_level(f) for _, f in open_video(folder, start=1, stride=2)] == [2, 10]


def test_image_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images")
    with pytest.raises(CaptureError, match="no images in folder .*empty"):
        open_video(empty)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "0.png"), frame_image(0))
    cv2.imwrite(str(mixed / "1.png"), frame_image(1, w=32))
    (mixed / "2.png").write_bytes(b"not a png")
    src = open_video(mixed, end=2)  # images of mixed sizes: each is yielded at its own size
    assert (src.width, src.height) == (64, 48)
    assert [f.shape for _, f in src] == [(48, 64, 3), (48, 32, 3)]
    with pytest.raises(CaptureError, match=r"cannot decode image 2\.png in mixed"):
        list(open_video(mixed))
    with pytest.raises(CaptureError, match=r"cannot decode image 2\.png in mixed"):
        open_video(mixed, start=2)


def test_single_image_is_refused(tmp_path):
    p = tmp_path / "photo.jpg"
    cv2.imwrite(str(p), frame_image(0))
    with pytest.raises(CaptureError, match="photo.jpg is a single image"):
        open_video(p)


def test_natural_key():
    names = ["img10.png", "img2.png", "IMG1.png", "img2b.png", "a.png"]
    assert sorted(names, key=natural_key) == ["a.png", "IMG1.png", "img2.png", "img2b.png", "img10.png"]


def test_real_video_seek_matches_sequential(data_dir):
    path = data_dir / "video" / "two_hands.mp4"
    src = open_video(path, start=40, end=47, stride=3)
    assert (src.width, src.height, src.fps, src.source_frame_count, src.codec) == (1280, 720, 30.0, 500, "h264")
    seq = {i: f for i, f in open_video(path, end=47) if i >= 40}
    got = list(src)
    assert [i for i, _ in got] == [40, 43, 46]
    for i, f in got:
        np.testing.assert_array_equal(f, seq[i])


# -- decoding ahead (`read_ahead`) ---------------------------------------------------------------
def test_read_ahead_is_the_source_itself(clip, tmp_path):
    """The same frames in the same order, the same state afterwards (a truncated copy's warning), and decoding
    ahead by at most ``depth`` + 1 items while the consumer waits (memory flat)."""
    import threading
    import time

    from core.io.video import read_ahead

    src = open_video(clip, stride=2)
    direct = [(i, f) for i, f in src]
    ahead = [(i, f) for i, f in read_ahead(src, 2)]
    assert [i for i, _ in ahead] == [i for i, _ in direct]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(ahead, direct))
    fast, mdat_start, size = moov_first(clip, tmp_path / "fast.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[: mdat_start + (size - mdat_start) // 2])
    src = open_video(cut)
    got = [i for i, _ in read_ahead(src, 2)]
    assert 0 < len(got) < N and src.truncated and f"only {len(got)} of {N}" in src.warning

    made, closed = [], threading.Event()

    def counting():
        try:
            for k in range(100):
                made.append(k)
                yield k
        finally:
            closed.set()

    it = read_ahead(counting(), 3)
    assert next(it) == 0
    time.sleep(0.3)  # the thread runs ahead while the consumer waits
    assert len(made) <= 1 + 3 + 1
    it.close()  # leaving early: the thread stops and the source is closed (its decoder released)
    assert closed.wait(2.0) and len(made) <= 6


def test_read_ahead_raises_where_the_source_fails():
    from core.io.video import read_ahead

    def failing():
        yield 1
        yield 2
        raise CaptureError("broken frame 3")

    got = []
    with pytest.raises(CaptureError, match="broken frame 3"):
        for x in read_ahead(failing(), 2):
            got.append(x)
    assert got == [1, 2]
    assert list(read_ahead(iter([1, 2, 3]), 0)) == [1, 2, 3]
