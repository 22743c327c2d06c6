"""Synthetic contact scenes with known truth: the hand model grasping a mesh, two hands touching.

A grasp is built the way grasp planners close a hand (GraspIt-style), independently of the
refinement's optimiser: the open hand is turned so its palm faces the object across its middle
extent and its fingers run across its smallest extent, slid in until the palm is 1 mm from the
surface, then every finger curls (its three joints together) until it first comes within
``touch_mm`` of the surface (bisection on the curl). The grasp is carried along a smooth rigid
motion of the object for T frames (the truth); the "capture" is the truth perturbed into the
object (fingers flexed further, the hand pushed in) plus per-frame jitter (seeded).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..hand.mano import ManoLayer
from ..hand.model import FINGERS
from ..rot import aa_to_rotmat
from ..solve import limits
from .mesh import TriMesh
from .refine import palm_normal, region_vertices, REGIONS
from .sdf import signed_distance

FINGER_CURL_DEG = np.array([85.0, 100.0, 80.0])  # MCP, PIP, DIP flexion at curl 1
THUMB_CURL_DEG = np.array([35.0, 60.0, 70.0])  # CMC, MCP, IP flexion at curl 1
THUMB_CMC_ABD_DEG = 40.0  # the thumb swings across the palm as it curls


@dataclasses.dataclass(frozen=True)
class GraspScene:
    """A hand holding a moving object over T frames.

    truth_rot (T, 16, 3, 3), truth_transl (T, 3): the hand's true pose (camera frame, metres);
    capture_rot, capture_transl: the perturbed, jittered "capture" of it; transforms (T, 4, 4)
    mesh-to-camera; betas (1, NB); touching (5,) bool fingertips (distal phalanges) within
    ``touch_mm`` of the surface in the grasp; curl (5,) each finger's curl in [0, 1].
    """

    mesh: TriMesh
    betas: torch.Tensor
    truth_rot: torch.Tensor
    truth_transl: torch.Tensor
    capture_rot: torch.Tensor
    capture_transl: torch.Tensor
    transforms: np.ndarray
    touching: np.ndarray
    curl: np.ndarray


def _hand_frame(layer: ManoLayer, betas: torch.Tensor) -> np.ndarray:
    """Rows: finger direction, palm normal, their cross (3, 3) of the rest hand."""
    j = layer.rest_joints(betas)[0].detach().cpu().numpy().astype(np.float64)
    n = palm_normal(layer)
    f = j[FINGERS["middle"][0][0]] - j[0]
    f -= (f @ n) * n
    f /= np.linalg.norm(f)
    return np.stack([f, n, np.cross(f, n)])


def curl_angles(layer: ManoLayer, curl: np.ndarray, extra_deg: np.ndarray | float = 0.0,
                distal_deg: np.ndarray | float = 0.0) -> torch.Tensor:
    """Finger angles (1, 15, 3) radians for per-finger curls (5,) in [0, 1] (REGIONS order), plus
    ``extra_deg`` (5,) flexion added to every joint of each finger and ``distal_deg`` (5,) to its
    second and third joints only."""
    ang = torch.zeros(1, 15, 3, dtype=torch.float64)
    extra = np.broadcast_to(np.asarray(extra_deg, np.float64), (5,))
    distal = np.broadcast_to(np.asarray(distal_deg, np.float64), (5,))
    for f, name in enumerate(REGIONS[:5]):
        joints = FINGERS[name][0]
        table = THUMB_CURL_DEG if name == "thumb" else FINGER_CURL_DEG
        for k, j in enumerate(joints):
            ang[0, j - 1, 0] = math.radians(curl[f] * table[k] + extra[f] + (distal[f] if k else 0.0))
        if name == "thumb":
            ang[0, joints[0] - 1, 1] = math.radians(curl[f] * THUMB_CMC_ABD_DEG)
    return ang


def _pose(layer, betas, orient, ang, transl):
    fingers = limits.angles_to_rotmats(layer, ang.to(betas.dtype), betas)
    rot = torch.cat([orient.to(betas.dtype)[None, None], fingers], 1)
    return rot, layer(betas, None, None, transl[None].to(betas.dtype), with_vertices=True, rotmats=rot)


def build_grasp(layer: ManoLayer, mesh: TriMesh, touch_mm: float = 0.5) -> tuple:
    """A static grasp of ``mesh`` (its own frame): (rotmats (16, 3, 3), transl (3,), curl (5,),
    touching (5,) bool, distal (5,) degrees), float64. Tries the approaches of `grasp_from` (palm on
    either side of the middle or the largest extent with the fingers either way across the smallest, then
    on the smallest with the fingers across the middle) and keeps
    the one with the most fingertips touching (the first with four or more)."""
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    order = np.argsort(hi - lo)  # smallest, middle, largest
    best = None
    for f, a in ((order[0], order[1]), (order[0], order[2]), (order[1], order[0])):
        for a_sign in (1.0, -1.0):
            for f_sign in (1.0, -1.0):
                g = grasp_from(layer, mesh, f_sign * np.eye(3)[f], a_sign * np.eye(3)[a], touch_mm)
                if best is None or g[3].sum() > best[3].sum():
                    best = g
                if best[3].sum() >= 4:
                    return best
    return best


def grasp_from(layer: ManoLayer, mesh: TriMesh, f_axis: np.ndarray, a_axis: np.ndarray, touch_mm: float = 0.5) -> tuple:
    """The grasp with the palm on the ``a_axis`` side of the object facing it and the fingers along
    ``f_axis`` (unit, perpendicular): as `build_grasp` returns."""
    betas = torch.zeros(1, layer.n_betas, dtype=torch.float64)
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    centre, ext = (lo + hi) / 2, hi - lo
    ext_f = float(np.abs(f_axis) @ ext)
    hand = _hand_frame(layer, betas)  # rows f, n, s in the model frame
    target = np.stack([f_axis, -a_axis, np.cross(f_axis, -a_axis)])  # f -> F, palm normal -> -A
    orient = torch.as_tensor(target.T @ hand, dtype=torch.float64)  # R @ hand_row = target_row
    regions = region_vertices(layer)
    zero = torch.zeros(1, 15, 3, dtype=torch.float64)

    def place(t: float):
        # the palm centre on the line centre - F * ext_F / 4 + A * t
        _, out = _pose(layer, betas, orient, zero, torch.zeros(3, dtype=torch.float64))
        palm = out.vertices[0, regions[5]].mean(0).numpy()
        want = centre - f_axis * ext_f / 4 + a_axis * t
        return torch.as_tensor(want - palm)

    def min_dist(transl, ang, ids=None):
        _, out = _pose(layer, betas, orient, ang, transl)
        v = out.vertices[0].numpy()
        v = v if ids is None else v[ids]
        return float(signed_distance(mesh, v)[0].min())

    # slide in along -A until the open hand is 1 mm from the surface
    far, near = float(ext.max()) * 2, 0.0
    for _ in range(40):
        mid = (far + near) / 2
        if min_dist(place(mid), zero) > 0.001:
            far = mid
        else:
            near = mid
    transl = place(far)
    # curl each finger until it first touches
    weights = layer.weights.detach().cpu().numpy().argmax(1)
    curl = np.zeros(5)
    touching = np.zeros(5, bool)
    for f, name in enumerate(REGIONS[:5]):
        ids = np.nonzero(np.isin(weights, FINGERS[name][0]))[0]
        steps = np.linspace(0, 1, 51)
        hit = None
        for s in steps:
            c = curl.copy()
            c[f] = s
            if min_dist(transl, curl_angles(layer, c), ids) <= touch_mm * 1e-3:
                hit = s
                break
        if hit is None:
            curl[f] = 1.0
            continue
        lo_s, hi_s = max(hit - steps[1], 0.0), hit
        for _ in range(20):
            m = (lo_s + hi_s) / 2
            c = curl.copy()
            c[f] = m
            if min_dist(transl, curl_angles(layer, c), ids) <= touch_mm * 1e-3:
                hi_s = m
            else:
                lo_s = m
        curl[f] = hi_s
    # a finger stopped by its proximal phalanx keeps curling its distal joints until the tip touches too,
    # as long as no phalanx of it goes in deeper than touch_mm
    distal = np.zeros(5)
    for f, name in enumerate(REGIONS[:5]):
        ids = np.nonzero(np.isin(weights, FINGERS[name][0]))[0]
        tip = regions[f]

        def tip_gap(extra):
            dd = distal.copy()
            dd[f] = extra
            _, out = _pose(layer, betas, orient, curl_angles(layer, curl, 0.0, dd), transl)
            v = out.vertices[0].numpy()
            d_f = signed_distance(mesh, v[ids])[0]
            return float(signed_distance(mesh, v[tip])[0].min()), float(d_f.min())

        if curl[f] >= 1.0 or tip_gap(0.0)[0] <= touch_mm * 1e-3:
            continue
        for extra in np.arange(2.0, 62.0, 2.0):
            gap, deepest = tip_gap(extra)
            if deepest < -touch_mm * 1e-3:
                break
            if gap <= touch_mm * 1e-3:
                distal[f] = extra
                break
    rot, out = _pose(layer, betas, orient, curl_angles(layer, curl, 0.0, distal), transl)
    d = signed_distance(mesh, out.vertices[0].numpy())[0]
    for f in range(5):
        touching[f] = np.abs(d[regions[f]]).min() <= 2e-3
    return rot[0], transl, curl, touching, distal


def object_motion(n_frames: int, distance_m: float = 0.5, seed: int = 0) -> np.ndarray:
    """Smooth rigid mesh-to-camera transforms (T, 4, 4): the object turns up to ~25 degrees about a
    slowly changing axis and drifts a few cm, ``distance_m`` in front of the camera."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / 30.0
    ph = rng.uniform(0, 2 * np.pi, 6)
    aa = np.stack([0.35 * np.sin(0.7 * t + ph[0]), 0.3 * np.sin(0.5 * t + ph[1]), 0.25 * np.sin(0.9 * t + ph[2])], 1)
    tr = np.stack([0.04 * np.sin(0.6 * t + ph[3]), 0.03 * np.sin(0.8 * t + ph[4]),
                   distance_m + 0.04 * np.sin(0.4 * t + ph[5])], 1)
    out = np.tile(np.eye(4), (n_frames, 1, 1))
    out[:, :3, :3] = aa_to_rotmat(torch.as_tensor(aa)).numpy()
    out[:, :3, 3] = tr
    return out


def carry(layer: ManoLayer, rot: torch.Tensor, transl: torch.Tensor, transforms: np.ndarray) -> tuple:
    """The hand of a static pose (rot (16, 3, 3), transl (3,), object frame) moved rigidly with the
    object: (rotmats (T, 16, 3, 3), transl (T, 3)) in the camera frame."""
    betas = torch.zeros(1, layer.n_betas, dtype=torch.float64)
    j0 = layer.rest_joints(betas)[0, 0]
    m = torch.as_tensor(transforms, dtype=torch.float64)
    r, t = m[:, :3, :3], m[:, :3, 3]
    rots = rot[None].repeat(len(m), 1, 1, 1).clone()
    rots[:, 0] = r @ rot[0]
    tr = (r @ (j0 + transl)[:, None])[..., 0] + t - j0
    return rots, tr


def grasp_scene(layer: ManoLayer, mesh: TriMesh, n_frames: int = 300, pen_mm: float | None = 4.0, push_mm: float = 4.0,
                flex_deg: float = 8.0, jitter_mm: float = 0.5, jitter_deg: float = 0.4, seed: int = 0) -> GraspScene:
    """A `GraspScene`: the grasp of ``mesh`` carried over ``n_frames``. The capture pushes the hand into
    the object along the palm normal by ``push_mm`` and flexes every touching finger ``flex_deg``
    further (with ``pen_mm``: both scaled by bisection so that the deepest vertex is ``pen_mm`` inside
    the object); then per-frame Gaussian jitter (translation ``jitter_mm``, finger and global angles
    ``jitter_deg``; the defaults give a jitter of ~2 mm/frame^2, like the pipeline's own output on
    the shared videos) with ``seed``."""
    rot, transl, curl, touching, distal = build_grasp(layer, mesh)
    transforms = object_motion(n_frames, seed=seed)
    betas = torch.zeros(1, layer.n_betas, dtype=torch.float64)
    truth_rot, truth_tr = carry(layer, rot, transl, transforms)
    n_obj = rot[0].numpy() @ palm_normal(layer)

    def perturbed(scale: float):
        extra = np.where(touching, flex_deg * scale, 0.0)
        fingers = limits.angles_to_rotmats(layer, curl_angles(layer, curl, extra, distal), betas)
        prot = torch.cat([rot[None, :1], fingers], 1)[0]
        ptr = transl + torch.as_tensor(n_obj * push_mm * scale * 1e-3)
        out = layer(betas, None, None, ptr[None], with_vertices=True, rotmats=prot[None])
        depth = -float(signed_distance(mesh, out.vertices[0].numpy())[0].min()) * 1000.0
        return prot, ptr, depth

    lo, hi = 0.0, 3.0 if pen_mm is not None else 1.0
    for _ in range(25 if pen_mm is not None else 0):
        mid = (lo + hi) / 2
        if perturbed(mid)[2] < pen_mm:
            lo = mid
        else:
            hi = mid
    prot, ptr, _ = perturbed(hi)
    cap_rot, cap_tr = carry(layer, prot, ptr, transforms)
    rng = np.random.default_rng(seed + 1)
    ang = limits.joint_angles(layer, cap_rot, betas)
    ang = ang + torch.as_tensor(np.radians(rng.normal(0, jitter_deg, ang.shape)))
    ang[..., 2] = limits.joint_angles(layer, cap_rot, betas)[..., 2]  # twist stays (a hinge's noise is flex/abd)
    cap_fingers = limits.angles_to_rotmats(layer, ang, betas)
    d_orient = aa_to_rotmat(torch.as_tensor(np.radians(rng.normal(0, jitter_deg, (n_frames, 3)))))
    cap_rot = torch.cat([(d_orient @ cap_rot[:, 0])[:, None], cap_fingers], 1)
    cap_tr = cap_tr + torch.as_tensor(rng.normal(0, jitter_mm * 1e-3, (n_frames, 3)))
    return GraspScene(mesh, betas, truth_rot, truth_tr, cap_rot, cap_tr, transforms, touching, curl)


def scene_track(layer: ManoLayer, scene: GraspScene):
    """The scene's capture as a `core.contact.refine.HandTrack` on ``layer`` (its dtype), every frame valid."""
    from .refine import HandTrack

    dt = layer.v_template.dtype
    n = scene.capture_rot.shape[0]
    return HandTrack(layer, scene.betas.to(dt), scene.capture_rot.to(dt), scene.capture_transl.to(dt),
                     np.ones(n, bool))


def two_hand_scene(right: ManoLayer, left: ManoLayer, n_frames: int = 300, push_mm: float = 6.0,
                   jitter_mm: float = 0.5, seed: int = 0) -> dict:
    """Two open hands palm to palm (the left mirrored across the right's palm plane), touching in the
    truth (their closest vertices within 0.5 mm, found by bisection), carried by a smooth motion; the
    capture pushes the left hand ``push_mm`` through the right along the palm normal, plus jitter.
    Returns dict(truth / capture: (rot, transl) per hand (T, 16, 3, 3), (T, 3); betas (1, NB))."""
    from .hands import hand_in_hand

    dt = torch.float64
    betas = torch.zeros(1, right.n_betas, dtype=dt)
    n = palm_normal(right)
    eye = torch.eye(3, dtype=dt).repeat(1, 16, 1, 1)
    out_r = right(betas, None, None, None, with_vertices=True, rotmats=eye)
    # the left model mirrors the right one through x = 0: mirror the posed left across the right's palm plane
    mirror_x = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=dt))
    # reflection across the plane through the palm centre with normal n, composed with the model mirror
    refl = torch.as_tensor(np.eye(3) - 2 * np.outer(n, n), dtype=dt)
    r_left = refl @ mirror_x  # a proper rotation: left vertices (= mirror of right) -> mirror of right across the palm
    jl = left.rest_joints(betas)[0, 0]
    faces = right.faces.numpy()
    v_r = out_r.vertices[0].numpy()

    def left_at(gap):
        rot = eye.clone()
        rot[0, 0] = r_left
        # the mirror plane: normal n, offset front + gap / 2 (front = the right hand's frontmost vertex along n)
        s = float((v_r @ n).max()) + gap / 2
        tr = torch.as_tensor(2 * s * n, dtype=dt) + r_left @ jl - jl
        out = left(betas, None, None, tr[None], with_vertices=True, rotmats=rot)
        return rot[0], tr, out.vertices[0].numpy()

    lo, hi = -0.05, 0.05
    for _ in range(40):  # smallest gap with no penetration either way
        mid = (lo + hi) / 2
        depth = hand_in_hand(v_r[None], left_at(mid)[2][None], faces, faces_b=left.faces.numpy())[0][0]
        if depth > 0.0:
            lo = mid
        else:
            hi = mid
    rot_l, tr_l, _ = left_at(hi)
    rot_r, tr_r = eye[0], torch.zeros(3, dtype=dt)
    transforms = object_motion(n_frames, distance_m=0.45, seed=seed)
    truth = {"right": carry(right, rot_r, tr_r, transforms), "left": carry(left, rot_l, tr_l, transforms)}
    push = torch.as_tensor(-n * push_mm * 1e-3, dtype=dt)
    rng = np.random.default_rng(seed + 7)
    cap_l = carry(left, rot_l, tr_l + push, transforms)
    cap = {"right": (truth["right"][0], truth["right"][1] + torch.as_tensor(rng.normal(0, jitter_mm * 1e-3, (n_frames, 3)))),
           "left": (cap_l[0], cap_l[1] + torch.as_tensor(rng.normal(0, jitter_mm * 1e-3, (n_frames, 3))))}
    return {"truth": truth, "capture": cap, "betas": betas}
