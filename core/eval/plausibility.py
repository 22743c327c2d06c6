"""Plausibility of captured hands: joint-limit violations and finger-finger penetration per frame.

The two checks of issue 5's "plausible on every frame": how far each joint's angles lie outside its
anatomical range (`core.solve.limits`), and how deep capsules of different fingers overlap (`core.solve.collide`).
Both are measured on the stored MANO parameters of a clip (``global_orient``, ``hand_pose``, ``betas``),
i.e. on exactly the poses that get keyed in Blender.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..solve import collide, limits
from ..io.clip import ClipResult

LIMIT_DEG = 5.0  # a frame counts as a violation when some angle is more than this outside its range
PENETRATION_M = 0.002  # a frame counts as penetrating when two fingers overlap deeper than this


@dataclasses.dataclass(frozen=True)
class Plausibility:
    """Per-frame figures of one hand over the frames where it holds a pose (N = ``frames.size``).

    frames (N,) int: clip rows (not source frame numbers); limit_deg (N,): the largest angle outside
    its range, degrees (0 inside); penetration_mm (N,): the deepest finger-finger overlap, mm.
    """

    side: str
    frames: np.ndarray
    limit_deg: np.ndarray
    penetration_mm: np.ndarray

    @property
    def limit_frames(self) -> int:
        return int((self.limit_deg > LIMIT_DEG).sum())

    @property
    def penetration_frames(self) -> int:
        return int((self.penetration_mm > PENETRATION_M * 1000.0).sum())

    def summary(self) -> dict:
        return {"frames": int(self.frames.size), "limit_viol_frames": self.limit_frames,
                "max_limit_deg": float(self.limit_deg.max(initial=0.0)),
                "penetration_frames": self.penetration_frames,
                "max_penetration_mm": float(self.penetration_mm.max(initial=0.0))}


def check_poses(layer, rotmats: torch.Tensor, betas: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Limit excess (B,) degrees and penetration depth (B,) mm of local rotations (B, 16, 3, 3) of
    ``layer``'s hand with shape ``betas`` (B, NB) or (1, NB)."""
    if rotmats.shape[0] == 0:
        return np.zeros(0), np.zeros(0)
    with torch.no_grad():
        bb = betas.expand(rotmats.shape[0], -1)
        viol = limits.violations_deg(limits.joint_angles(layer, rotmats, bb))
        j = layer(bb, None, None, None, with_vertices=False, rotmats=rotmats).joints21
        pen = collide.penetration_depth(j, collide.hand_capsules(layer, betas[:1]))
    return np.asarray(viol).reshape(len(j), -1).max(1), pen.cpu().numpy() * 1000.0


def check_clip(clip: ClipResult, hand: int) -> Plausibility:
    """`Plausibility` of hand ``hand`` of ``clip`` on its valid frames (detected or filled)."""
    from ..hand.load import load_model
    from ..hand.mano import ManoLayer
    from ..rot import aa_to_rotmat

    ok = np.asarray(clip.valid[hand], bool)
    layer = ManoLayer(load_model(clip.sides[hand], clip.model_path(hand)))
    aa = np.concatenate([clip.global_orient[hand][:, None], clip.hand_pose[hand]], 1)[ok]
    rot = aa_to_rotmat(torch.as_tensor(aa, dtype=torch.float32))
    betas = torch.as_tensor(clip.betas[hand], dtype=torch.float32)[None]
    lim, pen = check_poses(layer, rot, betas)
    return Plausibility(clip.sides[hand], np.nonzero(ok)[0], lim, pen)
