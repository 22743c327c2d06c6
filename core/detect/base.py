"""Hand keypoint detection: the per-hand and per-frame results, the backend config and the base class.

Conventions (every backend)
---------------------------
* ``side`` is the hand's anatomical side in the ordinary, NOT mirrored, picture: "right" is the
  person's right hand as a normal (rear or front) camera films it. Backends that assume a mirrored
  selfie image (MediaPipe's legacy API does) swap their labels before returning.
* ``landmarks_px``: pixels of the frame as given (x right, y down), origin at the top-left CORNER of the
  image, so pixel (i, j) covers [i, i+1) x [j, j+1); subtract 0.5 for OpenCV's pixel-centre convention.
* Joint order is MediaPipe's 21 (`core.hand.model.MP_JOINTS`): 0 wrist, 1-4 thumb, 5-8 index, 9-12 middle,
  13-16 ring, 17-20 pinky.
"""
from __future__ import annotations

import abc
import dataclasses

import numpy as np

from ..settings import build, is_number

SIDES = ("right", "left")


@dataclasses.dataclass(frozen=True)
class HandDet:
    """One detected hand in one frame.

    Fields:
        side: "right" or "left", in the ordinary non-mirrored picture (see module docstring).
        score: float in [0, 1], the backend's confidence in ``side`` (MediaPipe: handedness score,
            normally 0.5..1; MediaPipe's legacy API exposes no separate hand-presence score).
        landmarks_px: (21, 2) float32, pixels, MediaPipe joint order.
        landmarks_z: (21,) float32, MediaPipe's normalised relative depth: wrist-relative, same scale
            as the normalised x (multiply by the image width for pixels); smaller = nearer the camera.
        world: (21, 3) float32, metres, MediaPipe world landmarks: origin at the hand's approximate
            centre, axes aligned with the camera (x right, y down, z away from the camera).
    """

    side: str
    score: float
    landmarks_px: np.ndarray
    landmarks_z: np.ndarray
    world: np.ndarray

    def __post_init__(self):
        if self.side not in SIDES:
            raise ValueError(f"HandDet.side must be 'right' or 'left'; got {self.side!r}")
        for name, shape in (("landmarks_px", (21, 2)), ("landmarks_z", (21,)), ("world", (21, 3))):
            value = getattr(self, name)
            if getattr(value, "shape", None) != shape:
                raise ValueError(f"HandDet.{name} must have shape {shape}; got {getattr(value, 'shape', type(value))}")

    @property
    def p_right(self) -> float:
        """Probability that this is a right hand, from ``side`` and ``score``."""
        return float(self.score) if self.side == "right" else 1.0 - float(self.score)


@dataclasses.dataclass(frozen=True)
class Detections:
    """The hands found in one frame.

    Fields:
        frame_index: int, index of the frame in its source video or folder.
        timestamp: float, seconds from the start of the source.
        image_size: (W, H) ints, pixels of the frame the landmarks refer to.
        hands: tuple of 0..max_hands `HandDet`, in the backend's order (not sorted by side).
    """

    frame_index: int
    timestamp: float
    image_size: tuple[int, int]
    hands: tuple[HandDet, ...] = ()


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """Settings of a detector backend (frozen; build with `make_config`, unknown keys are errors).

    Fields:
        name: backend name, a key of `core.detect.BACKENDS` ("mediapipe", "hybrid", "torch"), or "auto"
            (`core.detect.resolve_backend`: torch where a GPU is used, else hybrid).
        static: True treats every frame as an unrelated image (image folders); False tracks hands
            from frame to frame (video: faster and steadier).
        max_hands: 1 or 2.
        min_detection_confidence: [0, 1], palm/hand detection threshold.
        min_tracking_confidence: [0, 1], below it tracking mode re-runs detection (ignored if static).
        model_complexity: 0 (lite) or 1 (full) landmark model.
        square_crops: static mode only: where a non-square image yields no hand, look again in square
            crops along its long side (start, middle, end; see `square_crops`), up to ``max_hands``.
            The palm detector sees a letterboxed square, so a hand in a tall photo is small to it.
        device: torch backend only: "cpu", "cuda", "cuda:N" or "auto" (a GPU where torch sees one).
    """

    name: str = "mediapipe"
    static: bool = False
    max_hands: int = 2
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    model_complexity: int = 1
    square_crops: bool = True
    device: str = "cpu"


def square_crops(width: int, height: int) -> list[tuple[int, int, int]]:
    """Square windows (x0, y0, side) along the long side of a width x height image: at its start, middle
    and end (one window, the whole image, when it is square)."""
    side = min(width, height)
    span = max(width, height) - side
    offsets = sorted({0, span // 2, span})
    return [(o, 0, side) if width > height else (0, o, side) for o in offsets]


def merge_new(found: list["HandDet"], extra: list["HandDet"], max_hands: int, same: float = 0.5) -> list["HandDet"]:
    """``found`` plus the hands of ``extra`` that are none of them (mean landmark distance at least ``same``
    hand sizes from each), best score first, up to ``max_hands`` in all."""
    out = list(found)
    for h in sorted(extra, key=lambda d: -d.score):
        if len(out) >= max_hands:
            break
        size = float(np.ptp(h.landmarks_px, axis=0).max()) or 1.0
        if all(np.linalg.norm(h.landmarks_px - o.landmarks_px, axis=1).mean() / size >= same for o in out):
            out.append(h)
    return out


def nearest_hands(a: list[HandDet], b: list[HandDet]) -> list[tuple[HandDet, HandDet, np.ndarray]]:
    """Two detectors' hands on one frame, each hand of ``a`` with the hand of ``b`` nearest to it (mean landmark
    distance): (hand of a, hand of b, per-landmark distances (21,) px); empty where ``b`` found none. For
    comparing detectors (tests, benchmarks)."""
    out = []
    for ha in a:
        if not b:
            break
        d = [np.linalg.norm(ha.landmarks_px - hb.landmarks_px, axis=1) for hb in b]
        k = int(np.argmin([e.mean() for e in d]))
        out.append((ha, b[k], d[k]))
    return out


def with_square_crops(bgr: np.ndarray, found: list["HandDet"], cfg: "DetectorConfig", find) -> list["HandDet"]:
    """``found`` (the hands of the whole BGR image), and where a static config's tall or wide image gave none, the
    hands ``find(square)`` gives in its square crops along the long side (`square_crops`), moved into the image's
    pixels, up to ``max_hands`` (`merge_new`). A tall or wide photo is letterboxed to a square for the palm
    detector, so a hand in it is small there: look again closer. Only where nothing was found, so that one-hand
    footage with max_hands 2 costs nothing extra."""
    h, w = bgr.shape[:2]
    if not (cfg.static and cfg.square_crops and h != w and not found):
        return found
    out = found
    for x0, y0, side in square_crops(w, h):
        extra = [dataclasses.replace(d, landmarks_px=d.landmarks_px + np.array([x0, y0], np.float32),
                                     landmarks_z=d.landmarks_z * np.float32(side / w))
                 for d in find(np.ascontiguousarray(bgr[y0:y0 + side, x0:x0 + side]))]
        out = merge_new(out, extra, cfg.max_hands)
        if len(out) >= cfg.max_hands:
            break
    return out


def is_device_name(device) -> bool:
    """Whether ``device`` is a device name the detectors and the fit take: "cpu", "cuda", "cuda:N" or "auto"."""
    return isinstance(device, str) and (device in ("cpu", "cuda", "auto") or
                                        (device.startswith("cuda:") and device[5:].isdigit()))


def make_config(**options) -> DetectorConfig:
    """A validated `DetectorConfig` from keyword options; raises CaptureError listing every problem."""
    return build(DetectorConfig, "detector", options, _check)


def _check(cfg: DetectorConfig) -> list[str]:
    problems = []
    if not isinstance(cfg.name, str) or not cfg.name:
        problems.append(f"detector name must be a non-empty string; got {cfg.name!r}")
    for key in ("static", "square_crops"):
        if not isinstance(getattr(cfg, key), (bool, np.bool_)):
            problems.append(f"{key} must be True or False; got {getattr(cfg, key)!r}")
    if cfg.max_hands not in (1, 2) or isinstance(cfg.max_hands, bool):
        problems.append(f"max_hands must be 1 or 2; got {cfg.max_hands!r}")
    for key in ("min_detection_confidence", "min_tracking_confidence"):
        v = getattr(cfg, key)
        if not is_number(v) or not 0.0 <= v <= 1.0:
            problems.append(f"{key} must be a number in [0, 1]; got {v!r}")
    if not is_device_name(cfg.device):
        problems.append(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto'; got {cfg.device!r}")
    if cfg.model_complexity not in (0, 1) or isinstance(cfg.model_complexity, bool):
        problems.append(f"model_complexity must be 0 or 1; got {cfg.model_complexity!r}")
    return problems


class Detector(abc.ABC):
    """A hand keypoint backend. Use as a context manager, or call `close` when done.

    A tracking-mode detector (``config.static`` False) keeps state between calls: feed it the frames
    of one clip in order, and use a new detector for another clip.
    """

    def __init__(self, config: DetectorConfig):
        self.config = config

    @abc.abstractmethod
    def detect(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> list[HandDet]:
        """Hands in one frame.

        Args:
            frame_bgr: (H, W, 3) uint8 BGR image (as `core.io.video` yields; (H, W) grey and (H, W, 4) BGRA
                are converted).
            timestamp: seconds from the clip start, increasing; backends that track may use it.
        Returns:
            list of 0..config.max_hands `HandDet`.
        """

    def close(self) -> None:
        """Release the backend's resources; the detector cannot be used afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def as_bgr(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR view or copy of a BGR, BGRA or grey uint8 frame; ValueError otherwise."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8; got {frame.dtype}")
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 4:
        return frame[:, :, :3]
    raise ValueError(f"frame must be (H, W, 3) BGR; got shape {frame.shape}")
