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
3. The second and third joints: a hinge rotation about the finger's flexion axis, then the small
   swing that reaches the observed bone exactly (identity for a true hinge; their twist is the
   finger's twist).

Hinge axes come from the rest skeleton: a finger flexes about ``bone x volar`` (volar = the palm's
normal on the palm side), so positive rotation curls the finger into the palm; the thumb's axis is
tilted towards the palm centre (an approximation of its opposed posture, documented in `hinge_axes`).
"""
from __future__ import annotations

import dataclasses

import torch

from ..hand.model import FINGERS, MANO21_PARENTS
from ..hand.mano import ManoLayer
from ..rot import axis_rotation, kabsch, rotation_between, rotmat_to_aa

PALM = (0, 1, 4, 7, 10, 13)  # wrist and its five children (rigid with the wrist in MANO)
FINGER_ORDER = ("thumb", "index", "middle", "ring", "pinky")
# Centre (rad, right hand) of the twist window at each finger's first joint. The thumb's: the middle of
# its CMC twist range in core/limits.py (-20..120 deg; the opposed thumb's pronation, Cooney 1981).
TWIST_CENTRE = {"thumb": 0.8727, "index": 0.0, "middle": 0.0, "ring": 0.0, "pinky": 0.0}
REFINE_MAX = 0.2  # rad: largest twist refinement away from the bend-plane estimate
HINGE_OFF_MAX = 0.25  # |(t - r) . a| above which a second/third joint takes the plain swing


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


def bend_normal(b0: torch.Tensor, b1: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """Unnormalised normal (..., 3) of a finger's bend plane from its three bones (..., 3) (any length):
    c1 + sign(c1 . c2) c2 with c1 = u0 x u1, c2 = u1 x u2 (unit bones), so either bent joint defines
    the plane and its length (0..2) says how well."""
    u0, u1, u2 = _unit(b0), _unit(b1), _unit(b2)
    c1 = torch.cross(u0, u1, dim=-1)
    c2 = torch.cross(u1, u2, dim=-1)
    sgn = torch.where((c1 * c2).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(c1.dtype)
    return c1 + sgn * c2


def _smoothstep(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    w = ((x - lo) / (hi - lo)).clamp(0, 1)
    return w * w * (3 - 2 * w)


def hinge_axes(rest_joints: torch.Tensor, rest_tips: torch.Tensor, side: str,
               bend_eps: tuple[float, float] = (0.05, 0.25)) -> torch.Tensor:
    """Flexion axis per finger (B, 5, 3) in the rest frame, order thumb, index, middle, ring, pinky.

    A finger that is straight at rest flexes about normalize(bone x volar), bone = first -> second
    joint (for the thumb the volar normal is tilted towards the palm centre, a 45-degree opposed
    approximation). A finger already bent at rest (MANO's and our thumb) flexes in the plane of that
    bend: its axis is the rest bend-plane normal, oriented like the formula's; in between the two blend.
    Positive rotation about the axis is flexion.
    """
    volar = volar_normal(rest_joints, side)
    rest21 = torch.cat([rest_joints, rest_tips], 1)
    axes = []
    for name in FINGER_ORDER:
        (j1, j2, j3), tip = FINGERS[name]
        bone = _unit(rest_joints[:, j2] - rest_joints[:, j1])
        ref = volar
        if name == "thumb":
            towards = rest_joints[:, 4] - rest_joints[:, j2]  # thumb MCP -> middle1
            towards = _unit(towards - (towards * bone).sum(-1, keepdim=True) * bone)
            ref = _unit(volar + towards)
        formula = _unit(torch.cross(bone, ref, dim=-1))
        n = bend_normal(rest21[:, j2] - rest21[:, j1], rest21[:, j3] - rest21[:, j2], rest21[:, tip] - rest21[:, j3])
        n = torch.where((n * formula).sum(-1, keepdim=True) < 0, -n, n)
        w = _smoothstep(n.norm(dim=-1, keepdim=True), *bend_eps)
        axes.append(_unit(w * _unit(n) + (1 - w) * formula))
    return torch.stack(axes, 1)


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
    j_rest = layer.rest_joints(betas)
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
            # This joint's observed bone (and, at the first joint, the later ones) in the parent's frame.
            obs_loc = [(gp.transpose(1, 2) @ o[..., None])[..., 0] for o in (obs if k == 0 else obs[k:k + 1])]
            t_loc = _unit(obs_loc[0])
            r_loc = _unit(rest[k])
            swing = rotation_between(r_loc, t_loc)
            a_rest = axes[:, f]
            if k == 0:
                # 2. Twist: the hinge axis h (the next joints' flexion axis after this joint's rotation)
                # must make with each observed later bone u_k the angle it makes at rest with r_k:
                # h . u_k = a . r_k. Start from the bend-plane normal (exact when a is normal to the
                # rest bones), then Gauss-Newton on the twist angle.
                u = [_unit(o) for o in obs_loc[1:]]
                s_k = [(a_rest * _unit(r)).sum(-1) for r in rest[1:]]
                n = bend_normal(*obs_loc)
                a = (swing @ a_rest[..., None])[..., 0]
                a_par = (a * t_loc).sum(-1, keepdim=True) * t_loc
                a_p = a - a_par
                a_q = torch.cross(t_loc, a_p, dim=-1)
                n_p = n - (n * t_loc).sum(-1, keepdim=True) * t_loc
                strength = n_p.norm(dim=-1)
                n_p = _unit(n_p)
                a_pu = _unit(a_p)
                theta = torch.atan2((torch.cross(a_pu, n_p, dim=-1) * t_loc).sum(-1), (a_pu * n_p).sum(-1))
                # The hinge axis is a line: pick the twist within pi/2 of the finger's typical twist
                # (0 for fingers; the thumb's CMC turns its pad towards the palm, see TWIST_CENTRE).
                centre = TWIST_CENTRE[name] * (1.0 if layer.side == "right" else -1.0)
                theta = torch.remainder(theta - centre + torch.pi / 2, torch.pi) - torch.pi / 2 + centre
                # Refinement only: a rest chain that is nearly planar needs a few degrees at most,
                # so steps are damped and the result stays within REFINE_MAX of the plane estimate.
                theta0 = theta
                for _ in range(4):
                    c, sn = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
                    h = a_par + c * a_p + sn * a_q
                    dh = -sn * a_p + c * a_q
                    num = sum(((h * uk).sum(-1) - sk) * (dh * uk).sum(-1) for uk, sk in zip(u, s_k))
                    den = sum((dh * uk).sum(-1) ** 2 for uk in u) + 1e-3
                    theta = theta - num / den
                    theta = theta0 + (theta - theta0).clamp(-REFINE_MAX, REFINE_MAX)
                wgt = _smoothstep(strength, *bend_eps)
                fb = twist_fallback[:, f]
                theta = wgt * theta + (1 - wgt) * fb
                rot = axis_rotation(t_loc, theta) @ swing
                twists.append(theta)
                bends.append(wgt)
            else:
                # 3. Hinge about the finger's axis (in the parent's frame it is the rest axis), then
                # the small swing that reaches the observed bone exactly (identity for a true hinge).
                r_p = r_loc - (r_loc * a_rest).sum(-1, keepdim=True) * a_rest
                t_p = t_loc - (t_loc * a_rest).sum(-1, keepdim=True) * a_rest
                phi = torch.atan2((torch.cross(r_p, t_p, dim=-1) * a_rest).sum(-1), (r_p * t_p).sum(-1))
                hinge = axis_rotation(a_rest, phi)
                hinged = rotation_between(_unit((hinge @ r_loc[..., None])[..., 0]), t_loc) @ hinge
                # Where the observed bone leaves the hinge plane by much (noisy joints, a wrong
                # twist), the hinge angle means little: keep the plain swing there.
                off = ((t_loc - r_loc) * a_rest).sum(-1).abs()
                rot = torch.where((off < HINGE_OFF_MAX)[:, None, None], hinged, swing)
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
