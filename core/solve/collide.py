"""Finger-finger self-penetration: capsules around the finger bones, and a small pose fix.

Each MANO-21 finger bone k (k = 0..19, from joint ``BONE_PARENT[k]`` to joint ``k + 1``) is a
capsule: a segment along the bone swept by a sphere of radius ``radii[k]``, both measured on the
shaped rest mesh (`hand_capsules`). The segment covers the phalanx's own flesh: it starts past the
part of a proximal phalanx buried in the palm's web, and a fingertip bone ends one radius before its
tip vertex, so the round cap reaches the tip instead of poking past it.

Collisions are checked between the 15 finger bones (wrist bones excluded) of *different* fingers,
thumb included: ``FINGER_PAIRS`` (90 pairs). Bones of one finger never collide (neighbours share a
joint; the others are the joint limits' business), and the palm is not modelled. Penetration of a
pair = r_i + r_j - (closest distance of the two segments), in metres.

`resolve` nudges the finger joints' flexion (and the first joints' abduction) of the frames whose
deepest penetration is above a threshold, by gradient descent on the penetration plus the joints'
displacement, keeping every angle inside its range (`core.solve.limits`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from . import limits
from ..hand.model import FINGERS, MANO21_PARENTS
from .ik import FINGER_ORDER
from ..hand.mano import ManoLayer
from ..rot import rotmat_to_quat

N_BONES = 20
PENALTY_RAMP = 100.0  # `resolve`: the penetration weight grows geometrically by this over the iterations
BONE_PARENT = MANO21_PARENTS[1:].copy()  # (20,) bone k goes from joint BONE_PARENT[k] to joint k + 1
_FINGER_OF_JOINT = {}
for _f, _name in enumerate(FINGER_ORDER):
    (_j1, _j2, _j3), _tip = FINGERS[_name]
    for _j in (_j1, _j2, _j3, _tip):
        _FINGER_OF_JOINT[_j] = _f
# Finger of each bone (-1 for the five wrist bones) and whether it ends at a fingertip.
BONE_FINGER = np.array([-1 if p == 0 else _FINGER_OF_JOINT[k + 1] for k, p in enumerate(BONE_PARENT)], np.int64)
TIP_BONE = np.array([k + 1 >= 16 for k in range(N_BONES)])
FINGER_PAIRS = np.array([(i, j) for i in range(N_BONES) for j in range(i + 1, N_BONES)
                         if BONE_FINGER[i] >= 0 and BONE_FINGER[j] >= 0 and BONE_FINGER[i] != BONE_FINGER[j]],
                        np.int64)  # (90, 2) bone indices


@dataclasses.dataclass(frozen=True)
class Capsules:
    """The hand's capsules, measured on the shaped rest mesh (`hand_capsules`). B = batch (or 1).

    radii (B, 20): metres, per MANO-21 bone (bone k ends at joint k + 1); 0 for the five wrist bones.
    span (B, 20, 2): where each capsule's segment starts and ends along its bone, as fractions of the
        bone (0 = parent joint, 1 = child joint); the round caps reach ``radius`` beyond both ends.
    """

    radii: torch.Tensor
    span: torch.Tensor


def hand_capsules(layer: ManoLayer, betas: torch.Tensor) -> Capsules:
    """Capsules of the hand of shapes betas (B, NB), from its shaped rest mesh.

    For finger bone k, take the rest vertices whose largest skinning weight is the bone's parent joint
    (the joint that moves that phalanx): 1. radius = their mean distance from the bone segment;
    2. the segment starts one radius after the 5th percentile of their positions along the bone (so
    the cap begins where the phalanx's own flesh does: a proximal phalanx's first centimetre lies in
    the palm's web, skinned to the wrist); 3. it ends at the child joint, except a fingertip bone,
    which ends one radius before the tip vertex (the cap then reaches the tip).
    """
    verts, j_rest = layer.shaped(betas)  # (B, V, 3), (B, 16, 3)
    j21 = torch.cat([j_rest, layer.rest_tips(betas)], 1)
    owner = layer.weights.argmax(1)  # (V,) dominant joint
    bsz, dt = betas.shape[0], verts.dtype
    radii = torch.zeros(bsz, N_BONES, dtype=dt, device=verts.device)
    span = torch.zeros(bsz, N_BONES, 2, dtype=dt, device=verts.device)
    span[..., 1] = 1.0
    for k in range(N_BONES):
        p = int(BONE_PARENT[k])
        if p == 0:
            continue
        p0, d = j21[:, p], j21[:, k + 1] - j21[:, p]  # (B, 3)
        length2 = (d * d).sum(-1, keepdim=True).clamp_min(1e-12)
        rel = verts[:, owner == p] - p0[:, None]  # (B, n, 3)
        t = (rel * d[:, None]).sum(-1) / length2  # (B, n) position along the bone
        dist = (rel - t.clamp(0, 1)[..., None] * d[:, None]).norm(dim=-1)
        r = dist.mean(1)
        frac = r / length2[:, 0].sqrt()  # radius as a fraction of the bone
        start = (torch.quantile(t, 0.05, dim=1) + frac).clamp(0, 0.5)
        end = (1 - frac).clamp_min(start) if TIP_BONE[k] else torch.ones_like(start)
        radii[:, k] = r
        span[:, k, 0], span[:, k, 1] = start, end
    return Capsules(radii, span)


def segment_distance(p0: torch.Tensor, p1: torch.Tensor, q0: torch.Tensor, q1: torch.Tensor) -> torch.Tensor:
    """Closest distance (...) between segments p0-p1 and q0-q1 (..., 3), any batch shape.

    Closed form of Ericson, "Real-Time Collision Detection", 5.1.9: 1. the closest points of the
    two lines, s on p clamped to [0, 1]; 2. t on q for that s; 3. where t leaves [0, 1], clamp it and
    recompute s. Degenerate (point) segments and parallel ones are handled by the clamps; the square
    root has a 1e-12 floor so the gradient stays finite at contact.
    """
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a = (d1 * d1).sum(-1)
    e = (d2 * d2).sum(-1)
    b = (d1 * d2).sum(-1)
    c = (d1 * r).sum(-1)
    f = (d2 * r).sum(-1)
    eps = 1e-12
    a_s, e_s = a.clamp_min(eps), e.clamp_min(eps)
    denom = a * e - b * b
    # 1. Line-line parameter on p (0 when parallel or p is a point).
    skew = denom > 1e-9 * a_s * e_s  # not parallel (sin^2 of the angle above 1e-9)
    s = torch.where(skew, (b * f - c * e) / torch.where(skew, denom, torch.ones_like(denom)), torch.zeros_like(a))
    s = torch.where(a > eps, s.clamp(0, 1), torch.zeros_like(s))
    # 2. Parameter on q for s, 3. clamped, with s recomputed for the clamped t.
    t = (b * s + f) / e_s
    t = torch.where(e > eps, t, torch.zeros_like(t))
    t_c = t.clamp(0, 1)
    s = torch.where((t_c != t) | (e <= eps), ((b * t_c - c) / a_s).clamp(0, 1), s)  # e = 0: t = 0, s = -c / a
    s = torch.where(a > eps, s, torch.zeros_like(s))
    diff = (p0 + s[..., None] * d1) - (q0 + t_c[..., None] * d2)
    return torch.sqrt((diff * diff).sum(-1) + 1e-12)


def _segments(joints21: torch.Tensor, caps: Capsules) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Capsule segments' ends (B, 20, 3) each and radii (B, 20) for posed joints21 (B, 21, 3)."""
    bsz = joints21.shape[0]
    r = caps.radii.to(joints21.dtype).expand(bsz, N_BONES)
    span = caps.span.to(joints21.dtype).expand(bsz, N_BONES, 2)
    p0 = joints21[:, BONE_PARENT]
    d = joints21[:, 1:] - p0
    return p0 + span[..., :1] * d, p0 + span[..., 1:] * d, r


def pair_penetration(joints21: torch.Tensor, caps: Capsules) -> torch.Tensor:
    """Penetration (B, 90) metres of each pair in FINGER_PAIRS: r_i + r_j - distance (negative: apart).

    joints21 (B, 21, 3) metres, MANO-21 order, any frame; caps: `hand_capsules` of the hand's shape
    (batch B or 1).
    """
    p0, p1, r = _segments(joints21, caps)
    i = torch.as_tensor(FINGER_PAIRS[:, 0], device=joints21.device)
    j = torch.as_tensor(FINGER_PAIRS[:, 1], device=joints21.device)
    dist = segment_distance(p0[:, i], p1[:, i], p0[:, j], p1[:, j])
    return r[:, i] + r[:, j] - dist


def penetration_depth(joints21: torch.Tensor, caps: Capsules) -> torch.Tensor:
    """Deepest penetration (B,) metres (0 when no capsules of different fingers overlap).

    joints21 (B, 21, 3) metres, MANO-21 order; caps: `hand_capsules` (batch B or 1).
    """
    return pair_penetration(joints21, caps).max(-1).values.clamp_min(0)


def penetration_loss(joints21: torch.Tensor, caps: Capsules, threshold: float = 0.0) -> torch.Tensor:
    """Smooth penalty (B,) mm^2: the sum over pairs of the squared penetration beyond ``threshold``
    (metres), in millimetres. Inputs as `penetration_depth`; differentiable in the joints."""
    pen = pair_penetration(joints21, caps)
    return (torch.relu(pen - threshold) * 1000.0).square().sum(-1)


@dataclasses.dataclass(frozen=True)
class Resolved:
    """Result of `resolve`. B = batch.

    rotmats (B, 16, 3, 3): local rotations; frames not fixed are the input, bit for bit.
    depth_before, depth_after (B,): deepest penetration, metres, before and after.
    changed (B,) bool: frames that were optimised.
    """

    rotmats: torch.Tensor
    depth_before: torch.Tensor
    depth_after: torch.Tensor
    changed: torch.Tensor


def resolve(layer: ManoLayer, rotmats: torch.Tensor, betas: torch.Tensor, caps: Capsules | None = None,
            iters: int = 40, threshold: float = 0.002, target: float = 0.75, lr_deg: float = 1.0,
            move_weight: float = 0.2) -> Resolved:
    """Push apart fingers that penetrate each other by more than ``threshold``, changing little.

    For each frame whose `penetration_depth` exceeds ``threshold`` (others are left untouched):
    1. angles = `core.solve.limits.joint_angles`; unknowns: a flexion delta per finger joint and an
       abduction delta per first joint (MCP, thumb CMC); twist is kept;
    2. ``iters`` Adam steps (step ``lr_deg``) on the squared penetration beyond ``target * threshold``
       plus ``move_weight`` times the squared displacement of the 21 joints (both in mm^2), with every
       angle kept inside its range (or, if it already was outside, not pushed further out). The
       penetration's weight grows from 1 to PENALTY_RAMP over the steps (a penalty continuation):
       first the cheap directions are found, then the fingers are pushed out all the way;
    3. the rotations are composed again (`core.solve.limits.angles_to_rotmats`); joints with no change keep
       their input rotation.

    Args:
        layer: the hand model; rotmats (B, 16, 3, 3) local rotations; betas (B, NB).
        caps: `hand_capsules` (batch B or 1), or None to measure them for ``betas``.
        threshold: metres; lr_deg: Adam step, degrees; move_weight: cost of 1 mm^2 of joint motion
            relative to 1 mm^2 of squared penetration.
    Returns:
        Resolved (not differentiable: the result is detached).
    """
    bsz = rotmats.shape[0]
    with torch.no_grad():
        if caps is None:
            caps = hand_capsules(layer, betas)
        caps = Capsules(caps.radii.to(rotmats.dtype).expand(bsz, N_BONES),
                        caps.span.to(rotmats.dtype).expand(bsz, N_BONES, 2))
        out0 = layer(betas, None, None, None, with_vertices=False, rotmats=rotmats)
        depth0 = penetration_depth(out0.joints21, caps)
    active = depth0 > threshold
    if not bool(active.any()):
        return Resolved(rotmats.detach(), depth0, depth0, active)
    idx = torch.nonzero(active)[:, 0]
    rot, bet, j0 = rotmats[idx].detach(), betas[idx].detach(), out0.joints21[idx]
    cap = Capsules(caps.radii[idx], caps.span[idx])
    with torch.no_grad():
        a, b, c = (x.to(rot.dtype) for x in limits._joint_frames(layer, bet))
        ang0 = limits._angles_from_quats(rotmat_to_quat(rot[:, 1:]), a, b, c)
        lo, hi = limits._bounds(0.0, ang0.dtype, ang0.device)
        lo, hi = torch.minimum(lo, ang0), torch.maximum(hi, ang0)  # never pushed further out
    abd_mask = torch.zeros(15, dtype=ang0.dtype, device=ang0.device)
    for name in FINGER_ORDER:
        abd_mask[FINGERS[name][0][0] - 1] = 1.0

    def angles(delta: torch.Tensor) -> torch.Tensor:
        step = torch.stack([delta[..., 0], delta[..., 1] * abd_mask, torch.zeros_like(delta[..., 0])], -1)
        return torch.maximum(torch.minimum(ang0 + step, hi), lo)

    delta = torch.zeros(len(idx), 15, 2, dtype=ang0.dtype, device=ang0.device)
    with torch.no_grad():  # no step moves the twist: its rotation once, not at every step
        twist = limits._twist_rotation(angles(delta), b)

    def pose(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ang = angles(delta)
        return ang, torch.cat([rot[:, :1], limits._compose(ang, a, b, c, twist)], 1)

    # Adam by hand (per-element steps of about lr; torch.optim's first import costs seconds).
    lr, beta1, beta2 = np.radians(lr_deg), 0.9, 0.999
    m1, m2 = torch.zeros_like(delta), torch.zeros_like(delta)
    with torch.enable_grad():
        for it in range(1, iters + 1):
            delta.requires_grad_(True)
            _, r = pose(delta)
            j = layer(bet, None, None, None, with_vertices=False, rotmats=r).joints21
            move = ((j - j0) * 1000.0).square().sum((1, 2))
            ramp = PENALTY_RAMP ** ((it - 1) / max(iters - 1, 1))  # continuation: 1 -> PENALTY_RAMP
            loss = ramp * penetration_loss(j, cap, threshold * target) + move_weight * move
            (grad,) = torch.autograd.grad(loss.sum(), delta)
            with torch.no_grad():
                m1 = beta1 * m1 + (1 - beta1) * grad
                m2 = beta2 * m2 + (1 - beta2) * grad * grad
                step = lr * (m1 / (1 - beta1**it)) / ((m2 / (1 - beta2**it)).sqrt() + 1e-12)
                delta = delta.detach() - step
    with torch.no_grad():
        ang, r = pose(delta)
        same = ((ang - ang0).abs() < 1e-9).all(-1)  # (Ba, 15) joints left as they were
        local = torch.where(same[..., None, None], rot[:, 1:], r[:, 1:])
        fixed = torch.cat([rot[:, :1], local], 1)
        out = rotmats.detach().clone()
        out[idx] = fixed
        depth1 = depth0.clone()
        j1 = layer(bet, None, None, None, with_vertices=False, rotmats=fixed).joints21
        depth1[idx] = penetration_depth(j1, cap)
    return Resolved(out, depth0, depth1, active)
