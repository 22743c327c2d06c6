"""2D-aware fit of one hand (the issue's "2D-aware fit"): back-projected 3D target, then a batched
Gauss-Newton refinement of the MANO pose against the 2D landmarks.

Batched over frames (B); every function is torch, dtype and device follow the inputs.

1. `backproject`: closed-form 3D joints from the 2D landmarks and the detector's relative depth. A
   joint lies on the viewing ray through its landmark, at depth ``Z0 (1 + z_px / f)`` (``z_px``: the
   wrist-relative depth in pixel units); every joint scales with the wrist depth Z0, which is picked so
   that the bone lengths match the hand's metric ones (closed form).
2. `fuse`: the detector's metric 3D landmarks, rigidly aligned onto the back-projection, blended with it
   (two noisy estimates of the pose and orientation, partly independent).
3. `refine`: Gauss-Newton (IRLS for a robust 2D term) on the MANO local rotations and translation,
   warm-started from the analytic IK: projected joints match the 2D landmarks (Geman-McClure), the 3D
   joints stay near the fused target, the pose stays near the IK result, joint angles outside
   `core.solve.limits` ranges are penalised, and so are hyperextended fingers where the 2D does not show
   the hyperextension (`RefineConfig.w_hyper`, ``hyper_gate``). The Jacobian is analytic (a rotation at
   joint i moves every descendant k by ``w x (J_k - J_i)``); fingertips move rigidly with their last joint.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from . import limits
from ..hand.model import MANO21_FROM_MP, MANO21_PARENTS, MP_FROM_MANO21, MP_PARENTS
from ..hand.mano import ManoLayer
from ..rot import aa_to_rotmat, kabsch, rotmat_to_aa


def backproject(kp_px: torch.Tensor, z_px: torch.Tensor, K: torch.Tensor, bone_lengths: torch.Tensor,
                z_scale: float = 1.0) -> torch.Tensor:
    """Camera-frame joints (B, 21, 3) metres from 2D landmarks and relative depth (MediaPipe order).

    Args:
        kp_px (B, 21, 2): landmarks, pixels (the convention of K's principal point).
        z_px (B, 21): relative depth in pixel units (MediaPipe's normalised z times the image width);
            only differences to the wrist (joint 0) are used; larger = farther.
        K (B, 3, 3): intrinsics.
        bone_lengths (20,) or (B, 20): metric bone lengths, bone k ends at joint k + 1 (MP_PARENTS).
        z_scale: multiplies the relative depth.
    Returns:
        joints (B, 21, 3), OpenCV camera frame.
    Steps: 1. unit-depth rays r_j = ((u - cx) / fx, (v - cy) / fy, 1); 2. X_j / Z0 = r_j (1 + s dz_j / fx)
    with dz_j = z_j - z_0; 3. Z0 = sum_k L_k l_k / sum_k l_k^2 (least squares of Z0 l_k = L_k, l_k the bone
    lengths at unit depth).
    """
    fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]
    rays = torch.stack([(kp_px[..., 0] - K[:, 0, 2, None]) / fx, (kp_px[..., 1] - K[:, 1, 2, None]) / fy,
                        torch.ones_like(kp_px[..., 0])], -1)
    depth = (1 + z_scale * (z_px - z_px[:, :1]) / fx).clamp_min(0.1)  # (B, 21), relative to Z0
    unit = rays * depth[..., None]
    parents = torch.as_tensor(MP_PARENTS[1:], device=kp_px.device)
    lengths = (unit[:, 1:] - unit[:, parents]).norm(dim=-1)  # (B, 20)
    ref = bone_lengths.to(unit).expand_as(lengths)
    z0 = (lengths * ref).sum(1) / (lengths * lengths).sum(1).clamp_min(1e-12)
    return unit * z0[:, None, None]


def fuse(world: torch.Tensor, joints_bp: torch.Tensor, weight: float, rot_weight: float = 0.0) -> torch.Tensor:
    """Blend (B, 21, 3) of two estimates of the same joints, metres, camera frame.

    Args:
        world (B, 21, 3): the detector's metric 3D landmarks (any origin, camera-aligned axes).
        joints_bp (B, 21, 3): the back-projected joints (`backproject`), camera frame.
        weight: share of ``world``'s shape in the blend (0 = only the back-projection).
        rot_weight: share of ``world``'s orientation (0 = the back-projection's).
    Steps: 1. R = the rotation (Kabsch, all joints, about the centroids) taking ``joints_bp``'s
    orientation to ``world``'s; 2. the back-projection turned about its centroid by the fraction
    ``rot_weight`` of R (axis-angle scaled); 3. ``world`` rigidly aligned onto that; 4. the blend
    ``weight * aligned + (1 - weight) * turned``.
    """
    c_bp = joints_bp.mean(1, keepdim=True)
    bp = joints_bp
    if rot_weight:
        r, _ = kabsch(joints_bp, world)
        part = aa_to_rotmat(rotmat_to_aa(r) * rot_weight)
        bp = (joints_bp - c_bp) @ part.transpose(1, 2) + c_bp
    r, t = kabsch(world, bp)
    aligned = world @ r.transpose(1, 2) + t[:, None]
    return weight * aligned + (1 - weight) * bp


@dataclasses.dataclass(frozen=True)
class RefineConfig:
    """Weights of the refinement energy (frozen; defaults tuned with `FitConfig`'s). Residuals are in
    units of the hand's size: 2D pixels over the landmarks' spread in the image, 3D metres over the rest
    skeleton's spread. Parameters per frame: 16 local rotations (3 each) and the translation (3).

    iters: Levenberg-Marquardt steps (each: one FK, the joint-limit terms, one (B, 51, 51) solve).
    w_2d: weight of the projected-joint term; robust_2d: Geman-McClure scale of that term (hand sizes);
    robust_2d_frame: 0, or per frame and step the scale is at least this times the frame's median 2D residual
    (a frame that is off as a whole follows its 2D; single landmarks far off the rest stay outliers).
    w_3d: weight of the 3D term (joints near the fused target).
    w_depth: extra factor on the 3D term's depth (camera z) component, the least certain one.
    w_prior: weight of the local-rotation change from the IK result (per radian^2, finger joints);
    w_prior_root: the same for the global orient.
    w_limit: weight of the squared excess (radians) over `core.solve.limits` ranges.
    damping: Marquardt damping, a fraction of each diagonal entry of the normal equations (0 = Gauss-
    Newton); damping_floor: the entries used are at least this fraction of their mean.
    w_hyper: weight of the squared hyperextension (negative flexion, radians) of the four fingers' joints:
    where the image leaves the side of a bend open (a finger pointing towards or away from the camera), the
    flexed side wins; 0 = off (the class default; `FitConfig`'s stages use 3.0 gated by `HYPER_GATE`). Ungated
    it also bends truly hyperextended fingers that the image shows side-on (1.6 mm mean joint error on the
    exact synthetic clip of tests/test_fit.py, 0.4 mm without it, 0.8 mm gated; see BENCHMARKS.md).
    hyper_gate: hand sizes, or None (the prior everywhere): the prior acts only where the image leaves the side
    open or prefers the flexed side. Per joint and step, the joint's flexion t is mirrored (-t: its descendants
    turned about it) and the mean 2D distance of its descendants' landmark points to the 2D landmarks compared
    (`mirror_excess`); the prior's weight is full where the mirror fits the 2D at most ``hyper_gate`` worse than
    the pose as it is, 0 where ``2 hyper_gate`` worse or more (a hyperextension the image shows), linear between.
    joint_w_2d, joint_w_3d: per-joint weights (21,), MediaPipe order, or None for ones.
    offsets: the detector's landmark convention, or None: per joint (MANO-21 order) of a right hand, metres,
    in the frame of the bone that carries the joint (`BONE_OF`), ``(ox, oy, oz)`` or ``(ox, oy, oz, dx, dy,
    dz)``; the 2D term then compares the 2D landmarks with the projections of ``joint + R_bone @ (o +
    palm_facing * d)`` (where the detector puts that joint's landmark on our hand; `landmark_points`) instead
    of the joints themselves. Measured on renders of the project's hand (`core.net.renders.measure_2d`).
    offsets_3d: the 3D term compares the target with those points too (the target is built from the
    detector's landmarks, so it has their convention).
    offsets_shape: (read from ``FitConfig.refine``, or from ``FitConfig.align`` on video) the hand's shape is
    fitted to the target's distances as distances between the landmark points too (`core.solve.shape.fit_betas` ``offsets``): the detector's
    palm is shorter than the model's (its wrist sits nearer the knuckles), so the shape fitted to its
    distances between joints comes out too small.
    """

    iters: int = 4
    w_2d: float = 1.0
    robust_2d: float = 0.1
    w_3d: float = 1.0
    w_depth: float = 0.25
    w_prior: float = 0.01
    w_prior_root: float = 0.0
    w_limit: float = 1.0
    damping: float = 0.1
    damping_floor: float = 0.01
    w_hyper: float = 0.0
    robust_2d_frame: float = 0.0
    hyper_gate: float | None = None
    joint_w_2d: tuple | None = None
    joint_w_3d: tuple | None = (10.0,) + (1.0,) * 20  # the wrist pinned: joints are read wrist-relative
    offsets: tuple | None = None
    offsets_3d: bool = False
    offsets_shape: bool = False


# `RefineConfig.hyper_gate` of the capture's fit, hand sizes: the detector's typical 2D error on the fingers (median
# 0.02-0.06 hand sizes against the truth on the hard-view renders; see BENCHMARKS.md, issue 15).
HYPER_GATE = 0.05


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Settings of the 2D-aware fit (frozen); defaults tuned on frames 0-145 of the real dev crops
    (``python -m benchmarks.dev_eval``), checked on frames 146-291.

    blend: share of the detector's metric 3D landmarks in the target shape (`fuse` ``weight``).
    blend_rot: share of their orientation (`fuse` ``rot_weight``).
    z_scale: factor on the detector's relative depth (`backproject`).
    refine: the Gauss-Newton refinement's weights, or None to keep the analytic IK result.
    align: for video (after the temporal clean-up and the limit projection): a last refinement of the
        detected frames against the 2D landmarks, warm-started at the cleaned pose slid along its viewing
        ray onto the landmarks; the 3D term pulls towards the cleaned joints and the rotation prior
        (``w_prior``) towards the cleaned rotations, so the temporal clean-up stays a prior; None skips it
        (as does ``refine=None``). Weights chosen on frames 0-149 of the shared videos (see BENCHMARKS.md).
    penetration: metres; fingers of one hand that penetrate each other deeper than this (capsules,
        `core.solve.collide`) are pushed apart on the final poses, to ``penetration_target`` times it
        (`core.solve.collide.resolve`); None leaves them. 1.5 mm with target 0.8 keeps every output frame
        under 2 mm with a margin (two passes, `core.solve.pose`); on the dev crops it costs 0.05 mm PA-MPJPE.
    """

    blend: float = 0.3
    blend_rot: float = 0.2
    z_scale: float = 1.0
    refine: RefineConfig | None = dataclasses.field(default_factory=lambda: RefineConfig(w_hyper=3.0, hyper_gate=HYPER_GATE))
    align: RefineConfig | None = dataclasses.field(
        default_factory=lambda: RefineConfig(w_2d=3.0, w_prior=1.0, w_hyper=3.0, hyper_gate=HYPER_GATE))
    penetration: float | None = 0.0015
    penetration_target: float = 0.8


# The MANO joint (0..15) whose global rotation carries each MANO-21 joint's landmark: the bone ending at it
# (its parent joint's rotation), the root for the wrist.
BONE_OF = np.array([0] + [int(MANO21_PARENTS[k]) for k in range(1, 21)])


_MIRROR = torch.tensor([-1.0, 1.0, 1.0])


def palm_facing(joints: torch.Tensor, side: str) -> torch.Tensor:
    """(B,) in [-1, 1]: the cosine between the palm's (volar) normal and the direction to the camera (+1 palm
    to the camera, -1 its back); joints (B, 21, 3) MANO-21 order, camera frame. The normal is that of
    `core.eval.reproj.flexion_deg`: (index MCP - wrist) x (pinky MCP - wrist) on a right hand, its opposite
    on a left one."""
    w, i, p = joints[:, 0], joints[:, int(MP_FROM_MANO21[5])], joints[:, int(MP_FROM_MANO21[17])]
    n = torch.cross(i - w, p - w, dim=-1)
    if side == "left":
        n = -n
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    view = joints.mean(1)
    view = view / view.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return -(n * view).sum(-1)


def side_offsets(offsets, side: str, dtype=torch.float32, device=None) -> torch.Tensor | None:
    """Landmark offsets measured on a right hand, (21, 3) or (21, 6) (`RefineConfig.offsets`), as a (21, 6)
    tensor for ``side`` (the left hand is the right one mirrored x -> -x, and so are its offsets); None stays."""
    if offsets is None:
        return None
    o = torch.as_tensor(np.asarray(offsets, np.float64), dtype=dtype, device=device).reshape(21, -1)
    if o.shape[1] == 3:
        o = torch.cat([o, torch.zeros_like(o)], 1)
    if side == "left":
        m = _MIRROR.to(o)
        o = torch.cat([o[:, :3] * m, o[:, 3:] * m], 1)
    return o


def landmark_points(joints: torch.Tensor, grot: torch.Tensor, offsets: torch.Tensor | None,
                    side: str = "right") -> torch.Tensor:
    """Where the detector's landmarks sit on the hand: joints (B, 21, 3) MANO-21 plus each bone's rotation
    (``grot`` (B, 16, 3, 3), `fk_rigid`) applied to ``o + palm_facing * d`` (``offsets`` (21, 6) for this
    side, `side_offsets`); the joints when offsets is None."""
    if offsets is None:
        return joints
    s = palm_facing(joints, side)
    off = offsets[None, :, :3] + s[:, None, None] * offsets[None, :, 3:]  # (B, 21, 3)
    return joints + (grot[:, torch.as_tensor(BONE_OF, device=joints.device)] * off[:, :, None, :]).sum(-1)


def landmarks_of(layer: ManoLayer, betas: torch.Tensor, rotmats: torch.Tensor, transl: torch.Tensor,
                 offsets) -> torch.Tensor:
    """`landmark_points` of a pose (B, 21, 3) MANO-21 order; ``offsets`` as `RefineConfig.offsets` (a right
    hand's; mirrored for a left ``layer``) or None (the joints, as ``layer`` gives them)."""
    if offsets is None:
        return layer(betas, None, None, transl, with_vertices=False, rotmats=rotmats).joints21
    rest21 = torch.cat([layer.rest_joints(betas), layer.rest_tips(betas)], 1)
    j, g = fk_rigid(rotmats, rest21.expand(len(rotmats), -1, -1), transl)
    return landmark_points(j, g, side_offsets(offsets, layer.side, j.dtype, j.device), layer.side)


def with_landmark_offsets(cfg: "FitConfig", offsets, shape: bool = True, refine: bool = True) -> "FitConfig":
    """``cfg`` with the detector's landmark convention ``offsets`` ((21, 3) or (21, 6), `RefineConfig.offsets`)
    in the alignment's 2D term (video), with ``refine`` in the per-frame refinement's too (stills and video),
    and with ``shape`` in the shape fit (``offsets_shape``; on the config whose stage runs: the refinement's
    with ``refine``, else the alignment's, i.e. video only)."""
    off = tuple(tuple(float(x) for x in row) for row in np.asarray(offsets, np.float64))
    rep = {}
    if cfg.refine is not None and refine:
        rep["refine"] = dataclasses.replace(cfg.refine, offsets=off, offsets_shape=shape)
    if cfg.align is not None:
        rep["align"] = dataclasses.replace(cfg.align, offsets=off, offsets_shape=shape and not refine)
    return dataclasses.replace(cfg, **rep)


def _ancestor_pairs() -> tuple[np.ndarray, np.ndarray]:
    """(k, i) index arrays (P,) of every MANO-21 joint k and each MANO joint i that is a proper ancestor
    of k (a rotation at i moves k), and (0, 0): the root's rotation moves the wrist's landmark point (an
    offset from the wrist; a zero column without offsets); P = 51."""
    ks, is_ = [0], [0]
    for k in range(21):
        p = int(MANO21_PARENTS[k])
        while p >= 0:
            ks.append(k)
            is_.append(p)
            p = int(MANO21_PARENTS[p])
    return np.array(ks), np.array(is_)


_PAIR_K, _PAIR_I = _ancestor_pairs()


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched 3x3 product (..., 3, 3) without bmm (faster for many tiny matrices on CPU)."""
    return (a[..., :, :, None] * b[..., None, :, :]).sum(-2)


def fk_rigid(rotmats: torch.Tensor, rest21: torch.Tensor, transl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics of the MANO-21 skeleton with fingertips rigid on their last joint.

    Args:
        rotmats (B, 16, 3, 3): local rotations (joint 0 = global orient).
        rest21 (B, 21, 3): rest joints then tips (``layer.rest_joints``, ``layer.rest_tips``), metres.
        transl (B, 3): metres, added to every joint (``ManoLayer.forward`` convention).
    Returns:
        joints (B, 21, 3) MANO-21 order, and global rotations (B, 16, 3, 3). Equal to ``ManoLayer``'s
        ``joints21`` when each tip vertex is fully weighted to its last joint and there are no pose
        correctives (the open model); otherwise the tips differ slightly.
    """
    g = [rotmats[:, 0]]
    pos = [rest21[:, 0]]
    for i in range(1, 21):
        p = int(MANO21_PARENTS[i])
        if i < 16:
            g.append(_mm(g[p], rotmats[:, i]))
        pos.append(pos[p] + (g[p] * (rest21[:, i] - rest21[:, p])[:, None, :]).sum(-1))
    return torch.stack(pos, 1) + transl[:, None], torch.stack(g, 1)


class _Angles:
    """The angles (B, 15, 3) of joints 1..15 of one pose and their `_angle_jacobian` (B, 15, 3, 3), each computed
    once when first asked for: the limit and hyperextension rows of a refinement step share them."""

    def __init__(self, layer: ManoLayer, rotmats: torch.Tensor, betas: torch.Tensor, eps: float = 1e-3):
        self.layer, self.rotmats, self.betas, self.eps = layer, rotmats, betas, eps
        self._ang = self._jac = None

    @property
    def ang(self) -> torch.Tensor:
        if self._ang is None:
            self._ang = limits.joint_angles(self.layer, self.rotmats, self.betas)
        return self._ang

    @property
    def jac(self) -> torch.Tensor:
        if self._jac is None:
            self._jac = _angle_jacobian(self.layer, self.rotmats, self.betas, self.ang, self.eps)
        return self._jac


def _limit_terms(layer: ManoLayer, rotmats: torch.Tensor, betas: torch.Tensor, margin_deg: float = 1.0,
                 band_deg: float = 4.0, eps: float = 1e-3, angles: _Angles | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The joint-limit rows of joints 1..15: residual e (B, 15, 3) radians and Jacobian (B, 15, 3, 3).

    e: signed excess of flexion, abduction, twist over the `core.solve.limits` ranges pulled ``margin_deg``
    inside (positive above the upper bound, negative below the lower one, 0 within). The Jacobian is
    with respect to a local rotation ``R_j exp(delta_j)`` of the same joint (an angle depends on its own
    joint only, so three forward differences give every block); it is kept for angles beyond or within
    ``band_deg`` of the pulled-in bounds (rows with e = 0 there add curvature only), so a joint just
    brought inside does not jump back out on the next step, and zeroed elsewhere.
    ``betas`` (B, NB) or (1, NB) for one shape over the batch (the joint frames are then built once).
    ``angles``: the pose's `_Angles` where the caller shares them (else built here).
    """
    angles = _Angles(layer, rotmats, betas, eps) if angles is None else angles
    ang = angles.ang
    e = ang - limits.clamp_angles(ang, margin_deg)
    near = ang != limits.clamp_angles(ang, margin_deg + band_deg)  # (B, 15, 3)
    if not bool(near.any()):
        return e, torch.zeros(*e.shape, 3, dtype=e.dtype, device=e.device)
    return e, angles.jac * near[..., None]


def _angle_jacobian(layer: ManoLayer, rotmats: torch.Tensor, betas: torch.Tensor, ang: torch.Tensor, eps: float,
                    flexion_only: bool = False) -> torch.Tensor:
    """Forward-difference Jacobian of joints 1..15's angles ``ang`` (B, 15, 3), or their flexion (B, 15) with
    ``flexion_only``, with respect to a local rotation ``R_j exp(delta_j)`` of the same joint: (..., 3).
    Differences wrap at +-pi (the twist)."""
    rot = rotmats[:, 1:]
    jac = torch.zeros(*ang.shape, 3, dtype=ang.dtype, device=ang.device)
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
    for c in range(3):
        step = _mm(rot, aa_to_rotmat(eye[c] * eps).expand_as(rot))
        moved = limits.joint_angles(layer, torch.cat([rotmats[:, :1], step], 1), betas)
        d = (moved[..., 0] if flexion_only else moved) - ang
        jac[..., c] = (torch.remainder(d + torch.pi, 2 * torch.pi) - torch.pi) / eps
    return jac


_FINGERS = torch.tensor([1.0] * 12 + [0.0] * 3)  # MANO joints 1..15: index, middle, pinky, ring; thumb last


def _descendant_pairs() -> tuple[np.ndarray, np.ndarray]:
    """(j, k) index arrays (P,): every MANO joint j in 1..15 (as j - 1) and each MANO-21 joint k its rotation moves
    (a proper descendant)."""
    js, ks = [], []
    for k in range(21):
        p = int(MANO21_PARENTS[k])
        while p > 0:
            js.append(p - 1)
            ks.append(k)
            p = int(MANO21_PARENTS[p])
    return np.array(js), np.array(ks)


_DESC_J, _DESC_K = _descendant_pairs()
_DESC_N = np.bincount(_DESC_J, minlength=15)
# (15, max descendants): each joint's pairs (indices into _DESC_J) in their order, padded with len(_DESC_J) (a zero
# column): `mirror_excess` sums them with plain additions in that order, the same sum as index_add_ on the CPU and a
# fixed order on a GPU (where index_add_ adds atomically, in no fixed order).
_DESC_TABLE = np.full((15, _DESC_N.max()), len(_DESC_J))
for _j in range(15):
    _p = np.nonzero(_DESC_J == _j)[0]
    _DESC_TABLE[_j, : len(_p)] = _p


def mirror_excess(layer: ManoLayer, betas: torch.Tensor, flex: torch.Tensor, grot: torch.Tensor, j21: torch.Tensor,
                  lm: torch.Tensor, kp_px: torch.Tensor, K: torch.Tensor, s_px: torch.Tensor) -> torch.Tensor:
    """(B, 15): how much worse the 2D fits with each joint's flexion mirrored (``flex`` (B, 15) rad -> -flex, its
    descendants turned about the joint by -2 flex about the flexion axis; `RefineConfig.hyper_gate`), hand sizes:
    the mean over the joint's descendants' landmark points ``lm`` (B, 21, 3) of their 2D distance to ``kp_px``
    (B, 21, 2) MANO-21 order, mirrored minus as they are. ~0: the image cannot tell the two sides apart."""
    dev = grot.device
    a, _, _ = limits._joint_frames(layer, betas)
    par = torch.as_tensor(MANO21_PARENTS[1:16], device=dev)
    axis = (grot[:, par] * a.to(grot)[:, :, None, :]).sum(-1)  # (B, 15, 3) flexion axes, camera frame
    m = aa_to_rotmat(axis * (-2 * flex)[..., None])  # (B, 15, 3, 3)
    dj, dk = torch.as_tensor(_DESC_J, device=dev), torch.as_tensor(_DESC_K, device=dev)
    centre = j21[:, 1 + dj]  # (B, P, 3)
    pts = lm[:, dk]
    moved = centre + (m[:, dj] * (pts - centre)[..., None, :]).sum(-1)

    def err(q):  # (B, P) 2D distance to the pair's landmark, hand sizes
        z = q[..., 2].clamp_min(1e-4)
        uv = torch.stack([K[:, 0, 0, None] * q[..., 0] / z + K[:, 0, 2, None],
                          K[:, 1, 1, None] * q[..., 1] / z + K[:, 1, 2, None]], -1)
        return (uv - kp_px[:, dk]).norm(dim=-1) / s_px[:, None]

    diff = err(moved) - err(pts)
    table = torch.as_tensor(_DESC_TABLE, device=dev)
    per = torch.cat([diff, torch.zeros_like(diff[:, :1])], 1)[:, table]  # (B, 15, D) each joint's pairs, 0-padded
    out = per[..., 0]
    for k in range(1, per.shape[-1]):
        out = out + per[..., k]
    return out / torch.as_tensor(_DESC_N, dtype=diff.dtype, device=dev)


def _hyper_terms(layer: ManoLayer, rotmats: torch.Tensor, betas: torch.Tensor, band_deg: float = 4.0,
                 eps: float = 1e-3, gate=None, angles: _Angles | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hyperextension rows of joints 1..15: residual e (B, 15) = min(flexion, 0) radians on the four
    fingers (0 on the thumb), and its Jacobian (B, 15, 3) with respect to ``R_j exp(delta_j)``, kept for
    flexions below ``band_deg`` (curvature just inside, as `_limit_terms`); ``gate`` (B, 15) in [0, 1] or
    None, or a callable of the flexion (B, 15) giving it: the rows' square-root weights scale by it
    (`RefineConfig.hyper_gate`). ``angles``: the pose's `_Angles` where the caller shares them."""
    angles = _Angles(layer, rotmats, betas, eps) if angles is None else angles
    flex = angles.ang[..., 0]
    mask = _FINGERS.to(flex)
    if gate is not None:
        mask = mask * (gate(flex) if callable(gate) else gate).sqrt()
    e = flex.clamp(max=0.0) * mask
    near = (flex < np.radians(band_deg)) & (mask > 0)
    if not bool(near.any()):
        return e, torch.zeros(*e.shape, 3, dtype=e.dtype, device=e.device)
    return e, angles.jac[..., 0, :] * (near * mask)[..., None]  # the flexion row: its own differences


def refine(layer: ManoLayer, betas: torch.Tensor, rotmats: torch.Tensor, transl: torch.Tensor,
           kp_px: torch.Tensor, K: torch.Tensor, target: torch.Tensor, cfg: RefineConfig = RefineConfig(),
           depth: torch.Tensor | None = None, depth_w: torch.Tensor | None = None,
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Refine a MANO pose against 2D landmarks and a 3D target.

    Args:
        layer: the hand model of this hand's side.
        betas (B, NB): shape (fixed).
        rotmats (B, 16, 3, 3): initial local rotations (the IK result; also the prior's centre).
        transl (B, 3): initial translation, metres (``layer(..., transl)`` convention).
        kp_px (B, 21, 2): 2D landmarks, pixels, MANO-21 order.
        K (B, 3, 3): intrinsics.
        target (B, 21, 3): 3D joints, metres, camera frame, MANO-21 order.
        cfg: energy weights.
        depth (B,) metres or None: a depth for the joints' mean (a prior from outside this hand, e.g. the other
            hand of the same person); depth_w (B,): its weight per frame (0 = none), on the residual
            (mean depth - depth) / the hand's size.
    Returns:
        rotmats (B, 16, 3, 3), transl (B, 3).
    """
    bsz, dt, dev = rotmats.shape[0], rotmats.dtype, rotmats.device
    rest21 = torch.cat([layer.rest_joints(betas), layer.rest_tips(betas)], 1)  # (B, 21, 3)
    s_m = (rest21 - rest21.mean(1, keepdim=True)).norm(dim=-1).mean(1)  # (B,) hand size, metres
    s_px = (kp_px - kp_px.mean(1, keepdim=True)).norm(dim=-1).mean(1).clamp_min(1.0)  # (B,) pixels
    w2 = torch.as_tensor(np.ones(21) if cfg.joint_w_2d is None else cfg.joint_w_2d, dtype=dt, device=dev)
    w3 = torch.as_tensor(np.ones(21) if cfg.joint_w_3d is None else cfg.joint_w_3d, dtype=dt, device=dev)
    w2, w3 = w2[MANO21_FROM_MP] * cfg.w_2d, w3[MANO21_FROM_MP] * cfg.w_3d  # MP order in, MANO-21 here
    pk = torch.as_tensor(_PAIR_K, device=dev)
    pi = torch.as_tensor(_PAIR_I, device=dev)
    flat = pk * 16 + pi
    eye3 = torch.eye(3, dtype=dt, device=dev)
    prior = torch.full((16, 3), cfg.w_prior, dtype=dt, device=dev)
    prior[0] = cfg.w_prior_root
    prior = torch.cat([prior.reshape(48), torch.zeros(3, dtype=dt, device=dev)])  # (51,)
    fx, fy, cx, cy = K[:, 0, 0, None], K[:, 1, 1, None], K[:, 0, 2, None], K[:, 1, 2, None]
    use_limits = cfg.w_limit > 0
    off = side_offsets(cfg.offsets, layer.side, dt, dev)
    lim_betas = betas[:1] if bool((betas == betas[:1]).all()) else betas  # one clip shape: frames once
    rot = rotmats
    tr = transl
    acc = torch.zeros(bsz, 51, dtype=dt, device=dev)  # accumulated change from the start (prior)
    eye51 = torch.eye(51, dtype=dt, device=dev)
    axis_w = torch.tensor([1.0, 1.0, float(np.sqrt(cfg.w_depth))], dtype=dt, device=dev)  # sqrt, on residuals
    for _ in range(cfg.iters):
        # 1. FK and the joints' Jacobian (B, 21, 3, 51): a local rotation R_i exp(delta) moves each
        # descendant k by (G_i delta) x (J_k - J_i), i.e. column c of block (k, i) is G_i[:, c] x (J_k - J_i);
        # the translation moves every joint.
        j21, grot = fk_rigid(rot, rest21, tr)
        lm = landmark_points(j21, grot, off, layer.side)  # the points the 2D landmarks mark (the joints without offsets)
        gcols = grot[:, pi].transpose(-1, -2)  # (B, P, 3 columns, 3)

        def jacobian(pts):  # (B, 21, 3, 51) of points carried rigidly by the bones (`BONE_OF`)
            rel = (pts[:, pk] - j21[:, pi])[:, :, None].expand_as(gcols)
            blocks = torch.zeros(bsz, 21 * 16, 3, 3, dtype=dt, device=dev)  # (B, k*16+i, column, xyz)
            blocks[:, flat] = torch.cross(gcols, rel, dim=-1)
            return torch.cat([blocks.reshape(bsz, 21, 16, 3, 3).permute(0, 1, 4, 2, 3).reshape(bsz, 21, 3, 48),
                              eye3.expand(bsz, 21, 3, 3)], -1)

        j3 = jacobian(j21)
        jl = j3 if off is None else jacobian(lm)
        # 2. 2D: residual in hand sizes, projection Jacobian P (B, 21, 2, 3), Geman-McClure IRLS weights.
        z = lm[..., 2].clamp_min(1e-4)
        u = fx * lm[..., 0] / z + cx
        v = fy * lm[..., 1] / z + cy
        r2 = (torch.stack([u, v], -1) - kp_px) / s_px[:, None, None]  # (B, 21, 2)
        zero = torch.zeros_like(z)
        p = torch.stack([torch.stack([fx / z, zero, -fx * lm[..., 0] / z**2], -1),
                         torch.stack([zero, fy / z, -fy * lm[..., 1] / z**2], -1)], -2) / s_px[:, None, None, None]
        jac2 = p @ jl  # (B, 21, 2, 51)
        sig2 = cfg.robust_2d**2
        if cfg.robust_2d_frame > 0:  # per frame: at least that share of the frame's median residual
            sig2 = torch.maximum(torch.full_like(s_px, sig2),
                                 (cfg.robust_2d_frame * r2.norm(dim=-1).median(1).values) ** 2)[:, None]
        sw2 = (w2 * sig2**2 / (r2.square().sum(-1) + sig2) ** 2).sqrt()  # (B, 21) sqrt of weight x IRLS
        # 3. 3D: residual in hand sizes, depth component down-weighted.
        sw3 = w3.sqrt()[:, None] * axis_w  # (21, 3)
        p3, jp3 = (lm, jl) if cfg.offsets_3d else (j21, j3)
        r3 = (p3 - target) / s_m[:, None, None] * sw3
        jac3 = jp3 / s_m[:, None, None, None] * sw3[..., None]
        # 4. Normal equations of the stacked weighted rows A: H = A^T A + prior, g = A^T r + prior * acc.
        a = torch.cat([(jac2 * sw2[..., None, None]).reshape(bsz, 42, 51), jac3.reshape(bsz, 63, 51)], 1)
        r = torch.cat([(r2 * sw2[..., None]).reshape(bsz, 42), r3.reshape(bsz, 63)], 1)
        if depth is not None:  # one row: the joints' mean depth near the given depth
            sd = depth_w.sqrt() / s_m
            a = torch.cat([a, (j3[:, :, 2].mean(1) * sd[:, None])[:, None]], 1)
            r = torch.cat([r, ((j21[..., 2].mean(1) - depth) * sd)[:, None]], 1)
        at = a.transpose(1, 2)
        h = at @ a + torch.diag_embed(prior.expand(bsz, -1))
        g = (at @ r[..., None])[..., 0] + prior * acc
        angles = _Angles(layer, rot, lim_betas)  # shared by the limit and hyperextension rows
        if use_limits:
            # excess e (B, 15, 3) and de/ddelta (B, 15, 3, 3) of joints 1..15 (parameters 3..47)
            e, ja = _limit_terms(layer, rot, lim_betas, angles=angles)
            hl = torch.einsum("bjrp,bjrq->bjpq", ja, ja) * cfg.w_limit  # (B, 15, 3, 3) block diagonal
            gl = torch.einsum("bjrp,bjr->bjp", ja, e) * cfg.w_limit
            idx = torch.arange(3, 48, device=dev).reshape(15, 3)
            h[:, idx[:, :, None], idx[:, None, :]] += hl
            g[:, 3:48] += gl.reshape(bsz, 45)
        if cfg.w_hyper > 0:
            gate = None
            if cfg.hyper_gate is not None:
                tol = cfg.hyper_gate
                gate = lambda fl: ((2 * tol - mirror_excess(layer, lim_betas, fl, grot, j21, lm, kp_px, K, s_px))  # noqa: E731
                                   / tol).clamp(0, 1)
            e, ja = _hyper_terms(layer, rot, lim_betas, gate=gate, angles=angles)
            hl = torch.einsum("bjp,bjq->bjpq", ja, ja) * cfg.w_hyper
            gl = ja * e[..., None] * cfg.w_hyper
            idx = torch.arange(3, 48, device=dev).reshape(15, 3)
            h[:, idx[:, :, None], idx[:, None, :]] += hl
            g[:, 3:48] += gl.reshape(bsz, 45)
        # Marquardt damping (a fraction of each diagonal entry), floored at a fraction of the mean entry:
        # a direction that only weak rows constrain (a joint-limit row) would otherwise get a huge step.
        diag = h.diagonal(dim1=1, dim2=2)
        floor = cfg.damping_floor * diag.mean(1, keepdim=True)
        h = h + torch.diag_embed(cfg.damping * torch.maximum(diag, floor) + 1e-6)
        step = -torch.linalg.solve(h, g[..., None])[..., 0]  # (B, 51)
        # 5. Update: local rotations R_i <- R_i exp(delta_i), translation += dt.
        acc = acc + step
        rot = _mm(rot, aa_to_rotmat(step[:, :48].reshape(bsz, 16, 3)))
        tr = tr + step[:, 48:]
    # 6. A frame whose solve failed (non-finite) keeps its initial pose.
    ok = torch.isfinite(rot).all(-1).all(-1).all(-1) & torch.isfinite(tr).all(-1)
    rot = torch.where(ok[:, None, None, None], rot, rotmats)
    tr = torch.where(ok[:, None], tr, transl)
    return rot, tr
