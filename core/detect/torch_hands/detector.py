"""`TorchHands`: the legacy MediaPipe Hands graph on the torch networks, behind the `Detector` interface.

Same outputs and conventions as `core.detect.mp_hands.MediaPipeHands` (sides swapped from MediaPipe's
mirrored-selfie labels, landmarks in image pixels with the corner origin, z and world landmarks as
MediaPipe gives them), same tracking behaviour (see `pipeline`). On the CPU the crops are cut with
OpenCV exactly as MediaPipe cuts them; on a GPU with ``grid_sample`` from the frame uploaded once, and
all hands of a frame go through the landmark network in one batch.

Palm detection schedule (`palm_due`): MediaPipe's legacy graph runs the palm detector on every frame
while fewer hands are tracked than asked for (max_hands 2 and one hand in view: every frame, the palm
network costing about as much as the landmark network). Here it runs on every frame only while NO hand is
tracked, and on every frame of the ``palm_grace`` frames after the clip's start and after the number of
tracked hands fell (a hand just lost is looked for again as MediaPipe does); otherwise, while at least one
hand is tracked and fewer than asked, every ``palm_every``-th frame (`PALM_EVERY`, `PALM_GRACE`;
``palm_every`` 1 = MediaPipe's schedule exactly). A second hand entering the picture later is picked up at
most ``palm_every - 1`` frames later than MediaPipe would (where the palm detector finds it on that frame).

On the CPU the networks run on ONE intra-op thread (as MediaPipe's XNNPACK runs them on desktop Linux)
and one hand crop at a time: with 2 threads on a loaded machine every operator waits at OpenMP's barrier
for a descheduled thread (measured 4-20x slower a forward), and a batch of 2 crops measured slower than 2
batches of 1 (BENCHMARKS.md, "Torch port").
"""
from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import torch

from ..base import Detector, DetectorConfig, HandDet, as_bgr, merge_new, square_crops
from ..mp_hands import SIDE_FROM_MP_LABEL
from . import pipeline as P
from .net import frozen, load_net


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


def resolve_device(device: str) -> torch.device:
    """"auto" -> cuda where torch sees a GPU, else cpu; other names as torch reads them."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TorchHands(Detector):
    """`Detector` on the torch ports of palm_detection_full and hand_landmark_full (model_complexity 1)."""

    def __init__(self, config: DetectorConfig, device: str | torch.device | None = None,
                 grid_sample: bool | None = None, threads: int | None = None, palm_every: int | None = None,
                 palm_grace: int | None = None):
        """``device``: torch device (default: the config's ``device``); ``grid_sample``: cut crops with
        ``grid_sample`` on the device (default: on GPUs; the CPU default is OpenCV, MediaPipe's own warp);
        ``threads``: torch's intra-op threads while the networks run on the CPU (default 1; the process's
        setting is restored after each call; 0 = leave it as it is); ``palm_every``: the palm detector's
        period while some but fewer hands than asked are tracked (default `PALM_EVERY`; 1 = MediaPipe's
        schedule, see `palm_due`); ``palm_grace``: frames after the start and after a loss with the palm
        detector on every frame (default `PALM_GRACE`)."""
        super().__init__(config)
        if int(config.model_complexity) != 1:
            from ...errors import CaptureError

            raise CaptureError("the torch hand detector has the full models only (model_complexity 1)")
        self.device = resolve_device(str(device or config.device))
        self.grid_sample = self.device.type != "cpu" if grid_sample is None else bool(grid_sample)
        self.threads = (1 if threads is None else int(threads)) if self.device.type == "cpu" else 0
        self.batch_hands = self.device.type != "cpu"  # on the CPU one crop at a time is faster
        self.palm = load_net("palm", self.device)
        self.landmark = load_net("landmark", self.device)
        if self.device.type == "cpu":  # traced and frozen: same outputs, less time a forward
            with self._threads():
                self.palm, self.landmark = frozen(self.palm), frozen(self.landmark)
        self.palm_every = PALM_EVERY if palm_every is None else max(1, int(palm_every))
        self._prev: list[np.ndarray] = []
        self.palm_grace = PALM_GRACE if palm_grace is None else max(0, int(palm_grace))
        self._tracked_before = 0  # hands tracked into the previous frame
        self._since_lost = 1  # frames since the start or since the number of tracked hands fell
        self._since_palm = 1  # frames since the palm detector last ran
        self.palm_runs = 0  # frames the palm detector ran on (for tests and benchmarks)
        self.last: list[P.HandResult] = []
        self._open = True

    # ------------------------------------------------------------------ one image through the graph
    def _frame_tensor(self, bgr: np.ndarray) -> torch.Tensor | None:
        if not self.grid_sample:
            return None
        rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).to(self.device, non_blocking=True)
        return rgb.permute(2, 0, 1).float()

    def _crops(self, bgr: np.ndarray, frame: torch.Tensor | None, rois: list[np.ndarray], size: int,
               border_zero: bool) -> torch.Tensor:
        """(N, 3, size, size) float RGB crops scaled to 0..1 on the device (channels-last in memory)."""
        if frame is None:  # numpy does the conversion (no torch operator, no thread pool): NHWC as it is
            crops = np.stack([P.crop_cv2(bgr, r, size, border_zero)[:, :, ::-1] for r in rois])
            x = crops.astype(np.float32)
            x *= np.float32(1.0 / 255.0)
            return torch.from_numpy(x).permute(0, 3, 1, 2)
        return P.crop_torch(frame, rois, size, border_zero) * (1.0 / 255.0)

    @contextlib.contextmanager
    def _threads(self):
        old = torch.get_num_threads()
        if not self.threads or old == self.threads:
            yield
            return
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(old)

    @torch.inference_mode()
    def palms(self, bgr: np.ndarray, frame: torch.Tensor | None = None) -> list[P.PalmDetection]:
        """Palm detections of a frame (normalised image coordinates), NMS'd, best first."""
        h, w = bgr.shape[:2]
        roi, pad = P.letterbox(w, h)
        with self._threads():
            x = self._crops(bgr, frame, [roi], P.PALM_SIZE, border_zero=True)
            boxes, scores = self.palm(x)
            boxes, scores = boxes[0].float().cpu().numpy(), scores[0].float().cpu().numpy()
        dets = P.decode_palms(boxes, scores, float(self.config.min_detection_confidence))
        return [P.remove_letterbox(d, pad) for d in P.weighted_nms(dets)]

    @torch.inference_mode()
    def hands_in(self, bgr: np.ndarray, rects: list[np.ndarray], frame: torch.Tensor | None = None) -> list[P.HandResult]:
        """The landmark network on normalised ROIs of a frame (one batch), every ROI's result."""
        if not rects:
            return []
        h, w = bgr.shape[:2]
        rois, pads = zip(*(P.pad_roi(P.roi_pixels(r, w, h)) for r in rects))
        with self._threads():
            x = self._crops(bgr, frame, list(rois), P.LANDMARK_SIZE, border_zero=False)
            if self.batch_hands:
                outs = [t.float().cpu().numpy() for t in self.landmark(x)]
            else:
                parts = [[t.numpy() for t in self.landmark(x[i:i + 1])] for i in range(len(rects))]
                outs = [np.concatenate(t) for t in zip(*parts)]
        lm, presence, handed, world = outs
        out = []
        for i, rect in enumerate(rects):
            landmarks, wl = P.project_landmarks(lm[i], world[i], rect, pads[i])
            out.append(P.HandResult(landmarks, wl, float(presence[i].reshape(())), float(handed[i].reshape(())), rect))
        return out

    def process(self, bgr: np.ndarray) -> list[P.HandResult]:
        """One frame through the tracking graph (static mode: detection on every frame)."""
        cfg = self.config
        h, w = bgr.shape[:2]
        frame = self._frame_tensor(bgr)
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
            raise RuntimeError("TorchHands.detect called after close()")
        bgr = as_bgr(frame_bgr)
        h, w = bgr.shape[:2]
        out = [to_handdet(r, w, h) for r in self.process(bgr)]
        cfg = self.config
        if cfg.static and cfg.square_crops and h != w and not out:
            for x0, y0, side in square_crops(w, h):  # as MediaPipeHands does for tall / wide photos
                sub = np.ascontiguousarray(bgr[y0:y0 + side, x0:x0 + side])
                extra = [dataclasses.replace(d, landmarks_px=d.landmarks_px + np.array([x0, y0], np.float32),
                                             landmarks_z=d.landmarks_z * np.float32(side / w))
                         for d in (to_handdet(r, side, side) for r in self.process(sub))]
                out = merge_new(out, extra, cfg.max_hands)
                if len(out) >= cfg.max_hands:
                    break
        return out

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
