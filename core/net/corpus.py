"""The refiner's training corpus: hand poses the project authors itself, posed by the hand model.

Nothing here comes from a research-only data set. Poses are:
1. a grasp and gesture taxonomy (`TAXONOMY`) written as joint angles, per finger
   (flex, abd, twist, pip, dip) degrees: the first joint's flexion, abduction and twist in the
   twist-swing frame of `core.solve.limits` (a = the finger's flexion axis `core.solve.ik.hinge_axes` made
   perpendicular to the rest bone b, c = b x a; right hand: positive abduction = radial, towards the
   thumb), the second and third joints pure hinges about the flexion axis (as `core.solve.ik` models them);
   the thumb's first joint is its CMC, its pip/dip its MCP and IP. The thumbs of the contact poses
   (pinch, tripod, OK sign, ...) were placed with a small offline fit to a contact point and rounded;
2. blends of two taxonomy poses, perturbed with flexion synergies (one hand-wide flexion change,
   spread over MCP/PIP/DIP in a natural ratio, plus smaller per-finger changes);
3. uniform random angles inside the ranges (coverage of poses outside the taxonomy);
every angle clamped into `core.solve.limits.ranges_deg`. Shapes: betas ~ N(0, 1). Joints from
`core.hand.mano.ManoLayer` forward kinematics of the right model; a left hand is the mirror image (x -> -x).

`detector_noise` turns clean joints into detector-like ones (see `NoiseConfig`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..hand.model import FINGERS
from ..solve.ik import FINGER_ORDER, hinge_axes
from ..solve.limits import ranges_deg
from ..hand.mano import ManoLayer
from ..rot import aa_to_rotmat

PARAMS = ("flex", "abd", "twist", "pip", "dip")  # per finger, degrees

_FIST_FINGERS = {"index": (80, 5, 0, 95, 50), "middle": (85, 0, 0, 100, 50), "ring": (88, -5, 0, 100, 50),
                 "pinky": (90, -10, 0, 95, 45)}


def _pose(thumb, index, middle, ring, pinky) -> dict:
    return {"thumb": thumb, "index": index, "middle": middle, "ring": ring, "pinky": pinky}


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-9)


def finger_frames(layer: ManoLayer, betas: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Flexion axis a (perpendicular to the bone), bone b, abduction axis c = b x a of each finger's first
    joint, and the unmodified hinge axes h: a, b, c, h each (B, 5, 3), rest frame, FINGER_ORDER."""
    j_rest = layer.rest_joints(betas)
    tips = layer.rest_tips(betas)
    h = hinge_axes(j_rest, tips, layer.side)
    first = [FINGERS[n][0][0] for n in FINGER_ORDER]
    second = [FINGERS[n][0][1] for n in FINGER_ORDER]
    b = _unit(j_rest[:, second] - j_rest[:, first])
    a = _unit(h - (h * b).sum(-1, keepdim=True) * b)
    c = torch.cross(b, a, dim=-1)
    return a, b, c, h


def angles_to_rotmats(layer: ManoLayer, angles: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Local rotations (B, 16, 3, 3) (joint 0 = identity) from angles (B, 5, 5) radians, per finger
    (FINGER_ORDER) flex, abd, twist, pip, dip. First joint: aa(flex a + abd c) @ aa(twist b), as
    `core.solve.limits.sample_poses`; second and third: aa(h pip), aa(h dip) about the hinge axis h."""
    a, b, c, h = finger_frames(layer, betas)
    a, b, c, h = (t.to(angles.dtype) for t in (a, b, c, h))
    rot = torch.eye(3, dtype=angles.dtype, device=angles.device).repeat(angles.shape[0], 16, 1, 1)
    first = aa_to_rotmat(angles[..., 0:1] * a + angles[..., 1:2] * c) @ aa_to_rotmat(angles[..., 2:3] * b)
    pip = aa_to_rotmat(angles[..., 3:4] * h)
    dip = aa_to_rotmat(angles[..., 4:5] * h)
    for f, name in enumerate(FINGER_ORDER):
        (j1, j2, j3), _ = FINGERS[name]
        rot[:, j1], rot[:, j2], rot[:, j3] = first[:, f], pip[:, f], dip[:, f]
    return rot


# ---------------------------------------------------------------------------------------------------
# The taxonomy. Fingers: (flex, abd, twist, pip, dip) degrees; abd > 0 = radial (towards the thumb).
# Thumb: (CMC flex, CMC abd, CMC twist, MCP flex, IP flex); CMC twist ~40 is the pronated resting
# thumb (MediaPipe on the MIT video single_hand.mp4 fitted with this parameterisation sits at 30-50).
_OPEN = (0, 0, 0, 0, 0)
# name -> finger -> (flex, abd, twist, pip, dip) degrees.
TAXONOMY: dict[str, dict[str, tuple]] = {
    "open": _pose((0, 10, 40, 5, 5), _OPEN, _OPEN, _OPEN, _OPEN),
    "relaxed": _pose((5, 15, 40, 10, 10), (15, 3, 0, 20, 10), (20, 0, 0, 25, 12), (25, -4, 0, 30, 15),
                     (30, -8, 0, 30, 15)),
    "spread": _pose((-20, -30, 25, -10, 0), (0, 15, 0, 0, 0), _OPEN, (0, -12, 0, 0, 0), (0, -25, 0, 0, 0)),
    "flat_adducted": _pose((0, -5, 20, 0, 0), (0, -3, 0, 0, 0), _OPEN, (0, 3, 0, 0, 0), (0, 6, 0, 0, 0)),
    "fist": _pose((-17, 20, 48, 28, 30), *_FIST_FINGERS.values()),
    "thumbs_up": _pose((-15, -10, 30, -5, 0), *_FIST_FINGERS.values()),
    "point": _pose((-12, 26, 54, 30, 23), (0, 0, 0, 5, 3), _FIST_FINGERS["middle"], _FIST_FINGERS["ring"],
                   _FIST_FINGERS["pinky"]),
    "tip_pinch": _pose((-10, 21, 44, 7, 5), (45, 0, 0, 50, 25), (35, 0, 0, 45, 20), (40, -3, 0, 50, 25),
                       (45, -8, 0, 50, 25)),
    "ok_sign": _pose((-9, 20, 44, 7, 6), (40, 0, 0, 60, 35), (10, -2, 0, 10, 5), (12, -6, 0, 12, 6),
                     (15, -14, 0, 15, 8)),
    "tripod": _pose((-2, 34, 46, 6, 2), (40, -5, 0, 45, 20), (40, 5, 0, 45, 20), (55, -5, 0, 70, 35),
                    (60, -10, 0, 70, 35)),
    "lateral_pinch": _pose((1, 13, 41, 7, 6), (60, 0, 0, 85, 40), (75, 0, 0, 95, 45), (80, -5, 0, 95, 45),
                           (85, -10, 0, 90, 45)),
    "v_sign": _pose((16, 35, 52, 27, 26), (0, 12, 0, 5, 3), (0, -10, 0, 5, 3), _FIST_FINGERS["ring"],
                    _FIST_FINGERS["pinky"]),
    "three": _pose((2, 44, 55, 36, 24), (0, 8, 0, 3, 2), (0, 0, 0, 3, 2), (0, -8, 0, 3, 2), _FIST_FINGERS["pinky"]),
    "four": _pose((25, 30, 39, 32, 18), (0, 5, 0, 3, 2), (0, 0, 0, 3, 2), (0, -5, 0, 3, 2), (0, -10, 0, 3, 2)),
    "rock": _pose((4, 22, 51, 60, -10), (0, 5, 0, 3, 2), _FIST_FINGERS["middle"], _FIST_FINGERS["ring"],
                  (0, -15, 0, 3, 2)),
    "shaka": _pose((-20, -30, 25, -10, 0), _FIST_FINGERS["index"], _FIST_FINGERS["middle"], _FIST_FINGERS["ring"],
                   (0, -25, 0, 3, 2)),
    "cylinder_grasp": _pose((0, 14, 41, 6, 6), (50, 5, 0, 60, 30), (55, 0, 0, 60, 30), (58, -5, 0, 60, 30),
                            (60, -10, 0, 60, 30)),
    "spherical_grasp": _pose((10, 45, 55, 15, 10), (30, 12, 0, 35, 20), (30, 2, 0, 35, 20), (30, -8, 0, 35, 20),
                             (30, -20, 0, 35, 20)),
    "hook": _pose((0, 10, 40, 5, 5), (0, 0, 0, 90, 60), (0, 0, 0, 95, 60), (0, -3, 0, 95, 60), (0, -6, 0, 90, 55)),
    "claw": _pose((-10, -10, 35, 30, 30), (-10, 10, 0, 80, 60), (-10, 0, 0, 85, 60), (-10, -8, 0, 85, 60),
                  (-10, -15, 0, 80, 55)),
    "oppose_middle": _pose((-12, 31, 46, 14, 9), (20, 5, 0, 20, 10), (50, 0, 0, 55, 25), (30, -5, 0, 30, 15),
                           (30, -10, 0, 30, 15)),
    "oppose_ring": _pose((-11, 39, 57, 22, 14), (15, 5, 0, 15, 8), (30, 0, 0, 30, 15), (55, -8, 0, 60, 30),
                         (40, -12, 0, 40, 20)),
    "oppose_pinky": _pose((-9, 51, 60, 28, 17), (10, 8, 0, 10, 5), (20, 0, 0, 20, 10), (40, -8, 0, 40, 20),
                          (60, -8, 0, 65, 30)),
}
# The thumb CMC twist is kept at or below this (degrees): `core.solve.ik` resolves a hinge line's direction by
# the smaller twist, so larger ones do not round-trip through the IK (as `core.solve.limits.sample_poses`).
THUMB_TWIST_MAX = 60.0


def taxonomy_array() -> np.ndarray:
    """The taxonomy as (K, 5, 5) degrees, poses in TAXONOMY order, fingers in FINGER_ORDER, PARAMS."""
    return np.array([[pose[f] for f in FINGER_ORDER] for pose in TAXONOMY.values()], np.float64)


def angle_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds (5, 5) degrees of the PARAMS per finger, from `core.solve.limits.ranges_deg`
    (first joint: flex, abd, twist; second and third: flex), the thumb CMC twist capped at THUMB_TWIST_MAX."""
    r = ranges_deg()  # (15, 6) for MANO joints 1..15
    lo, hi = np.zeros((5, 5)), np.zeros((5, 5))
    for f, name in enumerate(FINGER_ORDER):
        (j1, j2, j3), _ = FINGERS[name]
        lo[f, :3], hi[f, :3] = r[j1 - 1, 0::2], r[j1 - 1, 1::2]
        lo[f, 3], hi[f, 3] = r[j2 - 1, 0], r[j2 - 1, 1]
        lo[f, 4], hi[f, 4] = r[j3 - 1, 0], r[j3 - 1, 1]
    hi[0, 2] = min(hi[0, 2], THUMB_TWIST_MAX)
    return lo, hi


@dataclasses.dataclass(frozen=True)
class PoseMix:
    """How `sample_angles` draws poses (degrees; fractions sum to at most 1, the rest are blends).

    key_fraction: a taxonomy pose, perturbed; uniform_fraction: uniform random angles inside the
    bounds (PIP/DIP uniform too); the rest: a blend (weight ~ U(0, 1)) of two taxonomy poses, perturbed.
    synergy_sd: one hand-wide flexion change (deg), applied to each finger's (MCP, PIP, DIP) times
    SYNERGY and to the thumb's MCP/IP at half size; finger_flex_sd, finger_abd_sd, finger_twist_sd:
    independent per-finger changes (DIP follows 0.6 of the PIP change); thumb_sd: per thumb parameter.
    captured_share: where captured poses are given (`sample_angles` ``captured``), the chance that a
    key pose (alone or in a blend) is one of them rather than a taxonomy pose.
    """

    key_fraction: float = 0.2
    uniform_fraction: float = 0.2
    synergy_sd: float = 15.0
    finger_flex_sd: float = 10.0
    finger_abd_sd: float = 5.0
    finger_twist_sd: float = 4.0
    thumb_sd: tuple = (10.0, 12.0, 10.0, 10.0, 12.0)
    captured_share: float = 0.4


SYNERGY = (1.0, 1.1, 0.6)  # MCP, PIP, DIP share of the hand-wide flexion change


def sample_angles(n: int, generator: torch.Generator, mix: PoseMix = PoseMix(),
                  captured: np.ndarray | None = None) -> torch.Tensor:
    """Random hand poses (n, 5, 5) degrees float64 (FINGER_ORDER x PARAMS), clamped into `angle_bounds`.

    captured: optional key poses (K, 5, 5) degrees captured from video (`core.net.captured`), drawn
    beside the taxonomy's with probability ``mix.captured_share``.
    """
    keys = torch.as_tensor(taxonomy_array())
    lo, hi = (torch.as_tensor(b) for b in angle_bounds())
    k = len(keys)
    dt = torch.float64

    def rand(*shape):
        return torch.rand(*shape, generator=generator, dtype=dt)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=dt)

    # 1. Blends of two key poses (a key pose alone is a blend with weight 0).
    i = torch.randint(k, (n,), generator=generator)
    j = torch.randint(k, (n,), generator=generator)
    if captured is not None and len(captured):
        kc = len(captured)
        keys = torch.cat([keys, torch.as_tensor(captured, dtype=torch.float64)])
        for idx in (i, j):
            pick = torch.rand(n, generator=generator, dtype=torch.float64) < mix.captured_share
            idx[pick] = k + torch.randint(kc, (int(pick.sum()),), generator=generator)
    u = rand(n)
    kind = torch.where(u < mix.key_fraction, 0, torch.where(u < mix.key_fraction + mix.uniform_fraction, 2, 1))
    t = torch.where(kind == 1, rand(n), torch.zeros(n, dtype=dt))[:, None, None]
    ang = (1 - t) * keys[i] + t * keys[j]
    # 2. Synergies and independent perturbations.
    syn = randn(n) * mix.synergy_sd
    fing = ang[:, 1:]
    share = torch.as_tensor(SYNERGY, dtype=dt)
    fing[..., [0, 3, 4]] += syn[:, None, None] * share
    pip = randn(n, 4) * mix.finger_flex_sd
    fing[..., 0] += randn(n, 4) * mix.finger_flex_sd
    fing[..., 3] += pip
    fing[..., 4] += 0.6 * pip + randn(n, 4) * 0.5 * mix.finger_flex_sd
    fing[..., 1] += randn(n, 4) * mix.finger_abd_sd
    fing[..., 2] += randn(n, 4) * mix.finger_twist_sd
    thumb = ang[:, 0]
    thumb += randn(n, 5) * torch.as_tensor(mix.thumb_sd, dtype=dt)
    thumb[:, 3:] += 0.5 * syn[:, None]
    # 3. Uniform random poses (finger twist stays small, as a finger's MCP allows little of it).
    uni = lo + (hi - lo) * rand(n, 5, 5)
    uni[:, 1:, 2] = randn(n, 4) * mix.finger_twist_sd * 2
    ang = torch.where((kind == 2)[:, None, None], uni, ang)
    return torch.maximum(torch.minimum(ang, hi), lo)


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Clean training hands (torch float32). N = samples.

    joints (N, 21, 3): MANO-21, metres, right hand, model frame (global orient identity, no transl);
    angles (N, 5, 5): degrees (FINGER_ORDER x PARAMS); betas (N, NB).
    """

    joints: torch.Tensor
    angles: torch.Tensor
    betas: torch.Tensor


def make_corpus(layer: ManoLayer, n: int, seed: int, mix: PoseMix = PoseMix(), chunk: int = 8192,
                captured: np.ndarray | None = None) -> Corpus:
    """``n`` clean hands of ``layer`` (a right model): `sample_angles` poses (with the ``captured`` key
    poses, if given), betas ~ N(0, 1); same seed, same corpus."""
    if layer.side != "right":
        raise ValueError("make_corpus poses a right hand model; mirror x for a left hand")
    gen = torch.Generator().manual_seed(int(seed))
    ang = sample_angles(n, gen, mix, captured)
    betas = torch.randn(n, layer.n_betas, generator=gen, dtype=torch.float64).float()
    dt = layer.v_template.dtype
    out = []
    with torch.no_grad():
        for s in range(0, n, chunk):
            a = torch.deg2rad(ang[s:s + chunk]).to(dt)
            b = betas[s:s + chunk].to(dt)
            rot = angles_to_rotmats(layer, a, b)
            out.append(layer(b, None, None, rotmats=rot, with_vertices=False).joints21.float())
    return Corpus(joints=torch.cat(out), angles=ang.float(), betas=betas)


# ---------------------------------------------------------------------------------------------------
# Detector-like errors.

@dataclasses.dataclass(frozen=True)
class NoiseConfig:
    """Detector-like errors added by `detector_noise` (millimetres at a hand's real size).

    Sizes follow MediaPipe's residuals where we could measure them without evaluation data: on the
    project's own render (``python -m core demo``; world landmarks vs the rendered truth, after a
    similarity fit over the 20 non-wrist joints) the error is ~4.5 / 5.3 mm (x, y) and ~11 mm along the
    camera axis, bone lengths scatter by 5-25 %, and the wrist landmark moves by ~7 mm (sd) along
    the palm axis; on real hands MediaPipe's wrist sits up to ~2 cm nearer the fingers.

    joint_sd_mm: per-sample isotropic per-joint sd, drawn uniformly from this range.
    depth_sd_mm: per-sample extra sd along the camera axis (a random direction in the hand frame).
    bone_scale_sd: sd of each bone's relative length error (clipped at +-2.5 sd); the error moves
        the bone's whole subtree.
    wrist_shift_mm: wrist landmark moved towards the fingers along the palm axis, uniform in range;
        wrist_lateral_mm: sd of its sideways offset.
    garbage_prob: chance that one finger (any, the thumb included) is replaced by the same finger of
        another sample (an occluded finger the detector guesses wrong).
    clean_prob: chance that a sample gets no error at all (clean joints must come back unchanged).
    bias_scale: range of the per-sample factor on the detector's systematic offsets (`detector_noise`
        ``bias``; measured on renders by `core.net.renders`).
    Global tilt (MediaPipe's hands are tilted ~10 degrees) and global scale errors are rotations and
    scalings of the whole hand: the canonical frame removes them exactly, so they are not drawn here.
    """

    joint_sd_mm: tuple = (1.5, 7.0)
    depth_sd_mm: tuple = (2.0, 12.0)
    bone_scale_sd: float = 0.07
    wrist_shift_mm: tuple = (-5.0, 20.0)
    wrist_lateral_mm: float = 4.0
    garbage_prob: float = 0.15
    clean_prob: float = 0.1
    bias_scale: tuple = (0.5, 1.5)


# Each finger's joints (base, second, third, tip), MANO-21, (5, 4) in FINGER_ORDER.
_CHAIN = np.array([list(FINGERS[n][0]) + [FINGERS[n][1]] for n in FINGER_ORDER], np.int64)


def detector_noise(joints: torch.Tensor, generator: torch.Generator, cfg: NoiseConfig = NoiseConfig(),
                   bias: np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
    """Detector-like joints (B, 21, 3) from clean ones (B, 21, 3) (MANO-21, metres, right hand, model
    frame with the palm as in the rest pose, as `make_corpus` gives them).

    Steps: 0. the detector's systematic offsets ``bias`` (21, 3) metres, model frame (`core.net.renders`),
    times a per-sample factor drawn from ``cfg.bias_scale`` (None: no offsets);
    1. garbage fingers (a finger's joints, relative to its base, from another sample);
    2. bone-length errors, carried down each finger's chain; 3. the wrist convention shift;
    4. per-joint noise, isotropic plus extra along a random camera axis; clean_prob samples skip all.
    """
    b, dev, dt = joints.shape[0], joints.device, joints.dtype
    chain = torch.as_tensor(_CHAIN, device=dev)

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device=dev, dtype=dt)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, device=dev, dtype=dt)

    # 0. Systematic offsets of the detector's joint convention.
    src = joints
    if bias is not None:
        lo, hi = cfg.bias_scale
        scale = lo + (hi - lo) * rand(b)
        src = joints + scale[:, None, None] * torch.as_tensor(bias, dtype=dt, device=dev)[None]
    # 1. Garbage finger: (B, 5, 4, 3) chains, one finger per hit sample taken from another sample.
    other = torch.randint(b, (b,), generator=generator, device=dev)
    which = torch.randint(5, (b,), generator=generator, device=dev)
    hit = rand(b) < cfg.garbage_prob
    fingers = src[:, chain]
    base = fingers[:, :, :1]
    repl = fingers[other] - base[other] + base
    swap = (torch.nn.functional.one_hot(which, 5).bool() & hit[:, None])[..., None, None]
    fingers = torch.where(swap, repl, fingers)
    # 2. Bone lengths: each bone (wrist -> base included) scaled by (1 + e), positions re-accumulated.
    wrist = src[:, :1]
    rel = fingers - torch.cat([wrist[:, None].expand(-1, 5, -1, -1), fingers[:, :, :3]], 2)  # (B, 5, 4, 3)
    sd = cfg.bone_scale_sd
    e = (randn(b, 5, 4) * sd).clamp(-2.5 * sd, 2.5 * sd)
    fingers = wrist[:, None] + torch.cumsum(rel * (1 + e)[..., None], 2)
    out = src.clone()
    out[:, chain] = fingers
    # 3. Wrist convention: towards the fingers along wrist -> middle1, plus a sideways offset.
    axis = out[:, FINGERS["middle"][0][0]] - out[:, 0]
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    lo, hi = cfg.wrist_shift_mm
    shift = (lo + (hi - lo) * rand(b)) / 1000.0
    lateral = randn(b, 3) * cfg.wrist_lateral_mm / 1000.0
    lateral = lateral - (lateral * axis).sum(-1, keepdim=True) * axis
    out[:, 0] = out[:, 0] + shift[:, None] * axis + lateral
    # 4. Joint noise: isotropic, plus depth along a random camera axis.
    lo, hi = cfg.joint_sd_mm
    jsd = (lo + (hi - lo) * rand(b)) / 1000.0
    out = out + randn(b, 21, 3) * jsd[:, None, None]
    cam = randn(b, 3)
    cam = cam / cam.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    lo, hi = cfg.depth_sd_mm
    dsd = (lo + (hi - lo) * rand(b)) / 1000.0
    out = out + (randn(b, 21) * dsd[:, None])[..., None] * cam[:, None]
    clean = (rand(b) < cfg.clean_prob)[:, None, None]
    return torch.where(clean, joints, out)


# Weights of the target fit (clean joints onto the detector's): the detector's wrist is a convention apart.
TARGET_WEIGHTS = tuple([0.0] + [1.0] * 20)


def corpus_fingerprint(captured: np.ndarray | None = None, bias: np.ndarray | None = None) -> str:
    """A short hash of what defines the poses (taxonomy, captured key poses, bounds, mixes, noise and the
    detector bias), printed by training."""
    import hashlib

    h = hashlib.sha256()
    h.update(taxonomy_array().tobytes())
    if captured is not None:
        h.update(np.ascontiguousarray(captured, np.float64).tobytes())
    if bias is not None:
        h.update(b"bias" + np.ascontiguousarray(bias, np.float64).tobytes())
    h.update(np.concatenate([b.ravel() for b in angle_bounds()]).tobytes())
    h.update(repr((PoseMix(), NoiseConfig(), SYNERGY, TARGET_WEIGHTS)).encode())
    return h.hexdigest()[:12]


__all__ = ["PARAMS", "TAXONOMY", "THUMB_TWIST_MAX", "Corpus", "NoiseConfig", "PoseMix", "angle_bounds",
           "angles_to_rotmats", "corpus_fingerprint", "detector_noise", "finger_frames", "make_corpus",
           "sample_angles", "taxonomy_array"]
