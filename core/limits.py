"""Anatomical joint ranges and their violations, in each joint's twist-swing frame.

A finger joint's local rotation is split into a twist about its rest bone and a swing whose axis is
decomposed into flexion (about the finger's hinge axis, `core.ik.hinge_axes`) and abduction (about
the third axis). Ranges in degrees, approximate active ranges of motion from:
* Hume et al., "Functional range of motion of the joints of the hand", J Hand Surg 1990;
* Cobos et al., "Efficient human hand kinematics for manipulation tasks", IROS 2008 (Table I);
* Kapandji, "The Physiology of the Joints", vol. 1 (thumb CMC/MCP/IP).
Slightly widened for passive motion and detector-convention differences.
"""
from __future__ import annotations

import numpy as np
import torch

from .hand_model import FINGERS
from .ik import FINGER_ORDER, _unit, hinge_axes, volar_normal
from .mano import ManoLayer
from .rot import rotmat_to_quat

# (flex_min, flex_max, abd_min, abd_max, twist_min, twist_max) degrees, per joint level.
FINGER_RANGES = np.array([
    [-40, 100, -30, 30, -20, 20],  # MCP
    [-10, 120, -10, 10, -15, 15],  # PIP
    [-25, 95, -10, 10, -15, 15],   # DIP
], dtype=np.float64)
THUMB_RANGES = np.array([
    [-40, 70, -40, 60, -40, 40],   # CMC (thumb1)
    [-20, 80, -20, 20, -20, 20],   # MCP (thumb2)
    [-30, 95, -15, 15, -20, 20],   # IP (thumb3)
], dtype=np.float64)


def joint_angles(layer: ManoLayer, rotmats: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Flexion, abduction, twist (B, 15, 3) radians of joints 1..15 (MANO order) from local rotations
    rotmats (B, 16, 3, 3) and betas (B, NB)."""
    j_rest = layer.rest_joints(betas)
    tips = layer.rest_tips(betas)
    axes = hinge_axes(j_rest, tips, layer.side)
    volar = volar_normal(j_rest, layer.side)
    out = torch.zeros(rotmats.shape[0], 16, 3, dtype=rotmats.dtype, device=rotmats.device)
    q = rotmat_to_quat(rotmats)  # (B, 16, 4)
    rest21 = torch.cat([j_rest, tips], 1)
    for f, name in enumerate(FINGER_ORDER):
        (j1, j2, j3), tip = FINGERS[name]
        chain = (j1, j2, j3, tip)
        for k in range(3):
            j = chain[k]
            b = _unit(rest21[:, chain[k + 1]] - rest21[:, j])
            a = axes[:, f]
            a = _unit(a - (a * b).sum(-1, keepdim=True) * b)
            c = torch.cross(b, a, dim=-1)
            w, v = q[:, j, :1], q[:, j, 1:]
            # twist-swing: q = q_swing * q_twist, q_twist = normalize(w, (v.b) b)
            vb = (v * b).sum(-1, keepdim=True)
            tw = torch.cat([w, vb * b], -1)
            tw = tw / tw.norm(dim=-1, keepdim=True).clamp_min(1e-9)
            twist = 2 * torch.atan2(vb[..., 0] * torch.sign(tw[:, 0] + 1e-12), tw[:, 0].abs())
            # swing = q * conj(twist)
            tw_c = torch.cat([tw[:, :1], -tw[:, 1:]], -1)
            sw = _qmul(q[:, j], tw_c)
            sw = torch.where(sw[:, :1] < 0, -sw, sw)
            s_v = sw[:, 1:]
            s_ang = 2 * torch.atan2(s_v.norm(dim=-1), sw[:, 0])
            s_axis = _unit(s_v)
            out[:, j, 0] = s_ang * (s_axis * a).sum(-1)
            out[:, j, 1] = s_ang * (s_axis * c).sum(-1)
            out[:, j, 2] = twist
    del volar
    return out[:, 1:]


def _qmul(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Hamilton product of (..., 4) (w, x, y, z) quaternions."""
    pw, pv = p[..., :1], p[..., 1:]
    qw, qv = q[..., :1], q[..., 1:]
    return torch.cat([pw * qw - (pv * qv).sum(-1, keepdim=True), pw * qv + qw * pv + torch.cross(pv, qv, dim=-1)], -1)


def ranges_deg() -> np.ndarray:
    """Limits (15, 6) degrees for joints 1..15 in MANO order (see FINGER_RANGES)."""
    r = np.zeros((16, 6))
    for name in FINGER_ORDER:
        (j1, j2, j3), _ = FINGERS[name]
        table = THUMB_RANGES if name == "thumb" else FINGER_RANGES
        for k, j in enumerate((j1, j2, j3)):
            r[j] = table[k]
    return r[1:]


def violations_deg(angles: torch.Tensor | np.ndarray) -> np.ndarray:
    """How far each angle is outside its range (B, 15, 3) degrees (0 inside). angles (B, 15, 3) rad."""
    a = np.degrees(np.asarray(angles.detach() if torch.is_tensor(angles) else angles, np.float64))
    r = ranges_deg()
    lo, hi = r[:, 0::2], r[:, 1::2]
    return np.maximum(lo - a, 0) + np.maximum(a - hi, 0)


def sample_poses(layer: ManoLayer, n: int, generator: torch.Generator, betas: torch.Tensor | None = None,
                 scale: float = 1.0) -> torch.Tensor:
    """Random plausible local rotations (n, 16, 3, 3): a random global orient; first finger joints
    with flexion, abduction and twist inside the ranges (times ``scale``); second and third joints pure
    hinges (flexion about the finger's hinge axis), as a real finger's PIP/DIP. For tests and corpora."""
    dt = layer.v_template.dtype
    if betas is None:
        betas = torch.zeros(n, layer.n_betas, dtype=dt)
    j_rest = layer.rest_joints(betas)
    tips = layer.rest_tips(betas)
    axes = hinge_axes(j_rest, tips, layer.side)
    rest21 = torch.cat([j_rest, tips], 1)
    rng = torch.as_tensor(ranges_deg(), dtype=dt) * (np.pi / 180) * scale  # (15, 6)

    def uni(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=dt)

    from .rot import aa_to_rotmat

    rot = torch.eye(3, dtype=dt).repeat(n, 16, 1, 1)
    q = torch.randn(n, 4, generator=generator, dtype=dt)
    q = q / q.norm(dim=-1, keepdim=True)
    from .rot import quat_to_aa

    rot[:, 0] = aa_to_rotmat(quat_to_aa(q))
    for f, name in enumerate(FINGER_ORDER):
        (j1, j2, j3), tip = FINGERS[name]
        chain = (j1, j2, j3, tip)
        a = axes[:, f]
        for k in range(3):
            j = chain[k]
            r = rng[j - 1]
            if k == 0:
                b = _unit(rest21[:, chain[1]] - rest21[:, j])
                c = torch.cross(b, a, dim=-1)
                # Exactly the decomposition of `joint_angles`: swing (flexion a + abduction c) after twist.
                swing = a * uni(r[0], r[1])[:, None] + c * uni(r[2], r[3])[:, None]
                rot[:, j] = aa_to_rotmat(swing) @ aa_to_rotmat(b * uni(r[4], r[5])[:, None])
            else:
                rot[:, j] = aa_to_rotmat(a * uni(r[0], r[1])[:, None])
    return rot
