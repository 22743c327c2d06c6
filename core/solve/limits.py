"""Anatomical joint ranges in each finger joint's twist-swing frame: angles, violations, projection.

Frame of finger joint j (MANO joints 1..15), from the shaped rest skeleton (`_joint_frames`):
* b: the rest bone from j to its child (MANO-21, so the last joint's child is the fingertip);
* a: the finger's flexion axis (`core.solve.ik.hinge_axes`) made perpendicular to b; positive = flexion;
* c = b x a: the abduction axis (right hand: positive = radial, towards the thumb side).
For a left hand c and b are negated, so that an angle means the same motion on both hands (a left
model mirrors a right one, and a mirrored rotation keeps its flexion but flips abduction and twist);
one ranges table then serves both sides.

A local rotation is split as R = R_swing @ R_twist: R_twist about b by ``twist``, R_swing the
axis-angle ``flex * a + abd * c`` (an axis perpendicular to b; |swing| < 180 degrees).
`joint_angles` decomposes, `angles_to_rotmats` composes, `project_to_limits` clamps the angles into the
ranges and composes again; `sample_poses` composes random in-range angles the same way.

Ranges (degrees, ``FINGER_RANGES`` / ``THUMB_RANGES``): flexion 0 is the model's rest pose (straight
fingers; the project's open model also has a straight, in-palm thumb). Sources (active ranges unless
stated; we widen by a few degrees for passive motion and for landmark noise):
* fingers MCP: flexion 90-100, hyperextension 0-45 (AAOS goniometry norms, Eaton's reference table
  "MCP (0-45H)/90"; Hume et al., J Hand Surg Am 15(2):240, 1990: active MCP flexion ~100);
  abduction-adduction ~20 each way (AAOS), +-30 here for the model's axes and landmark noise;
  passive axial rotation is large, supination more than pronation (Krishnan & Chipchase, J Hand
  Surg Br 22(2):270, 1997): +-25 twist.
* PIP: 0/100-110 (Eaton; Hume 1990: ~105). DIP: 0/80-90, passive hyperextension to ~20-30.
  PIP/DIP are hinges: abduction and twist stay small, conjunct motion only (an interphalangeal axis
  is oblique to its phalanx, so flexion brings some deviation and pronation: Hollister et al., Clin
  Orthop 320:188, 1995, for the thumb).
* thumb MCP: 10H/55 (Eaton), bimodal between subjects (Hume 1990) -> -20/80; abduction small.
  thumb IP: 15-20H/80 (Eaton; Hume 1990: 73 active) -> -30/95.
* thumb CMC (trapeziometacarpal): total flexion-extension ~41-53, abduction-adduction ~42-51, axial
  rotation ~17-21 (Cooney et al., J Bone Joint Surg Am 63(9):1371, 1981; a 101-subject database,
  Chir Main 2009, doi:10.1016/j.main.2009.07.003); opposition adds pronation of the first
  metacarpal (Kapandji, The Physiology of the Joints vol. 1; Kawanishi et al., J Hand Surg).
  Our CMC flexion/abduction ranges are about twice those totals: their zero is the model's rest
  thumb, not the anatomical neutral, and the model's rigid palm leaves the first metacarpal's share
  of palm arching to this joint.
  Twist: Cooney found the thumb's joint axes pronated ~80 degrees relative to the third metacarpal,
  while a model's rest thumb lying in the palm plane (the open model's) has 0; fitted real thumbs
  sit near +60..+110 in this frame (IK of the dev set's ground-truth joints). So the CMC twist range
  covers both the model's rest and an anatomical thumb: -20/120 (see ``SAMPLE_THUMB_TWIST_MAX``).
Cobos et al., "Efficient human hand kinematics for manipulation tasks" (IROS 2008) was the first
source of the table; its Table I could not be checked again here, so the values rest on the above.
"""
from __future__ import annotations

import numpy as np
import torch

from ..hand.model import FINGERS
from .ik import FINGER_ORDER, _unit, hinge_axes
from ..hand.mano import ManoLayer
from ..rot import aa_to_rotmat, quat_to_aa, rotmat_to_quat

# (flex_min, flex_max, abd_min, abd_max, twist_min, twist_max) degrees, per joint level.
FINGER_RANGES = np.array([
    [-40, 100, -30, 30, -25, 25],  # MCP
    [-10, 120, -10, 10, -15, 15],  # PIP
    [-25, 95, -10, 10, -15, 15],   # DIP
], dtype=np.float64)
THUMB_RANGES = np.array([
    [-40, 70, -40, 60, -20, 120],  # CMC (thumb1)
    [-20, 80, -20, 20, -20, 20],   # MCP (thumb2)
    [-30, 95, -15, 15, -20, 20],   # IP (thumb3)
], dtype=np.float64)
# `core.solve.ik` resolves a hinge line's direction by the smaller twist (|twist| <= 90 degrees), so
# `sample_poses` keeps the thumb CMC twist at or below this (degrees) for round-trippable poses.
SAMPLE_THUMB_TWIST_MAX = 60.0

# Per MANO joint 1..15: its child in MANO-21 and its finger's index in FINGER_ORDER.
_CHILD = np.zeros(15, np.int64)
_FINGER = np.zeros(15, np.int64)
for _f, _name in enumerate(FINGER_ORDER):
    (_j1, _j2, _j3), _tip = FINGERS[_name]
    for _j, _c in ((_j1, _j2), (_j2, _j3), (_j3, _tip)):
        _CHILD[_j - 1], _FINGER[_j - 1] = _c, _f


def _joint_frames(layer: ManoLayer, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flexion axis a, bone (twist axis) b, abduction axis c of joints 1..15: each (B, 15, 3) unit,
    rest frame (b and c negated for a left hand, see the module docstring).

    For one shape (B = 1, no gradient wanted) the layer keeps the frames of the last shape it was asked about: a
    clip's shape is asked for dozens of times per refinement step (limit rows, their differences, the
    hyperextension gate), each time the same tensors (the same values bit for bit)."""
    if betas.shape[0] != 1 or betas.requires_grad or torch.is_inference_mode_enabled() or betas.is_inference():
        return _frames_of(layer, betas)
    key = (layer.side, layer.v_template.dtype, layer.v_template.device, betas.dtype, betas.device,
           betas.detach().cpu().numpy().tobytes())
    hit = layer.__dict__.get("_frames_cache")
    if hit is not None and hit[0] == key:
        return hit[1]
    out = _frames_of(layer, betas)
    if not any(x.requires_grad for x in out):
        layer.__dict__["_frames_cache"] = (key, out)
    return out


def _frames_of(layer: ManoLayer, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    j_rest = layer.rest_joints(betas)
    tips = layer.rest_tips(betas)
    rest21 = torch.cat([j_rest, tips], 1)  # (B, 21, 3)
    b = _unit(rest21[:, _CHILD] - rest21[:, 1:16])
    a = hinge_axes(j_rest, tips, layer.side)[:, _FINGER]
    a = _unit(a - (a * b).sum(-1, keepdim=True) * b)
    c = torch.cross(b, a, dim=-1)
    if layer.side == "left":
        b, c = -b, -c
    return a, b, c


def _qmul(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Hamilton product of (..., 4) (w, x, y, z) quaternions."""
    pw, pv = p[..., :1], p[..., 1:]
    qw, qv = q[..., :1], q[..., 1:]
    return torch.cat([pw * qw - (pv * qv).sum(-1, keepdim=True), pw * qv + qw * pv + torch.cross(pv, qv, dim=-1)], -1)


def _angles_from_quats(q: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Twist-swing angles (..., 3) [flex, abd, twist] rad of unit quaternions q (..., 4) (w >= 0)
    in the frames a, b, c (..., 3).

    1. twist quaternion = normalize(w, (v . b) b); where it vanishes (a swing of 180 degrees, twist
       undefined) the twist is taken as 0; 2. swing = q * conj(twist), w >= 0, its vector part is
       perpendicular to b; 3. flex, abd = swing angle times the unit swing axis dotted with a, c.
    Every branch is finite, with finite gradients (the 0/0 limits are taken explicitly).
    """
    w, v = q[..., :1], q[..., 1:]
    vb = (v * b).sum(-1, keepdim=True)
    tn = torch.sqrt(w * w + vb * vb)
    degenerate = tn < 1e-6
    tn_safe = torch.where(degenerate, torch.ones_like(tn), tn)
    tw_w = torch.where(degenerate, torch.ones_like(w), w / tn_safe)
    tw_s = torch.where(degenerate, torch.zeros_like(vb), vb / tn_safe)
    twist = 2 * torch.atan2(tw_s, tw_w)[..., 0]  # (-pi, pi]
    tw_conj = torch.cat([tw_w, -tw_s * b], -1)
    sw = _qmul(q, tw_conj)
    sw = torch.where(sw[..., :1] < 0, -sw, sw)
    s_w, s_v = sw[..., 0], sw[..., 1:]
    n2 = (s_v * s_v).sum(-1)
    small = n2 < 1e-12
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    # angle / |v| = 2 atan2(n, w) / n, which tends to 2 / w as n -> 0.
    k = torch.where(small, 2.0 / s_w.clamp_min(1e-6), 2 * torch.atan2(n, s_w) / n)
    flex = k * (s_v * a).sum(-1)
    abd = k * (s_v * c).sum(-1)
    return torch.stack([flex, abd, twist], -1)


def joint_angles(layer: ManoLayer, rotmats: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Flexion, abduction, twist (B, 15, 3) radians of joints 1..15 (MANO order).

    Args:
        layer: the hand model (its side picks the sign convention, see the module docstring).
        rotmats (B, 16, 3, 3): local rotations (joint 0, the global orient, is ignored).
        betas (B, NB) or (1, NB): the hand's shape (sets the rest bones and hinge axes); one row serves a
            whole batch of one hand (a clip's shape), which also saves computing the frames B times.
    Returns:
        (B, 15, 3) float, [..., 0] flexion, [..., 1] abduction, [..., 2] twist; dtype and device of
        ``rotmats``; differentiable.
    """
    a, b, c = _joint_frames(layer, betas)
    q = rotmat_to_quat(rotmats[:, 1:])  # (B, 15, 4), w >= 0
    return _angles_from_quats(q, a.to(q.dtype), b.to(q.dtype), c.to(q.dtype))


def angles_to_rotmats(layer: ManoLayer, angles: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Local rotations (B, 15, 3, 3) of joints 1..15 from angles (B, 15, 3) radians (the inverse of
    `joint_angles` for |swing| < 180 degrees and |twist| <= 180 degrees):
    R = aa_to_rotmat(flex * a + abd * c) @ aa_to_rotmat(twist * b)."""
    a, b, c = _joint_frames(layer, betas)
    return _compose(angles, a.to(angles.dtype), b.to(angles.dtype), c.to(angles.dtype))


def _twist_rotation(angles: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """aa_to_rotmat(twist * b) (..., 3, 3) of angles (..., 3): `_compose`'s second factor."""
    return aa_to_rotmat(angles[..., 2:3] * b)


def _compose(angles: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
             twist: torch.Tensor | None = None) -> torch.Tensor:
    """R (..., 3, 3) = aa_to_rotmat(flex * a + abd * c) @ aa_to_rotmat(twist * b); angles (..., 3). ``twist``: that
    second factor (`_twist_rotation`) where the caller already has it (a twist that does not change)."""
    swing = angles[..., 0:1] * a + angles[..., 1:2] * c
    return aa_to_rotmat(swing) @ (_twist_rotation(angles, b) if twist is None else twist)


def ranges_deg() -> np.ndarray:
    """Limits (15, 6) degrees for joints 1..15 in MANO order (see FINGER_RANGES): columns flex_min,
    flex_max, abd_min, abd_max, twist_min, twist_max."""
    r = np.zeros((16, 6))
    for name in FINGER_ORDER:
        (j1, j2, j3), _ = FINGERS[name]
        table = THUMB_RANGES if name == "thumb" else FINGER_RANGES
        for k, j in enumerate((j1, j2, j3)):
            r[j] = table[k]
    return r[1:]


def _bounds(margin_deg: float, dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper limits (15, 3) radians, each pulled ``margin_deg`` inside."""
    r = ranges_deg()
    half_width = (r[:, 1::2] - r[:, 0::2]).min() / 2
    if not 0.0 <= margin_deg < half_width:
        raise ValueError(f"margin_deg must be in [0, {half_width:g}) degrees; got {margin_deg}")
    lo = torch.as_tensor(np.radians(r[:, 0::2] + margin_deg), dtype=dtype, device=device)
    hi = torch.as_tensor(np.radians(r[:, 1::2] - margin_deg), dtype=dtype, device=device)
    return lo, hi


def violations_deg(angles: torch.Tensor | np.ndarray) -> np.ndarray:
    """How far each angle is outside its range (B, 15, 3) degrees (0 inside). angles (B, 15, 3) rad."""
    a = np.degrees(np.asarray(angles.detach().cpu() if torch.is_tensor(angles) else angles, np.float64))
    r = ranges_deg()
    lo, hi = r[:, 0::2], r[:, 1::2]
    return np.maximum(lo - a, 0) + np.maximum(a - hi, 0)


def clamp_angles(angles: torch.Tensor, margin_deg: float = 0.0) -> torch.Tensor:
    """Angles (B, 15, 3) radians clamped into the ranges (pulled ``margin_deg`` inside)."""
    lo, hi = _bounds(margin_deg, angles.dtype, angles.device)
    return torch.maximum(torch.minimum(angles, hi), lo)


def soft_limit_loss(angles: torch.Tensor, margin_deg: float = 0.0) -> torch.Tensor:
    """Smooth range penalty (B,) rad^2: the sum over joints and axes of the squared excess outside
    the ranges (pulled ``margin_deg`` inside); 0 inside, C1 at the bounds. angles (B, 15, 3) rad."""
    lo, hi = _bounds(margin_deg, angles.dtype, angles.device)
    excess = torch.relu(lo - angles) + torch.relu(angles - hi)
    return excess.square().sum((1, 2))


def project_to_limits(layer: ManoLayer, rotmats: torch.Tensor, betas: torch.Tensor,
                      margin_deg: float = 0.0) -> torch.Tensor:
    """The pose inside the ranges nearest in angles: each finger joint's flexion, abduction and twist
    clamped into its range, the rotation composed again (`angles_to_rotmats`).

    Args:
        layer: the hand model; rotmats (B, 16, 3, 3) local rotations; betas (B, NB).
        margin_deg: clamp this far inside the ranges (0 <= margin < half the narrowest range).
    Returns:
        rotmats (B, 16, 3, 3): joint 0 (global orient) and every joint already inside its range are
        returned unchanged (bit for bit); the others satisfy
        ``joint_angles(out) == clamp_angles(joint_angles(rotmats))``. Differentiable (the gradient
        of a clamped angle is zero).
    """
    ang = joint_angles(layer, rotmats, betas)
    lo, hi = _bounds(margin_deg, ang.dtype, ang.device)
    clamped = torch.maximum(torch.minimum(ang, hi), lo)
    inside = ((ang >= lo) & (ang <= hi)).all(-1)  # (B, 15)
    fixed = angles_to_rotmats(layer, clamped, betas)
    out = torch.where(inside[..., None, None], rotmats[:, 1:], fixed)
    return torch.cat([rotmats[:, :1], out], 1)


def sample_poses(layer: ManoLayer, n: int, generator: torch.Generator, betas: torch.Tensor | None = None,
                 scale: float = 1.0) -> torch.Tensor:
    """Random plausible local rotations (n, 16, 3, 3): a random global orient; first finger joints
    with flexion, abduction and twist uniform inside the ranges (times ``scale``; the thumb CMC twist
    at most SAMPLE_THUMB_TWIST_MAX), composed as `angles_to_rotmats` does, so `joint_angles` gives
    them back; second and third joints pure hinges (flexion about the finger's hinge axis, as
    `core.solve.ik` models PIP/DIP) inside the flexion range. For tests and corpora."""
    dt = layer.v_template.dtype
    if betas is None:
        betas = torch.zeros(n, layer.n_betas, dtype=dt)
    j_rest = layer.rest_joints(betas)
    tips = layer.rest_tips(betas)
    axes = hinge_axes(j_rest, tips, layer.side)
    rng = torch.as_tensor(ranges_deg(), dtype=dt) * (np.pi / 180) * scale  # (15, 6)
    thumb1 = FINGERS["thumb"][0][0]
    rng[thumb1 - 1, 5] = min(float(rng[thumb1 - 1, 5]), np.radians(SAMPLE_THUMB_TWIST_MAX))

    def uni(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=dt)

    rot = torch.eye(3, dtype=dt).repeat(n, 16, 1, 1)
    q = torch.randn(n, 4, generator=generator, dtype=dt)
    q = q / q.norm(dim=-1, keepdim=True)
    rot[:, 0] = aa_to_rotmat(quat_to_aa(q))
    firsts = [FINGERS[name][0][0] for name in FINGER_ORDER]
    angles = torch.zeros(n, 15, 3, dtype=dt)
    for j in firsts:
        r = rng[j - 1]
        angles[:, j - 1] = torch.stack([uni(r[0], r[1]), uni(r[2], r[3]), uni(r[4], r[5])], -1)
    composed = angles_to_rotmats(layer, angles, betas)
    for f, name in enumerate(FINGER_ORDER):
        (j1, j2, j3), _ = FINGERS[name]
        rot[:, j1] = composed[:, j1 - 1]
        for j in (j2, j3):
            r = rng[j - 1]
            rot[:, j] = aa_to_rotmat(axes[:, f] * uni(r[0], r[1])[:, None])
    return rot
