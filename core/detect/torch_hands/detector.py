"""`TorchHands`: the legacy MediaPipe Hands graph on the torch networks, behind the `Detector` interface.

Same outputs and conventions as `core.detect.mp_hands.MediaPipeHands` (sides swapped from MediaPipe's
mirrored-selfie labels, landmarks in image pixels with the corner origin, z and world landmarks as
MediaPipe gives them), same tracking behaviour (see `pipeline`). On the CPU the crops are cut with
OpenCV exactly as MediaPipe cuts them; on a GPU with ``grid_sample`` from the frame uploaded once, and
all hands of a frame go through the landmark network in one batch.

Palm detection schedule: `core.detect.schedule` (shared with `core.detect.hybrid.HybridHands`).

On the CPU the networks run on ONE intra-op thread (as MediaPipe's XNNPACK runs them on desktop Linux)
and one hand crop at a time: with 2 threads on a loaded machine every operator waits at OpenMP's barrier
for a descheduled thread (measured 4-20x slower a forward), and a batch of 2 crops measured slower than 2
batches of 1 (BENCHMARKS.md, "Torch port").
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from .. import torch_device
from ..base import DetectorConfig
from ..schedule import ScheduledHands
from . import pipeline as P
from .net import frozen, load_net


class TorchHands(ScheduledHands):
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
        super().__init__(config, palm_every, palm_grace)
        if int(config.model_complexity) != 1:
            from ...errors import CaptureError

            raise CaptureError("the torch hand detector has the full models only (model_complexity 1)")
        self.device = torch_device(str(device or config.device))
        self.grid_sample = self.device.type != "cpu" if grid_sample is None else bool(grid_sample)
        self.threads = (1 if threads is None else int(threads)) if self.device.type == "cpu" else 0
        self.batch_hands = self.device.type != "cpu"  # on the CPU one crop at a time is faster
        self.palm = load_net("palm", self.device)
        self.landmark = load_net("landmark", self.device)
        if self.device.type == "cpu":  # traced and frozen: same outputs, less time a forward
            with self._threads():
                self.palm, self.landmark = frozen(self.palm), frozen(self.landmark)

    # ------------------------------------------------------------------ one image through the graph
    def _frame(self, bgr: np.ndarray) -> torch.Tensor | None:
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
