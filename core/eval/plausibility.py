"""Plausibility of captured hands: joint-limit violations and finger-finger penetration per frame.

The two checks of issue 5's "plausible on every frame": how far each joint's angles lie outside its
anatomical range (`core.solve.limits`), and how deep capsules of different fingers overlap (`core.solve.collide`).
Issue 10 adds the same penetration measured on the mesh (`core.contact.hands.self_penetration`: fingers into
each other and fingers into the palm), which the capsule penetration fix does not see, so its figure is not
zero by construction. All are measured on the stored MANO parameters of a clip (``global_orient``,
``hand_pose``, ``betas``), i.e. on exactly the poses that get keyed in Blender.
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
    its range, degrees (0 inside); penetration_mm (N,): the deepest finger-finger overlap of the capsules,
    mm; mesh_penetration_mm (N,): the deepest vertex of a finger inside another finger or the palm, or
    of the palm inside a finger, on the mesh, mm; mesh_finger_mm (N,): the same, fingers into fingers
    only (both None when not measured).
    """

    side: str
    frames: np.ndarray
    limit_deg: np.ndarray
    penetration_mm: np.ndarray
    mesh_penetration_mm: np.ndarray | None = None
    mesh_finger_mm: np.ndarray | None = None

    @property
    def limit_frames(self) -> int:
        return int((self.limit_deg > LIMIT_DEG).sum())

    @property
    def penetration_frames(self) -> int:
        return int((self.penetration_mm > PENETRATION_M * 1000.0).sum())

    @property
    def mesh_penetration_frames(self) -> int:
        return int((self.mesh_penetration_mm > PENETRATION_M * 1000.0).sum()) if self.mesh_penetration_mm is not None else 0

    def summary(self) -> dict:
        out = {"frames": int(self.frames.size), "limit_viol_frames": self.limit_frames,
               "max_limit_deg": float(self.limit_deg.max(initial=0.0)),
               "penetration_frames": self.penetration_frames,
               "max_penetration_mm": float(self.penetration_mm.max(initial=0.0))}
        if self.mesh_penetration_mm is not None:
            out["mesh_penetration_frames"] = self.mesh_penetration_frames
            out["max_mesh_penetration_mm"] = float(self.mesh_penetration_mm.max(initial=0.0))
            out["mesh_finger_frames"] = int((self.mesh_finger_mm > PENETRATION_M * 1000.0).sum())
        return out


def check_poses(layer, rotmats: torch.Tensor, betas: torch.Tensor, with_vertices: bool = False) -> tuple:
    """Limit excess (B,) degrees and capsule penetration depth (B,) mm of local rotations (B, 16, 3, 3) of
    ``layer``'s hand with shape ``betas`` (B, NB) or (1, NB) - a clip's one shape: the capsules are measured on
    ``betas[:1]`` for every frame (frames of different shapes: `core.solve.collide.hand_capsules` of all the rows).
    with_vertices: also the mesh penetration (`mesh_penetration`): (limit, capsules, mesh all pairs, mesh fingers
    only)."""
    if rotmats.shape[0] == 0:
        return (np.zeros(0),) * (4 if with_vertices else 2)
    with torch.no_grad():
        bb = betas.expand(rotmats.shape[0], -1)
        viol = limits.violations_deg(limits.joint_angles(layer, rotmats, bb))
        j = layer(bb, None, None, None, with_vertices=False, rotmats=rotmats).joints21
        pen = collide.penetration_depth(j, collide.hand_capsules(layer, betas[:1]))
    out = np.asarray(viol).reshape(len(j), -1).max(1), pen.cpu().numpy() * 1000.0
    return (*out, *mesh_penetration(layer, rotmats, betas)) if with_vertices else out


def mesh_penetration(layer, rotmats: torch.Tensor, betas: torch.Tensor, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Self-penetration on the mesh (`core.contact.hands.self_penetration_pairs`) of local rotations
    (B, 16, 3, 3) with shape ``betas`` (B, NB) or (1, NB): (deepest of all part pairs (B,) mm, deepest
    finger into finger (B,) mm). About 12-15 ms a frame on 2 cores."""
    from ..contact.hands import self_penetration_pairs

    pairs = []
    with torch.no_grad():
        for i in range(0, rotmats.shape[0], chunk):
            r = rotmats[i : i + chunk]
            v = layer(betas.expand(r.shape[0], -1) if betas.shape[0] == 1 else betas[i : i + chunk], None, None, None,
                      with_vertices=True, rotmats=r).vertices
            pairs.append(self_penetration_pairs(layer, v))
    pr = np.concatenate(pairs) if pairs else np.zeros((0, 6, 6))
    return pr.max((1, 2), initial=0.0), pr[:, :5, :5].max((1, 2), initial=0.0)


def check_clip(clip: ClipResult, hand: int, mesh: bool = True) -> Plausibility:
    """`Plausibility` of hand ``hand`` of ``clip`` on its valid frames (detected or filled); mesh: also the
    mesh penetration (600 frames: about 8 s on 2 cores)."""
    from ..hand.load import load_model
    from ..hand.mano import ManoLayer
    from ..rot import aa_to_rotmat

    ok = np.asarray(clip.valid[hand], bool)
    layer = ManoLayer(load_model(clip.sides[hand], clip.model_path(hand)))
    aa = np.concatenate([clip.global_orient[hand][:, None], clip.hand_pose[hand]], 1)[ok]
    rot = aa_to_rotmat(torch.as_tensor(aa, dtype=torch.float32))
    betas = torch.as_tensor(clip.betas[hand], dtype=torch.float32)[None]
    figs = check_poses(layer, rot, betas, with_vertices=mesh)
    return Plausibility(clip.sides[hand], np.nonzero(ok)[0], *figs)
