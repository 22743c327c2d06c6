"""The paper's network in the capture (``capture --model paper``): the detector's hands -> the network's MANO branch.

For every detected hand of every frame: the crop the tracker would cut from the detector's landmarks
(`core.net.paper.data.crop_roi`; flipped for a left hand), the frozen trunk, the network; its MANO branch's
joints (wrist-relative, the network's frame) turned back into the camera frame (`view_rotation`'s inverse).
`core.capture` then fits the hand model to them as to the detector's 3D landmarks (IK, translation and
refinement against the detector's 2D, clean-up, limits), with the VAE already applied (inside the network)
and no MediaPipe depth: what gets keyed is the network's MANO branch placed on the image.
"""
from __future__ import annotations

import numpy as np

from .data import crop_image, crop_roi, view_rotation

DEFAULT_NAME = "paper.pt"


def default_weights():
    from .. import WEIGHTS_DIR

    return WEIGHTS_DIR / DEFAULT_NAME


class PaperModel:
    """The trunk and a trained network (`core.net.paper.train.load`)."""

    def __init__(self, weights=None, threads: int = 1):
        from .data import Trunk
        from .train import load

        self.path = default_weights() if weights is None else weights
        self.net, blob = load(self.path)
        self.meta = blob["meta"]
        self.step = int(blob["step"])
        self.trunk = Trunk(threads=threads)

    def describe(self) -> str:
        """One line recorded in the clip: which network ran."""
        from pathlib import Path

        return (f"paper:{Path(self.path).name} step {self.step} code {self.meta.get('code', '?')[:12]} "
                f"data {self.meta.get('train_crops', '?')} crops")

    def branches(self, bgr: np.ndarray, landmarks_px: np.ndarray, K: np.ndarray, side: str) -> dict:
        """Both branches of one hand whose detector landmarks (21, 2) pixel centres are given: joints (21, 3)
        MANO-21 order and vertices (V, 3) of the non-parametric ("np") and MANO ("mano") branches, camera axes,
        wrist-relative, metres (a left hand mirrored back)."""
        import torch

        left = side == "left"
        roi = crop_roi(landmarks_px)
        view = view_rotation(roi, K, left)
        o = self.trunk(crop_image(bgr, roi, left)[None])
        from .model import separated

        with torch.no_grad():
            anchor = self.net.anchor_mesh(torch.as_tensor(o["world"])) if self.net.anchor else None
            out = separated(self.net, self.net(self.net.inputs(o["feature"], o["world"], o["screen"]), anchor=anchor))
        back = lambda t: t[0].numpy().astype(np.float64) @ view  # noqa: E731  view is orthogonal
        res = {"np_joints": back(out.joints_np), "np_verts": back(out.verts_np),
               "mano_joints": back(out.joints_mano), "mano_verts": back(out.verts_mano),
               "mano_rotmats": out.rotmats[0].numpy(), "betas": out.betas[0].numpy()}  # right-hand model, net frame
        if anchor is not None:  # the anchored decoder's start (for benchmarks): MediaPipe -> VAE -> IK -> model
            res.update(anchor_joints=back(anchor[1]), anchor_verts=back(anchor[0]))
        return res

    def joints(self, bgr: np.ndarray, landmarks_px: np.ndarray, K: np.ndarray, side: str) -> np.ndarray:
        """MANO-branch joints (21, 3) MediaPipe order, camera axes, wrist-relative, metres, of one hand whose
        detector landmarks (21, 2) pixel centres are given."""
        from ...hand.model import MP_FROM_MANO21

        return self.branches(bgr, landmarks_px, K, side)["mano_joints"][MP_FROM_MANO21].astype(np.float32)


def network_world(model: PaperModel, frames, slots, K: np.ndarray) -> list[np.ndarray]:
    """Per slot (T, 21, 3) the network's joints where the slot is detected (zeros elsewhere); ``frames``
    yields (clip position, BGR image) for the clip's frames in order; K (T, 3, 3)."""
    out = [np.zeros((len(s.detected), 21, 3), np.float32) for s in slots]
    for k, bgr in frames:
        for h, s in enumerate(slots):
            if s.detected[k]:
                out[h][k] = model.joints(bgr, np.asarray(s.landmarks_px[k], np.float64) - 0.5, K[k], s.side)
    return out
