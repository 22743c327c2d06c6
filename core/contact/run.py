"""Contact refinement of a clip file: objects in, refined clip and before/after figures out.

`refine_clip` is what ``python -m core refine`` and the add-on's worker run: it turns the clip's
hands into `core.contact.refine.HandTrack`, the objects into `core.contact.sdf.Body` (an SDF grid
each, built once), refines, and returns a new `ClipResult` (pose, translation and joints replaced;
``contact`` and ``penetration_mm`` added) with a `Report` of the figures before and after.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..errors import CaptureError
from ..hand.model import MP_FROM_MANO21
from ..io.clip import ClipResult
from ..rot import aa_to_rotmat, rotmat_to_aa
from . import metrics
from .mesh import TriMesh
from .refine import REGIONS, ContactConfig, HandTrack, refine_contact
from .sdf import Body, Field


@dataclasses.dataclass
class Report:
    """Figures per hand (side -> dict) before and after: max / mean penetration (mm, exact, over
    valid frames), frames deeper than 2 mm, pose change (mm), reprojection change (px), jitter
    (mm/frame^2), contact frames per region."""

    hands: dict

    def lines(self) -> list[str]:
        out = []
        for side, r in self.hands.items():
            out.append(f"{side}: penetration max {r['max_before_mm']:.2f} -> {r['max_after_mm']:.2f} mm, "
                       f"frames > 2 mm {r['frames_over_2mm_before']} -> {r['frames_over_2mm_after']} of {r['frames']}; "
                       f"pose change {r['pose_change_mm']:.2f} mm, reprojection change {r['reproj_change_px']:.2f} px, "
                       f"jitter {r['jitter_before']:.2f} -> {r['jitter_after']:.2f} mm/frame^2; contact frames "
                       + ", ".join(f"{k} {v}" for k, v in r["contact_frames"].items()))
        return out


def _layer(clip: ClipResult, h: int, dtype):
    from ..hand.load import load_model
    from ..hand.mano import ManoLayer

    return ManoLayer(load_model(clip.sides[h], clip.model_path(h)), dtype=dtype)


FIELD_RES = 64  # SDF grid nodes along a mesh's longest side: the grid steps only bring the hand near the surface,
# the exact steps finish (same penetration, volume and recall as 128 on the synthetic grasps; build 0.5 vs 4.4 s)


def bodies_for(meshes: list[TriMesh], transforms: list[np.ndarray | None], n_frames: int,
               res: int = FIELD_RES) -> list[Body]:
    """One `Body` per mesh with its SDF grid; transforms[i] (T, 4, 4) mesh-to-camera or None (static)."""
    out = []
    for m, tr in zip(meshes, transforms):
        if tr is not None and len(tr) != n_frames:
            raise CaptureError(f"{m.name}: {len(tr)} transforms for a clip of {n_frames} frames; give one per frame")
        out.append(Body(m, tr, Field.build(m, res=res)))
    return out


def refine_clip(clip: ClipResult, bodies: list[Body], config: ContactConfig | None = None,
                with_vertices: bool = False, progress=None) -> tuple[ClipResult, Report]:
    """Refine every hand of ``clip`` against ``bodies`` and each other; returns (clip, report)."""
    cfg = config or ContactConfig()
    dtype = torch.float32
    K = torch.as_tensor(np.asarray(clip.K), dtype=dtype)
    tracks, layers = [], []
    for h in range(clip.n_hands):
        layer = _layer(clip, h, dtype)
        layers.append(layer)
        aa = np.concatenate([clip.global_orient[h][:, None], clip.hand_pose[h]], 1)
        rot = aa_to_rotmat(torch.as_tensor(aa, dtype=dtype))
        kp = torch.as_tensor(np.asarray(clip.landmarks_px[h]), dtype=dtype)
        tracks.append(HandTrack(layer, torch.as_tensor(clip.betas[h], dtype=dtype)[None], rot,
                                torch.as_tensor(clip.transl[h], dtype=dtype), np.asarray(clip.valid[h], bool),
                                kp, np.asarray(clip.detected[h], bool)))
    if not any(t.valid.any() for t in tracks):
        raise CaptureError("the clip holds no hand poses to refine (no frame with a detected hand)")
    if len(tracks) > 2:
        raise CaptureError(f"the clip holds {len(tracks)} hands; contact refinement handles one or two")
    refined = refine_contact(tracks, bodies, K, cfg, progress)
    go, hp, tr, joints = [], [], [], []
    verts = [] if with_vertices else None
    rep = {}
    for h, (t, r) in enumerate(zip(tracks, refined)):
        aa = rotmat_to_aa(r.rotmats).numpy()
        go.append(aa[:, 0])
        hp.append(aa[:, 1:])
        tr.append(r.transl.numpy())
        with torch.no_grad():
            out = t.layer(t.betas.expand(len(aa), -1), None, None, r.transl, with_vertices=with_vertices,
                          rotmats=r.rotmats)
            before = t.layer(t.betas.expand(len(aa), -1), None, None, t.transl, with_vertices=False,
                             rotmats=t.rotmats)
        j_new = out.joints21[:, MP_FROM_MANO21].numpy()
        j_old = before.joints21[:, MP_FROM_MANO21].numpy()
        ok = t.valid
        joints.append(np.where(ok[:, None, None], j_new, np.asarray(clip.joints[h])))
        if verts is not None:
            verts.append(out.vertices.numpy())
        rep[clip.sides[h] if clip.sides.count(clip.sides[h]) == 1 else f"{clip.sides[h]}{h}"] = {
            "frames": int(ok.sum()),
            "max_before_mm": float(r.before_mm[ok].max(initial=0.0)),
            "max_after_mm": float(r.penetration_mm[ok].max(initial=0.0)),
            "frames_over_2mm_before": int((r.before_mm[ok] > 2.0).sum()),
            "frames_over_2mm_after": int((r.penetration_mm[ok] > 2.0).sum()),
            "pose_change_mm": metrics.pose_change_mm(j_old[ok], j_new[ok]) if ok.any() else 0.0,
            "reproj_change_px": metrics.reprojection_change_px(j_old[ok], j_new[ok], np.asarray(clip.K)[ok]) if ok.any() else 0.0,
            "jitter_before": metrics.jitter(j_old, ok),
            "jitter_after": metrics.jitter(j_new, ok),
            "contact_frames": {name: int(r.contact[ok, k].sum()) for k, name in enumerate(REGIONS)},
        }
    new = dataclasses.replace(
        clip, global_orient=np.stack(go).astype(np.float32), hand_pose=np.stack(hp).astype(np.float32),
        transl=np.stack(tr).astype(np.float32), joints=np.stack(joints).astype(np.float32),
        vertices=np.stack(verts).astype(np.float32) if verts is not None else None,
        faces=np.asarray(layers[0].faces.numpy()) if verts is not None else None,  # stale vertices are dropped
        contact=np.stack([r.contact for r in refined]), penetration_mm=np.stack([r.penetration_mm for r in refined]).astype(np.float32))
    return new, Report(rep)


def refine_from_args(args, reporter) -> tuple:
    """``python -m core refine``: load the clip and objects, refine, write the clip; (path, Report)."""
    from ..io.clip import load_clip, save_clip
    from ..progress import Progress
    from .mesh import load_mesh, load_transforms

    clip = load_clip(args.clip)
    meshes, transforms = [], []
    for mesh_path, tr_path in args.object:
        meshes.append(load_mesh(mesh_path))
        transforms.append(load_transforms(tr_path, clip.n_frames) if tr_path else None)
    if not meshes and not (clip.n_hands == 2 and not args.no_hand_hand):
        raise CaptureError("nothing to refine against: give --object MESH (and transforms), or a clip with two "
                           "hands for hand-hand refinement")
    cfg = ContactConfig(pin=tuple(args.pin), exclude=tuple(args.exclude), hand_hand=not args.no_hand_hand)

    def progress(frac: float, _message: str = "") -> None:
        reporter.progress(Progress("refine", int(round(100 * frac)), 100))

    progress(0.0)
    bodies = bodies_for(meshes, transforms, clip.n_frames)
    new, report = refine_clip(clip, bodies, cfg, with_vertices=args.with_vertices, progress=progress)
    return save_clip(new, args.out), report
