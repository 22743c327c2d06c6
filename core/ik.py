"""Twist-swing analytic inverse kinematics: 21 hand joints -> MANO pose (the paper's parametric step).

For each frame (batched, torch, differentiable):
1. Wrist: a weighted Kabsch fit of the rest palm points (wrist + the five children of the wrist:
   index1, middle1, pinky1, ring1, thumb1, which MANO moves rigidly with the wrist) to the observed
   ones gives the global orient and the wrist position (hence ``transl``).
2. Each finger's first joint: **swing** = the minimal rotation taking the rest bone to the observed
   bone (in the parent's frame); **twist** about the bone so that the finger's hinge axis lies along
   the normal of the observed bend plane (the plane of the next two bones). Straight fingers have no
   bend plane: the twist then falls back to ``twist_fallback`` (0 = the palm-aligned hinge, or the
   previous frame's twist), blended by how bent the finger is.
3. The second and third joints: swing only (hinge joints; their twist is the finger's twist).

Hinge axes come from the rest skeleton: a finger flexes about ``bone x volar`` (volar = the palm's
normal on the palm side), so positive rotation curls the finger into the palm; the thumb's axis is
tilted towards the palm centre (an approximation of its opposed posture, documented in `hinge_axes`).
"""
from __future__ import annotations

import dataclasses

import torch

from .hand_model import FINGERS, MANO21_PARENTS
from .mano import ManoLayer
from .rot import axis_rotation, rotation_between, rotmat_to_aa

PALM = (0, 1, 4, 7, 10, 13)  # wrist and its five children (rigid with the wrist in MANO)
FINGER_ORDER = ("thumb", "index", "middle", "ring", "pinky")


@dataclasses.dataclass(frozen=True)
class IKResult:
    """Pose from joints. B = batch.

    global_orient (B, 3) and hand_pose (B, 15, 3): axis-angle radians, MANO order.
    rotmats (B, 16, 3, 3): the same as local rotation matrices.
    transl (B, 3): metres, so that FK(pose) + transl puts the wrist where the palm fit says.
    twist (B, 5): twist angle (rad) applied at each finger's first joint (thumb, index, middle, ring, pinky).
    bend (B, 5): 0..1 confidence of the bend plane (0 = straight finger, twist came from the fallback).
    """

    global_orient: torch.Tensor
    hand_pose: torch.Tensor
    rotmats: torch.Tensor
    transl: torch.Tensor
    twist: torch.Tensor
    bend: torch.Tensor


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-9)


def volar_normal(rest_joints: torch.Tensor, side: str) -> torch.Tensor:
    """Palm normal pointing out of the palm (B, 3) from rest joints (B, 16, 3)."""
    w, idx, pinky = rest_joints[:, 0], rest_joints[:, 1], rest_joints[:, 7]
    n = _unit(torch.cross(idx - w, pinky - w, dim=-1))
    return n if side == "right" else -n


def hinge_axes(rest_joints: torch.Tensor, rest_tips: torch.Tensor, side: str) -> torch.Tensor:
    """Flexion axis per finger (B, 5, 3) in the rest frame, order thumb, index, middle, ring, pinky.

    Fingers: normalize(bone x volar), bone = first joint -> second joint. Thumb: the same with the
    volar normal replaced by normalize(volar + towards-palm-centre), a 45-degree opposed approximation.
    Positive rotation about the axis is flexion for the fingers.
    """
    volar = volar_normal(rest_joints, side)
    axes = []
    for name in FINGER_ORDER:
        (j1, j2, _), _ = FINGERS[name]
        bone = _unit(rest_joints[:, j2] - rest_joints[:, j1])
        ref = volar
        if name == "thumb":
            towards = rest_joints[:, 4] - rest_joints[:, j2]  # thumb MCP -> middle1
            towards = _unit(towards - (towards * bone).sum(-1, keepdim=True) * bone)
            ref = _unit(volar + towards)
        axes.append(_unit(torch.cross(bone, ref, dim=-1)))
    return torch.stack(axes, 1)


def kabsch(src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted rigid fit dst ~ R src + t. src, dst (B, N, 3); w (B, N) or None -> R (B, 3, 3), t (B, 3)."""
    if w is None:
        w = torch.ones(src.shape[:2], dtype=src.dtype, device=src.device)
    w = (w / w.sum(1, keepdim=True).clamp_min(1e-12))[..., None]
    cs, cd = (w * src).sum(1), (w * dst).sum(1)
    h = ((src - cs[:, None]) * w).transpose(1, 2) @ (dst - cd[:, None])  # (B, 3, 3) = sum w s d^T
    u, _, vt = torch.linalg.svd(h)
    d = torch.det(vt.transpose(1, 2) @ u.transpose(1, 2))
    e = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    r = vt.transpose(1, 2) @ e @ u.transpose(1, 2)
    t = cd - (r @ cs[..., None])[..., 0]
    return r, t


def solve(
    layer: ManoLayer,
    joints21: torch.Tensor,
    betas: torch.Tensor,
    palm_weights: torch.Tensor | None = None,
    twist_fallback: torch.Tensor | None = None,
    bend_eps: tuple[float, float] = (0.05, 0.25),
) -> IKResult:
    """Analytic IK.

    Args:
        layer: the hand model (its side decides the volar direction).
        joints21 (B, 21, 3): observed joints in MANO-21 order, metres, any frame (camera frame usually).
        betas (B, NB): the hand's shape (sets rest bone directions and lengths).
        palm_weights (B, 6) or None: Kabsch weights for wrist, index1, middle1, pinky1, ring1, thumb1.
        twist_fallback (B, 5) or None: twist (rad) used for straight fingers (default 0).
        bend_eps: sin(bend angle) below which the bend plane is ignored / above which it is fully trusted.
    Returns:
        IKResult.
    """
    bsz, dt = joints21.shape[0], joints21.dtype
    _, j_rest = layer.shaped(betas)
    tips_rest = layer.rest_tips(betas)
    rest21 = torch.cat([j_rest, tips_rest], 1)  # (B, 21, 3)
    axes = hinge_axes(j_rest, tips_rest, layer.side)
    if twist_fallback is None:
        twist_fallback = torch.zeros(bsz, 5, dtype=dt, device=joints21.device)

    # 1. Wrist by Kabsch on the rigid palm points.
    r0, t0 = kabsch(rest21[:, PALM], joints21[:, PALM], palm_weights)
    wrist = (r0 @ rest21[:, 0, :, None])[..., 0] + t0
    transl = wrist - j_rest[:, 0]

    local = [None] * 16
    glob = [None] * 16
    local[0] = glob[0] = r0
    twists, bends = [], []
    for f, name in enumerate(FINGER_ORDER):
        (j1, j2, j3), tip = FINGERS[name]
        chain = (j1, j2, j3, tip)
        obs = [joints21[:, c] - joints21[:, MANO21_PARENTS[c]] for c in (j2, j3, tip)]  # bones after j1, j2, j3
        rest = [rest21[:, c] - rest21[:, MANO21_PARENTS[c]] for c in (j2, j3, tip)]
        for k in range(3):
            j = chain[k]
            gp = glob[int(MANO21_PARENTS[j])]
            t_loc = _unit((gp.transpose(1, 2) @ obs[k][..., None])[..., 0])
            r_loc = _unit(rest[k])
            swing = rotation_between(r_loc, t_loc)
            if k == 0:
                # 2. Twist from the bend plane of the next two bones (and the two after, if straighter).
                u = [_unit((gp.transpose(1, 2) @ o[..., None])[..., 0]) for o in obs]
                c1 = torch.cross(u[0], u[1], dim=-1)
                c2 = torch.cross(u[1], u[2], dim=-1)
                sgn = torch.where((c1 * c2).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(dt)
                n = c1 + sgn * c2
                a = (swing @ axes[:, f, :, None])[..., 0]
                a_p = _unit(a - (a * t_loc).sum(-1, keepdim=True) * t_loc)
                n_p = n - (n * t_loc).sum(-1, keepdim=True) * t_loc
                strength = n_p.norm(dim=-1)
                n_p = _unit(n_p)
                theta = torch.atan2((torch.cross(a_p, n_p, dim=-1) * t_loc).sum(-1), (a_p * n_p).sum(-1))
                # The hinge axis is a line: pick the smaller twist (|theta| <= pi/2).
                theta = torch.where(theta > torch.pi / 2, theta - torch.pi, theta)
                theta = torch.where(theta < -torch.pi / 2, theta + torch.pi, theta)
                lo, hi = bend_eps
                wgt = ((strength - lo) / (hi - lo)).clamp(0, 1)
                wgt = wgt * wgt * (3 - 2 * wgt)  # smoothstep
                fb = twist_fallback[:, f]
                theta = wgt * theta + (1 - wgt) * fb
                rot = axis_rotation(t_loc, theta) @ swing
                twists.append(theta)
                bends.append(wgt)
            else:
                rot = swing
            local[j] = rot
            glob[j] = gp @ rot
    rotmats = torch.stack(local, 1)
    aa = rotmat_to_aa(rotmats)
    return IKResult(
        global_orient=aa[:, 0],
        hand_pose=aa[:, 1:],
        rotmats=rotmats,
        transl=transl,
        twist=torch.stack(twists, 1),
        bend=torch.stack(bends, 1),
    )
