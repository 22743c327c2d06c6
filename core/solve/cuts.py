"""Scene cuts of a video from frame-difference statistics (cheap: a 32x32 grey thumbnail per frame).

A cut is a frame whose difference to the previous frame (mean absolute difference of the thumbnails,
grey levels 0..255, after removing each thumbnail's mean brightness so a lighting change is no cut) is a
lone spike: above an absolute floor, several times the clip's own median difference, and several times
the differences of its neighbouring frames (fast motion or a pan raises a run of frames together, a cut
only one). `find_cuts` runs once the clip's differences are known; `Shots` feeds it while streaming.
"""
from __future__ import annotations

import numpy as np

THUMB = 32  # thumbnail side, pixels


def signature(frame: np.ndarray) -> np.ndarray:
    """(THUMB, THUMB) float32 grey thumbnail of a BGR / BGRA / grey uint8 frame, its mean removed.

    Area averages in two steps: the grey frame by a whole factor to at least 4 THUMB a side (OpenCV's fast
    path; the last rows / columns that do not fill a block are left out), then to THUMB x THUMB. One step
    (a 720p frame straight to 32 x 32) cost 2.8 ms a frame, 4x these two, with the same differences to 0.05
    grey levels on the shared videos (the cut floor is 12)."""
    import cv2

    f = np.asarray(frame)
    if f.ndim == 3:
        f = cv2.cvtColor(f[:, :, :3], cv2.COLOR_BGR2GRAY)
    h, w = f.shape[:2]
    k = min(h, w) // (4 * THUMB)
    if k > 1:
        f = cv2.resize(f[: h - h % k, : w - w % k], (w // k, h // k), interpolation=cv2.INTER_AREA)
    g = cv2.resize(f, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
    return g - g.mean()


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two signatures (grey levels)."""
    return float(np.abs(a - b).mean())


def find_cuts(diffs, floor: float = 12.0, ratio: float = 5.0, local: float = 2.5, radius: int = 7) -> list[int]:
    """Frame positions where a new shot starts.

    Args:
        diffs: (T,) difference of each frame to the previous one (`difference`; diffs[0] is ignored).
        floor: smallest difference that can be a cut (grey levels).
        ratio: a cut's difference is at least this many times the median difference of the clip.
        local: ... and this many times the largest other difference within ``radius`` frames of it.
        radius: frames each side that a lone spike stands out from.
    Returns:
        sorted positions t (1..T-1): frame t starts a new shot.
    """
    d = np.asarray(diffs, np.float64).copy()
    if d.size < 2:
        return []
    d[0] = 0.0
    med = float(np.median(d[1:]))
    cuts = []
    for t in range(1, d.size):
        if d[t] < max(floor, ratio * med):
            continue
        lo, hi = max(1, t - radius), min(d.size, t + radius + 1)
        others = np.concatenate([d[lo:t], d[t + 1:hi]])
        if others.size == 0 or d[t] >= local * others.max():
            cuts.append(t)
    return cuts


class Shots:
    """Streaming: ``add(frame)`` per frame in order (keeps one thumbnail and one float per frame), then
    ``cuts()``."""

    def __init__(self, **options):
        self.options = options
        self._prev: np.ndarray | None = None
        self._diffs: list[float] = []

    def add(self, frame: np.ndarray) -> None:
        sig = signature(frame)
        self._diffs.append(0.0 if self._prev is None else difference(self._prev, sig))
        self._prev = sig

    @property
    def diffs(self) -> np.ndarray:
        return np.asarray(self._diffs, np.float64)

    def cuts(self) -> list[int]:
        return find_cuts(self._diffs, **self.options)
