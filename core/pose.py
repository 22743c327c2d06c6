"""Landmarks -> MANO for one hand over a clip: shape, twist-swing IK, camera translation.

Batched over the clip's frames (T). Steps:
1. one shape per clip: betas fitted to the median bone lengths of the detector's 3D landmarks;
2. twist-swing IK of the 3D landmarks (MediaPipe's hand-centred frame, camera-aligned axes), rotated
   by each frame's viewing-ray rotation (the detector sees an off-centre hand as if it were centred);
   straight fingers take the twist of the nearest earlier bent frame;
3. translation: the posed joints are placed in the camera frame where the 2D landmarks say;
4. forward kinematics gives the joints (and optionally vertices) in the camera frame.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from . import camera, ik, shape
from .hand_model import MANO21_FROM_MP, MP_FROM_MANO21
from .mano import ManoLayer


@dataclasses.dataclass(frozen=True)
class HandFit:
    """One hand over T frames (numpy, float32). Frames with valid False hold zeros.

    betas (NB,); global_orient (T, 3), hand_pose (T, 15, 3) axis-angle camera frame; transl (T, 3) m;
    joints (T, 21, 3) camera frame, metres, MediaPipe order; valid (T,) bool;
    vertices (T, V, 3) or None.
    """

    betas: np.ndarray
    global_orient: np.ndarray
    hand_pose: np.ndarray
    transl: np.ndarray
    joints: np.ndarray
    valid: np.ndarray
    vertices: np.ndarray | None = None


# Landmark weights for the translation fit: the detector's wrist is not the skeleton's wrist joint.
_TRANSL_W = np.ones(21, np.float32)
_TRANSL_W[0] = 0.0


def previous_twist(twist: torch.Tensor, bend: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """For each frame (T, 5): the twist of the latest earlier frame whose bend weight was >= threshold
    (0 before any); used as the straight-finger fallback."""
    t = twist.shape[0]
    good = (bend >= threshold).cpu().numpy()
    idx = np.where(good, np.arange(t)[:, None], -1)
    last = np.maximum.accumulate(idx, axis=0)
    prev = np.concatenate([np.full((1, last.shape[1]), -1), last[:-1]], 0)  # strictly earlier
    out = torch.zeros_like(twist)
    mask = torch.as_tensor(prev >= 0)
    gathered = torch.gather(twist, 0, torch.as_tensor(np.clip(prev, 0, None)))
    out[mask] = gathered[mask]
    return out


def fit_hand(layer: ManoLayer, kp_px: np.ndarray, world: np.ndarray, detected: np.ndarray, K: np.ndarray,
             with_vertices: bool = False, perspective: bool = True) -> HandFit:
    """Fit one hand over a clip.

    Args:
        layer: the hand model of this hand's side.
        kp_px (T, 21, 2): 2D landmarks, pixels, MediaPipe order.
        world (T, 21, 3): detector 3D landmarks, metres, camera-aligned axes, MediaPipe order.
        detected (T,) bool: frames where the hand was found.
        K (T, 3, 3): intrinsics per frame.
        with_vertices: also skin the mesh for every frame.
        perspective: apply the viewing-ray rotation (step 2).
    Returns:
        HandFit.
    """
    n_frames = len(detected)
    det = np.asarray(detected, bool)
    dt = layer.v_template.dtype
    n_b = layer.n_betas
    empty = HandFit(np.zeros(n_b, np.float32), np.zeros((n_frames, 3), np.float32),
                    np.zeros((n_frames, 15, 3), np.float32), np.zeros((n_frames, 3), np.float32),
                    np.zeros((n_frames, 21, 3), np.float32), det.copy(),
                    np.zeros((n_frames, layer.v_template.shape[0], 3), np.float32) if with_vertices else None)
    if not det.any():
        return empty
    w3 = torch.as_tensor(world[det], dtype=dt)[:, MANO21_FROM_MP]  # (N, 21, 3) MANO-21
    px = torch.as_tensor(kp_px[det], dtype=dt)
    kk = torch.as_tensor(K[det], dtype=dt)
    n = w3.shape[0]
    # 1. Shape from the median distances.
    lengths = shape.pair_lengths(w3).median(0).values
    betas = shape.fit_betas(layer, lengths)
    bb = betas[None].expand(n, -1)
    # 2. IK (twice: the second pass gives straight fingers the previous bent frame's twist).
    if perspective:
        w3 = (camera.ray_rotation(px, kk)[:, None] @ w3[..., None])[..., 0]
    with torch.no_grad():
        first = ik.solve(layer, w3, bb)
        res = ik.solve(layer, w3, bb, twist_fallback=previous_twist(first.twist, first.bend))
        rel = layer(bb, res.global_orient, res.hand_pose, None, with_vertices=False, rotmats=res.rotmats)
        root = rel.joints21[:, :1]
        rel_mp = (rel.joints21 - root)[:, MP_FROM_MANO21]
        # 3. Translation from the 2D landmarks.
        w_t = torch.as_tensor(_TRANSL_W, dtype=dt)[None].expand(n, -1)
        t_root = camera.solve_translation(rel_mp, px, kk, w_t)
        # FK without transl keeps the wrist at its rest position J0; the wrist belongs at t_root.
        transl = t_root - rel.rest_joints[:, 0]
        out = layer(bb, res.global_orient, res.hand_pose, transl, with_vertices=with_vertices, rotmats=res.rotmats)
    go = np.zeros((n_frames, 3), np.float32)
    hp = np.zeros((n_frames, 15, 3), np.float32)
    tr = np.zeros((n_frames, 3), np.float32)
    jo = np.zeros((n_frames, 21, 3), np.float32)
    go[det] = res.global_orient.numpy()
    hp[det] = res.hand_pose.numpy()
    tr[det] = transl.numpy()
    jo[det] = out.joints21[:, MP_FROM_MANO21].numpy()
    verts = None
    if with_vertices:
        verts = np.zeros((n_frames, layer.v_template.shape[0], 3), np.float32)
        verts[det] = out.vertices.numpy()
    return HandFit(betas.numpy().astype(np.float32), go, hp, tr, jo, det.copy(), verts)
