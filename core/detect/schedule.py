"""The legacy MediaPipe Hands tracking graph with the project's palm schedule, whatever runs the two networks.

`ScheduledHands` is the graph's logic between the networks (palm ROIs, association with the tracked ROIs, the
tracking ROI from the landmarks, handedness, the square crops of tall or wide photos), reproduced in
`core.detect.torch_hands.pipeline`; a subclass says how the palm and landmark networks run: `TorchHands` (the torch
ports, any device) or `HybridHands` (MediaPipe's own palm and landmark subgraphs on XNNPACK).

Palm detection schedule (`palm_due`): MediaPipe's legacy graph runs the palm detector on every frame
while fewer hands are tracked than asked for (max_hands 2 and one hand in view: every frame, the palm
network costing about as much as the landmark network). Here it runs on every frame only while NO hand is
tracked, and on every frame of the ``palm_grace`` frames after the clip's start and after the number of
tracked hands fell (a hand just lost is looked for again as MediaPipe does); otherwise, while at least one
hand is tracked and fewer than asked, every ``palm_every``-th frame (`PALM_EVERY`, `PALM_GRACE`;
``palm_every`` 1 = MediaPipe's schedule exactly). A second hand entering the picture later is picked up on the
first of these looks that finds it: ``palm_every - 1`` frames after MediaPipe at most where that look finds it, and
a look can miss a hand that MediaPipe's look on another frame found (two_hands.mp4: 9 frames, BENCHMARKS.md).
"""
from __future__ import annotations

import abc

import numpy as np

from .base import Detector, DetectorConfig, HandDet, as_bgr, with_square_crops
from .mp_hands import SIDE_FROM_MP_LABEL
from .torch_hands import pipeline as P

# the palm detector's period while some but fewer hands than asked are tracked, and its every-frame grace (BENCHMARKS.md,
# "The palm detector's schedule on the CPU": detections on the shared videos against MediaPipe's, CPU and throughput)
PALM_EVERY = 5
PALM_GRACE = 30  # frames after the start and after a hand was lost with the palm detector on every frame


def palm_due(tracked: int, since_lost: int, since: int, max_hands: int, every: int, grace: int = 1) -> bool:
    """Whether the palm detector runs on this frame.

    Args:
        tracked: hands tracked into this frame (ROIs from the previous frame's landmarks).
        since_lost: frames since the clip's start or since the number of tracked hands last fell (1 = this is
            the first frame after the fall: the previous frame tracked fewer out than in).
        since: frames since the palm detector last ran (1 = it ran on the previous frame).
        max_hands, every, grace: the detector's ``max_hands``, ``palm_every`` and ``palm_grace``.
    Returns:
        True where nothing is tracked (every frame, as MediaPipe), on the ``grace`` frames after the start
        or a loss, and every ``every``-th frame while fewer than ``max_hands`` are tracked; False where
        ``max_hands`` hands are tracked (as MediaPipe).
    """
    if tracked >= max_hands:
        return False
    return tracked == 0 or since_lost <= grace or since >= max(1, int(every))


class ScheduledHands(Detector):
    """`Detector` on the legacy tracking graph; subclasses run the networks (`palms`, `hands_in`)."""

    def __init__(self, config: DetectorConfig, palm_every: int | None = None, palm_grace: int | None = None):
        """``palm_every``: the palm detector's period while some but fewer hands than asked are tracked (default
        `PALM_EVERY`; 1 = MediaPipe's schedule, see `palm_due`); ``palm_grace``: frames after the start and after
        a loss with the palm detector on every frame (default `PALM_GRACE`)."""
        super().__init__(config)
        self.palm_every = PALM_EVERY if palm_every is None else max(1, int(palm_every))
        self.palm_grace = PALM_GRACE if palm_grace is None else max(0, int(palm_grace))
        self._prev: list[np.ndarray] = []
        self._tracked_before = 0  # hands tracked into the previous frame
        self._since_lost = 1  # frames since the start or since the number of tracked hands fell
        self._since_palm = 1  # frames since the palm detector last ran
        self.palm_runs = 0  # frames the palm detector ran on (for tests and benchmarks)
        self.last: list[P.HandResult] = []
        self._open = True

    # -------------------------------------------------------------------------- the networks (subclasses)
    def _frame(self, bgr: np.ndarray):
        """The frame in the form `palms` / `hands_in` take it besides the BGR array (e.g. on a device), or None."""
        return None

    @abc.abstractmethod
    def palms(self, bgr: np.ndarray, frame=None) -> list[P.PalmDetection]:
        """Palm detections of a frame (normalised image coordinates), NMS'd, best first."""

    @abc.abstractmethod
    def hands_in(self, bgr: np.ndarray, rects: list[np.ndarray], frame=None) -> list[P.HandResult]:
        """The landmark network on normalised ROIs (cx, cy, w, h, rot) of a frame: results in the ROIs' order, at
        least those whose hand is present (`process` keeps the ones with presence above
        ``min_tracking_confidence``)."""

    # ------------------------------------------------------------------ one image through the graph
    def process(self, bgr: np.ndarray) -> list[P.HandResult]:
        """One frame through the tracking graph (static mode: detection on every frame)."""
        cfg = self.config
        h, w = bgr.shape[:2]
        frame = self._frame(bgr)
        prev = [] if cfg.static else self._prev
        palm_rects = []
        if len(prev) < self._tracked_before:  # a tracked hand was lost on the previous frame
            self._since_lost = 1
        if cfg.static or palm_due(len(prev), self._since_lost, self._since_palm, cfg.max_hands, self.palm_every,
                                  self.palm_grace):
            if len(prev) < cfg.max_hands:
                palm_rects = [P.palm_to_rect(d, w, h) for d in self.palms(bgr, frame)[: cfg.max_hands]]
                self.palm_runs += 1
                self._since_palm = 0
        self._since_palm += 1
        self._since_lost += 1
        self._tracked_before = len(prev)
        rects = P.associate(palm_rects, prev)
        kept = [r for r in self.hands_in(bgr, rects, frame) if r.presence > float(cfg.min_tracking_confidence)]
        self._prev = [P.landmarks_to_rect(r.landmarks, w, h) for r in kept]
        self.last = kept  # the raw results (with their ROIs) of the last frame, for parity checks
        return kept

    # ------------------------------------------------------------------------------ Detector API
    def detect(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> list[HandDet]:
        if not self._open:
            raise RuntimeError(f"{type(self).__name__}.detect called after close()")
        bgr = as_bgr(frame_bgr)
        return with_square_crops(bgr, self.hands(bgr), self.config, self.hands)

    def hands(self, bgr: np.ndarray) -> list[HandDet]:
        """One image through the graph (`process`): its hands, in its own pixels."""
        h, w = bgr.shape[:2]
        return [to_handdet(r, w, h) for r in self.process(bgr)]

    def close(self) -> None:
        self._open = False
        self._prev = []
        self._tracked_before, self._since_palm, self._since_lost = 0, 1, 1


def to_handdet(r: P.HandResult, width: int, height: int) -> HandDet:
    """A `HandDet` (anatomical side, image pixels) of one raw result."""
    label = "Left" if r.p_left > 0.5 else "Right"
    return HandDet(side=SIDE_FROM_MP_LABEL[label], score=float(max(r.p_left, 1.0 - r.p_left)),
                   landmarks_px=(r.landmarks[:, :2] * np.array([width, height], np.float32)).astype(np.float32),
                   landmarks_z=np.ascontiguousarray(r.landmarks[:, 2], dtype=np.float32),
                   world=np.ascontiguousarray(r.world, dtype=np.float32))
