"""What a chunk of synthetic images shows: hands, camera, skin, light, background, occluders (no bpy).

`sample_chunk` draws everything from one seed and returns two dicts of arrays: the *scene* handed to
``blender_addon/synth_render.py`` (meshes in the OpenCV camera frame, materials, lights), and the *labels*.

Hands. The open hand model (right), posed by `core.net.corpus.sample_angles` (taxonomy, captured key
poses, blends with synergies, uniform poses inside `core.solve.limits` ranges), betas ~ N(0, betas_sd^2);
a left hand is the mirror image (camera x -> -x) of a right one, as the corpus does. A forearm
(`core.demo.forearm_mesh`) bent at the wrist. Views:
* third person: any orientation (palm or back, full in-plane turn, tilt), the palm centre anywhere in
  a virtual 1280 x 720 camera of horizontal field of view ``fov_deg`` at ``third_dist`` metres;
* egocentric: the back of the hand first (sometimes the palm), fingers pointing up and away from the
  camera, the hand low in the frame on its own side, ``ego_dist`` metres.
A second hand (the other side) sometimes beside the first.
The rendered image is a square window of that virtual camera around the first hand (side = the upright
box of its tracker ROI (`labels.landmark_roi`) x ``window_scale``, the ROI inside), so K varies (focal length
and principal point) exactly as a crop of a real camera would, and the ROI crop of an image has about the
image's resolution (the landmark model's input is 224 x 224).

Everything else: skin in the six Fitzpatrick types (base colour jittered, subsurface, roughness, mottling
noise, wrinkle bump, lighter palms, nails); a sun, an area light and the environment's colour (colour
temperature 2000-10000 K); a background plane with a procedural texture; occluders (procedural shapes or
the YCB meshes found in HANDCAP_DATA/objects, read at generation time, never copied) between the camera
and the hand.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

FULL_W, FULL_H = 1280, 720  # the virtual camera the window is cut from
# Fitzpatrick I..VI skin base colours (sRGB 0..255), light to dark.
FITZPATRICK_SRGB = np.array([[241, 200, 176], [226, 176, 143], [199, 147, 110], [160, 111, 78], [114, 75, 52],
                             [70, 45, 33]], np.float64)
# Colour temperature (K) -> sRGB of a blackbody (normalised), interpolated.
_KELVIN = np.array([2000, 3000, 4000, 5000, 6500, 8000, 10000], np.float64)
_KELVIN_RGB = np.array([[1.00, 0.54, 0.16], [1.00, 0.71, 0.42], [1.00, 0.82, 0.64], [1.00, 0.89, 0.81],
                        [1.00, 0.98, 1.00], [0.89, 0.92, 1.00], [0.79, 0.85, 1.00]])
BACKGROUND_KINDS = ("noise", "voronoi", "wave", "checker", "magic", "brick", "gradient", "plain")
SHAPE_KINDS = ("sphere", "cube", "cylinder", "torus", "cone")
N_OCCLUDERS = 2
# Mask classes written by the renderer (`blender_addon/synth_render.py`).
MASK_BACKGROUND, MASK_RIGHT_HAND, MASK_LEFT_HAND, MASK_RIGHT_ARM, MASK_LEFT_ARM, MASK_OCCLUDER = range(6)


@dataclasses.dataclass(frozen=True)
class SynthSettings:
    """How a chunk is drawn and rendered (shipped defaults; every image's draws are recorded in its labels).

    size: image side (pixels); samples: Cycles samples per pixel (no denoising); fmt: "jpg" or "png".
    Probabilities and ranges: see the module docstring; degrees, metres, pixels (8-bit levels for noise).
    """

    size: int = 224
    samples: int = 8
    fmt: str = "jpg"
    ego_prob: float = 0.45
    left_prob: float = 0.5
    two_hand_prob: float = 0.25
    occluder_prob: float = 0.4
    ycb_share: float = 0.5
    background_prob: float = 0.92
    area_light_prob: float = 0.6
    fov_deg: tuple = (40.0, 95.0)
    third_dist: tuple = (0.3, 1.2)
    ego_dist: tuple = (0.25, 0.6)
    window_scale: tuple = (1.0, 1.3)
    betas_sd: float = 1.0
    blur_prob: float = 0.25
    blur_px: tuple = (2.0, 9.0)
    noise_prob: float = 0.6
    noise_sd: tuple = (1.0, 8.0)
    jpeg_quality: tuple = (55, 95)

    def replace(self, **kw) -> "SynthSettings":
        return dataclasses.replace(self, **kw)


def _srgb_to_linear(c):
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def kelvin_rgb(t) -> np.ndarray:
    """Linear RGB (..., 3) of colour temperatures t (...) kelvin (2000-10000)."""
    t = np.asarray(t, np.float64)
    rgb = np.stack([np.interp(t, _KELVIN, _KELVIN_RGB[:, c]) for c in range(3)], -1)
    return _srgb_to_linear(rgb)


def _hsv_to_rgb(h, s, v):
    h, s, v = np.broadcast_arrays(*(np.asarray(x, np.float64) for x in (h, s, v)))
    i = np.floor(h * 6) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros(h.shape + (3,))
    for k, (r, g, b) in enumerate(table):
        m = i == k
        out[m] = np.stack([r, g, b], -1)[m]
    return out


def _rot(axis, angle) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about unit axis (..., 3) by angle (...) radians (Rodrigues)."""
    axis = np.asarray(axis, np.float64)
    angle = np.asarray(angle, np.float64)
    axis, angle = np.broadcast_arrays(axis, angle[..., None])
    angle = angle[..., 0]
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    c, s = np.cos(angle), np.sin(angle)
    C = 1 - c
    return np.stack([np.stack([c + x * x * C, x * y * C - z * s, x * z * C + y * s], -1),
                     np.stack([y * x * C + z * s, c + y * y * C, y * z * C - x * s], -1),
                     np.stack([z * x * C - y * s, z * y * C + x * s, c + z * z * C], -1)], -2)


def _random_rotations(rng, n) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
                     np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
                     np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)


def _matrix(rot: np.ndarray, pos: np.ndarray, scale=1.0) -> np.ndarray:
    m = np.zeros(rot.shape[:-2] + (4, 4))
    m[..., :3, :3] = rot * np.asarray(scale, np.float64)[..., None, None]
    m[..., :3, 3] = pos
    m[..., 3, 3] = 1.0
    return m


# ---------------------------------------------------------------------------------------------------
# Meshes: procedural occluder shapes.

def _grid_mesh(rows, cols, point, wrap_cols=True, cap=False):
    """Vertices of a (rows x cols) parametric grid (point(u, v) for u, v in [0, 1]) and its quads as triangles."""
    u = np.linspace(0, 1, rows)
    v = np.linspace(0, 1, cols, endpoint=not wrap_cols)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    verts = point(uu, vv).reshape(-1, 3)
    faces = []
    nc = cols
    for r in range(rows - 1):
        for c in range(cols if wrap_cols else cols - 1):
            a, b = r * nc + c, r * nc + (c + 1) % nc
            faces += [(a, a + nc, b), (b, a + nc, b + nc)]
    return verts, np.asarray(faces, np.int64)


def shape_mesh(kind: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """A procedural occluder (vertices (V, 3) float32 within the unit ball, faces (F, 3) outward, smooth?)."""
    tau = 2 * np.pi
    if kind == "sphere":
        v, f = _grid_mesh(12, 20, lambda u, w: np.stack([np.sin(np.pi * u) * np.cos(tau * w),
                                                          np.sin(np.pi * u) * np.sin(tau * w),
                                                          np.cos(np.pi * u)], -1))
        smooth = True
    elif kind == "torus":
        nu, nw = 16, 24
        i, k = np.meshgrid(np.arange(nu), np.arange(nw), indexing="ij")
        a, b = tau * i / nu, tau * k / nw
        v = np.stack([(0.7 + 0.3 * np.cos(a)) * np.cos(b), (0.7 + 0.3 * np.cos(a)) * np.sin(b), 0.3 * np.sin(a)],
                     -1).reshape(-1, 3)
        p, q = i * nw + k, i * nw + (k + 1) % nw
        p2, q2 = ((i + 1) % nu) * nw + k, ((i + 1) % nu) * nw + (k + 1) % nw
        f = np.concatenate([np.stack([p, p2, q], -1).reshape(-1, 3), np.stack([q, p2, q2], -1).reshape(-1, 3)])
        smooth = True
    elif kind in ("cylinder", "cone"):
        top = 0.0 if kind == "cone" else 1.0
        v, f = _grid_mesh(2, 24, lambda u, w: np.stack([(1 - u * (1 - top)) * np.cos(tau * w) * 0.6,
                                                         (1 - u * (1 - top)) * np.sin(tau * w) * 0.6,
                                                         u * 2 - 1], -1))
        n = len(v)
        v = np.concatenate([v, [[0, 0, -1], [0, 0, 1]]])
        bottom = [(n, (c + 1) % 24, c) for c in range(24)]
        topf = [(n + 1, 24 + c, 24 + (c + 1) % 24) for c in range(24)]
        f = np.concatenate([f, bottom, topf])
        smooth = False
    elif kind == "cube":
        corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float64) * 0.6
        quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        v = np.concatenate([corners[list(q)] for q in quads])
        f = np.concatenate([[(4 * i, 4 * i + 1, 4 * i + 2), (4 * i, 4 * i + 2, 4 * i + 3)] for i in range(6)])
        smooth = False
    else:
        raise ValueError(f"unknown shape {kind!r}")
    v = np.asarray(v, np.float64)
    f = np.asarray(f, np.int64)
    # Outward: flip when the mean of (face normal . centroid direction) is negative.
    tri = v[f]
    nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if (nrm * tri.mean(1)).sum() < 0:
        f = f[:, ::-1].copy()
    return v.astype(np.float32), f, smooth


def ycb_meshes(data_dir: Path | None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, vertices centred (V, 3) metres, faces) of the YCB meshes (CC BY 4.0) in data_dir/objects, if any."""
    if data_dir is None:
        return []
    from ...contact.mesh import load_mesh

    out = []
    for p in sorted(Path(data_dir, "objects").glob("ycb_*.obj")):
        m = load_mesh(p)
        v = np.asarray(m.vertices, np.float64)
        out.append((p.name, (v - (v.min(0) + v.max(0)) / 2).astype(np.float32), np.asarray(m.faces, np.int64)))
    return out


# ---------------------------------------------------------------------------------------------------
# Hands.

class _Hands:
    """The right model, its layer, and the per-vertex nail / palm weights (rest pose)."""

    def __init__(self):
        from ...hand.gen import ensure_open_model
        from ...hand.load import load_model
        from ...hand.mano import ManoLayer

        ensure_open_model()
        self.model = load_model("right")
        self.layer = ManoLayer(self.model)
        self.nail, self.palm = _surface_weights(self.model, self.layer)


def _vertex_normals(v, f):
    n = np.zeros_like(v)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _surface_weights(model, layer) -> tuple[np.ndarray, np.ndarray]:
    """Nail (V,) and palm (V,) weights 0..1 on the rest mesh: nails on the back of each last phalanx's
    distal part; palm = how much a vertex faces out of the palm (volar side)."""
    import torch

    from ...hand.model import FINGERS
    from ...solve.ik import FINGER_ORDER, hinge_axes, volar_normal

    b0 = torch.zeros(1, layer.n_betas)
    j = layer.rest_joints(b0)
    tips = layer.rest_tips(b0)
    h = hinge_axes(j, tips, "right")[0].numpy().astype(np.float64)
    j, tips = j[0].numpy().astype(np.float64), tips[0].numpy().astype(np.float64)
    v = model.v_template.astype(np.float64)
    nrm = _vertex_normals(v, model.faces)
    nail = np.zeros(len(v))
    for f, name in enumerate(FINGER_ORDER):
        (_, _, j3), _ = FINGERS[name]
        a, b = j[j3], tips[f]
        bone = b - a
        length = np.linalg.norm(bone)
        axis = bone / length
        dorsal = np.cross(axis, h[f])
        dorsal /= np.linalg.norm(dorsal)
        s = (v - a) @ axis / length
        radial = (v - a) - np.outer((v - a) @ axis, axis)
        up = nrm @ dorsal
        side = radial @ dorsal / np.maximum(np.linalg.norm(radial, axis=1), 1e-9)
        w = np.clip((s - 0.45) / 0.1, 0, 1) * np.clip((1.02 - s) / 0.05, 0, 1) * np.clip((up - 0.45) / 0.2, 0, 1)
        w *= side > 0.3
        nail = np.maximum(nail, w)
    volar = volar_normal(torch.as_tensor(j[None], dtype=torch.float32), "right")[0].numpy().astype(np.float64)
    palm = np.clip((nrm @ volar - 0.2) / 0.6, 0, 1)
    return nail.astype(np.float32), palm.astype(np.float32)


def _palm_to_camera(layer) -> np.ndarray:
    from ... import demo

    return demo.palm_to_camera(layer).double().numpy()


def _pose_hands(hands: _Hands, m: int, gen, betas_sd: float):
    """m right hands in the model frame: (vertices (m, V, 3), joints21 (m, 21, 3), angles (m, 5, 5) deg,
    betas (m, NB), local rotmats (m, 16, 3, 3)), float64 numpy."""
    import torch

    from .. import corpus
    from ..captured import CAPTURED_POSES, load_captured

    captured = load_captured(CAPTURED_POSES)[0] if CAPTURED_POSES.is_file() else None
    ang = corpus.sample_angles(m, gen, captured=captured)
    betas = torch.randn(m, hands.layer.n_betas, generator=gen) * betas_sd
    rot = corpus.angles_to_rotmats(hands.layer, torch.deg2rad(ang).float(), betas)
    with torch.no_grad():
        out = hands.layer(betas, None, None, None, rotmats=rot)
    return (out.vertices.double().numpy(), out.joints21.double().numpy(), ang.numpy(), betas.double().numpy(),
            rot.double().numpy())


def _orientations(rng, n, ego, palm_cam) -> np.ndarray:
    """Global orientations (n, 3, 3) of right hands in the camera frame for the view kinds ``ego`` (n,) bool."""
    ex, ey, ez = np.eye(3)
    # third person: any turn about the vertical, tilt, and a full in-plane turn
    third = (_rot(ez, rng.uniform(-np.pi, np.pi, n)) @ _rot(ey, rng.uniform(-np.pi, np.pi, n))
             @ _rot(ex, rng.uniform(-1.1, 1.1, n)) @ palm_cam)
    # egocentric: back first (fingers up), pro/supination about the fingers, fingers tipped away, small roll
    sup = np.clip(rng.normal(0, 0.6, n), -1.7, 1.7) + np.pi * (rng.random(n) < 0.15)
    pitch = rng.uniform(0.15, 1.3, n)
    roll = rng.normal(-0.3, 0.4, n)  # right hand: fingers lean towards the image centre
    egov = _rot(ez, roll) @ _rot(ex, -pitch) @ _rot(ey, sup) @ _rot(ey, np.pi * np.ones(n)) @ palm_cam
    return np.where(ego[:, None, None], egov, third)


def _forearm(joints_cam: np.ndarray, model, rng, ego: bool) -> tuple[np.ndarray, np.ndarray]:
    """A forearm (vertices (Va, 3), faces) for one posed right-hand-shaped joint set (camera frame), bent at the wrist."""
    from ... import demo

    length = rng.uniform(0.32, 0.42) if ego else rng.uniform(0.24, 0.36)
    av, af = demo.forearm_mesh(joints_cam[None], model.v_template, model.rest_joints(), length=length)
    av = av[0].astype(np.float64)
    w, mid, idx, pinky = joints_cam[0], joints_cam[4], joints_cam[1], joints_cam[7]
    u = (mid - w) / np.linalg.norm(mid - w)
    a = idx - pinky
    a -= (a @ u) * u
    a /= np.linalg.norm(a)
    b = np.cross(u, a)
    bend = _rot(a, rng.uniform(-0.6, 0.6)) @ _rot(b, rng.uniform(-0.3, 0.3))
    return (w + (av - w) @ bend.T).astype(np.float32), af


def _place(rel: np.ndarray, centre_px, depth, f):
    """Translation putting the relative points' origin at pixel centre_px (full camera) and depth."""
    x = (centre_px[0] - (FULL_W - 1) / 2) / f * depth
    y = (centre_px[1] - (FULL_H - 1) / 2) / f * depth
    return np.array([x, y, depth])


def sample_chunk(seed: int, n: int, settings: SynthSettings = SynthSettings(), ycb: list | None = None,
                 hands: _Hands | None = None) -> tuple[dict, dict]:
    """(scene arrays for the renderer, labels) of ``n`` images drawn from ``seed`` (same seed, same arrays).

    Labels (slot 0 = the hand the image is framed on, slot 1 = a second hand or absent):
        K (n, 3, 3); image_size (2,); present (n, 2) bool; side (n, 2) int8 (0 right, 1 left, -1 absent);
        joints3d (n, 2, 21, 3) metres, camera frame, MANO-21; joints3d_mp (n, 2, 21, 3) MediaPipe order;
        joints2d / joints2d_mp (n, 2, 21, 2) pixels (OpenCV pixel centres); roi (n, 2, 4) the tracker's
        crop (cx, cy, size, angle; `labels.landmark_roi`, grown to hold every joint: roi_grown);
        angles (n, 2, 5, 5) corpus angles deg; betas (n, 2, NB); rotmats (n, 2, 16, 3, 3) of the right
        model (global orient in the camera frame; a left hand = that right hand mirrored in camera x);
        mirrored (n, 2) bool; ego (n,) bool; fitzpatrick (n, 2) int 1..6; occluders (n,) int.
    """
    import torch

    from ...hand.model import MP_FROM_MANO21
    from . import labels as L

    MP_FROM_MANO21 = np.asarray(MP_FROM_MANO21)

    s = settings
    ss = np.random.SeedSequence([int(seed), 0x5E7])
    rng = np.random.default_rng(ss)
    gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    hands = hands or _Hands()
    model = hands.model
    nv = model.n_verts

    ego = rng.random(n) < s.ego_prob
    two = rng.random(n) < s.two_hand_prob
    left0 = rng.random(n) < s.left_prob
    side = np.stack([left0.astype(np.int8), np.where(two, 1 - left0, -1).astype(np.int8)], 1)
    present = side >= 0
    verts_m, joints_m, ang, betas, rotl = (a.reshape((n, 2) + a.shape[1:]) for a in _pose_hands(hands, 2 * n, gen, s.betas_sd))
    palm_cam = _palm_to_camera(hands.layer)
    glob = np.stack([_orientations(rng, n, ego, palm_cam), _orientations(rng, n, ego, palm_cam)], 1)

    fov = np.radians(rng.uniform(*s.fov_deg, n))
    f_full = (FULL_W / 2) / np.tan(fov / 2)
    depth = np.where(ego, rng.uniform(*s.ego_dist, n), rng.uniform(*s.third_dist, n))
    # palm centre pixel in the full camera (a right hand's; a left hand's is mirrored below)
    u = np.where(ego, rng.uniform(0.5, 0.85, n), rng.uniform(0.12, 0.88, n)) * FULL_W
    v = np.where(ego, rng.uniform(0.45, 0.9, n), rng.uniform(0.12, 0.88, n)) * FULL_H

    u = np.where(left0, FULL_W - 1 - u, u)  # a left hand on its own side (ego); third person is symmetric
    j_cam = np.zeros((n, 2, 21, 3))
    v_cam = np.zeros((n, 2, nv, 3))
    rot_cam = rotl.copy()
    transl = np.zeros((n, 2, 3))
    arm_f = None
    mirror = np.array([-1.0, 1.0, 1.0])
    arms = []
    for i in range(n):
        arms_i = []
        for k in range(2):
            c = joints_m[i, k, [0, 1, 4, 7, 10]].mean(0)
            rel_j = (joints_m[i, k] - c) @ glob[i, k].T
            rel_v = (verts_m[i, k] - c) @ glob[i, k].T
            if side[i, k] == 1:  # a left hand: the mirror image of the right one
                rel_j, rel_v = rel_j * mirror, rel_v * mirror
            if k == 0:
                pos = _place(rel_j, (u[i], v[i]), depth[i], f_full[i])
            else:  # beside the first hand
                off = np.array([rng.uniform(0.08, 0.28) * rng.choice([-1.0, 1.0]), rng.normal(0, 0.06),
                                rng.normal(0, 0.06)])
                pos = j_cam[i, 0, [0, 1, 4, 7, 10]].mean(0) + off
            j_cam[i, k] = rel_j + pos
            v_cam[i, k] = rel_v + pos
            rot_cam[i, k, 0] = glob[i, k] @ rotl[i, k, 0]
            # MANO: root R (x - J0) + J0 + t reproduces glob (x - c) + pos (pos mirrored back for a left hand)
            pre = pos * mirror if side[i, k] == 1 else pos
            j0 = joints_m[i, k, 0]
            transl[i, k] = pre - glob[i, k] @ c + glob[i, k] @ j0 - j0
            av, arm_f = _forearm(j_cam[i, k], model, rng, bool(ego[i]))
            arms_i.append(av)
        arms.append(np.stack(arms_i))
    arm_v = np.stack(arms)

    # Window: a square of the full camera around the first hand's joints.
    K_full = np.zeros((n, 3, 3))
    K_full[:, 0, 0] = K_full[:, 1, 1] = f_full
    K_full[:, 0, 2], K_full[:, 1, 2], K_full[:, 2, 2] = (FULL_W - 1) / 2, (FULL_H - 1) / 2, 1.0
    p0 = L.project(j_cam[:, 0], K_full)
    roi0 = L.cover_joints(L.landmark_roi(p0[:, MP_FROM_MANO21]), p0)[0]
    extent = roi0[:, 2] * (np.abs(np.cos(roi0[:, 3])) + np.abs(np.sin(roi0[:, 3])))  # the ROI's upright box
    side_px = extent * rng.uniform(*s.window_scale, n)
    centre = roi0[:, :2] + rng.uniform(-1, 1, (n, 2)) * ((side_px - extent) / 2)[:, None]
    x0 = centre - side_px[:, None] / 2  # window's top-left edge, full-camera pixel coordinates
    sc = s.size / side_px
    K = np.zeros((n, 3, 3))
    K[:, 0, 0] = K[:, 1, 1] = f_full * sc
    K[:, 0, 2] = ((FULL_W - 1) / 2 - x0[:, 0] + 0.5) * sc - 0.5
    K[:, 1, 2] = ((FULL_H - 1) / 2 - x0[:, 1] + 0.5) * sc - 0.5
    K[:, 2, 2] = 1.0

    j2d = L.project(j_cam, K[:, None])
    mp = MP_FROM_MANO21
    roi, grown = L.cover_joints(L.landmark_roi(j2d[..., mp, :]), j2d)

    # Skin per hand slot.
    fitz = rng.integers(0, 6, (n, 2))
    base = _srgb_to_linear(FITZPATRICK_SRGB[fitz] / 255.0)
    base = base * rng.uniform(0.85, 1.15, (n, 2, 1)) * rng.uniform(0.93, 1.07, (n, 2, 3))
    skin = {
        "skin_rgb": np.clip(base, 0, 1),
        "skin_sss": rng.uniform(0.05, 0.35, (n, 2)),
        "skin_sss_scale": rng.uniform(0.002, 0.008, (n, 2)),
        "skin_rough": rng.uniform(0.35, 0.7, (n, 2)),
        "skin_noise_scale": rng.uniform(100, 400, (n, 2)),
        "skin_noise_amount": rng.uniform(0.0, 0.2, (n, 2)),
        "skin_bump": rng.uniform(0.0, 0.12, (n, 2)),
        "skin_palm": rng.uniform(0.0, 0.35, (n, 2)) * (fitz >= 3),
        "nail_rgb": np.clip(base * rng.uniform(1.1, 1.5, (n, 2, 1)) + rng.uniform(0.03, 0.12, (n, 2, 1)), 0, 1),
    }
    # By side for the renderer: index 0 right object, 1 left object.
    slot_of_side = np.zeros((n, 2), np.int64)
    present_side = np.zeros((n, 2), bool)
    for i in range(n):
        for k in range(2):
            if present[i, k]:
                slot_of_side[i, side[i, k]] = k
                present_side[i, side[i, k]] = True
    take = lambda a: np.take_along_axis(a, slot_of_side.reshape((n, 2) + (1,) * (a.ndim - 2)), 1)  # noqa: E731

    # Lights.
    sun_dir = _unit(np.stack([rng.normal(0, 0.6, n), rng.uniform(0.2, 1.0, n), rng.uniform(0.2, 1.2, n)], -1))
    lights = {
        "world_rgb": _hsv_to_rgb(rng.random(n), rng.uniform(0, 0.35, n), 1.0),
        "world_strength": rng.uniform(0.15, 1.2, n),
        "sun_dir": sun_dir,  # direction the light travels, camera frame
        "sun_rgb": kelvin_rgb(rng.uniform(2500, 9000, n)),
        "sun_strength": rng.uniform(0.5, 4.0, n) * (rng.random(n) < 0.85),
        "sun_angle": rng.uniform(0.01, 0.5, n),
        "area_present": rng.random(n) < s.area_light_prob,
        "area_rgb": kelvin_rgb(rng.uniform(2000, 10000, n)),
        "area_size": rng.uniform(0.1, 1.0, n),
        "area_power": rng.uniform(5, 60, n) * depth ** 2 / 0.25,
        "exposure": rng.uniform(-0.6, 0.6, n),
        "agx": rng.random(n) < 0.5,
    }
    hand_c = j_cam[:, 0].mean(1)
    a_pos = hand_c + _unit(rng.normal(0, 1, (n, 3)) * np.array([1, 1, 0.3]) - np.array([0, 0, 1.0])) * \
        rng.uniform(0.4, 1.5, (n, 1))
    lights["area_matrix"] = _matrix(_look_at(a_pos, hand_c), a_pos)

    # Background plane behind the hand, covering the window's view at its depth.
    bg_depth = j_cam[:, 0, :, 2].max(1) + rng.uniform(0.1, 1.5, n)
    corners = np.array([[0, 0, 1], [s.size, 0, 1], [0, s.size, 1], [s.size, s.size, 1]], np.float64) - [0.5, 0.5, 0]
    rays = np.einsum("nij,kj->nki", np.linalg.inv(K), corners)
    pts = rays * (bg_depth[:, None, None] / rays[..., 2:3])
    bg_centre = pts.mean(1)
    half = np.abs(pts - bg_centre[:, None]).max(1).max(1)
    tilt = _rot(np.array([1.0, 0, 0]), rng.uniform(-0.5, 0.5, n)) @ _rot(np.array([0, 1.0, 0]), rng.uniform(-0.5, 0.5, n))
    bg = {
        "bg_present": rng.random(n) < s.background_prob,
        "bg_matrix": _matrix(tilt @ _rot(np.array([1.0, 0, 0]), np.pi * np.ones(n)), bg_centre, half * 3.0),
        "bg_kind": rng.integers(0, len(BACKGROUND_KINDS), n),
        "bg_rgb": _hsv_to_rgb(rng.random((n, 2)), rng.uniform(0, 0.8, (n, 2)), rng.uniform(0.05, 0.9, (n, 2))),
        "bg_scale": np.exp(rng.uniform(np.log(2), np.log(40), n)),
        "bg_detail": rng.uniform(0, 8, n),
        "bg_distort": rng.uniform(0, 2, n) * (rng.random(n) < 0.4),
        "bg_rough": rng.uniform(0.3, 1.0, n),
    }

    # Occluders: procedural shapes and YCB meshes between the camera and the hand.
    meshes = [shape_mesh(k) for k in SHAPE_KINDS]
    ycb = ycb or []
    meshes += [(mv, mf, True) for _, mv, mf in ycb]
    occ_kind = np.full((n, N_OCCLUDERS), -1, np.int64)
    occ_m = np.tile(np.eye(4), (n, N_OCCLUDERS, 1, 1))
    n_occ = np.where(rng.random(n) < s.occluder_prob, rng.integers(1, N_OCCLUDERS + 1, n), 0)
    rots = _random_rotations(rng, n * N_OCCLUDERS).reshape(n, N_OCCLUDERS, 3, 3)
    radius = [float(np.linalg.norm(mv, axis=1).max()) for mv, _, _ in meshes]
    for i in range(n):
        for o in range(n_occ[i]):
            use_ycb = bool(ycb) and rng.random() < s.ycb_share
            kind = len(SHAPE_KINDS) + int(rng.integers(len(ycb))) if use_ycb else int(rng.integers(len(SHAPE_KINDS)))
            for _ in range(8):  # partly in front of the hand: never hiding more than half its joints
                scale = rng.uniform(0.6, 1.0) if use_ycb else rng.uniform(0.015, 0.06)
                r = radius[kind] * scale
                target = j_cam[i, 0, rng.integers(21)] + _unit(rng.normal(0, 1, 3)) * r * rng.uniform(0.3, 1.0)
                pos = target * (1 - (r + rng.uniform(0.0, 0.1)) / np.linalg.norm(target))
                c2 = L.project(pos, K[i])
                hidden = np.linalg.norm(j2d[i, 0] - c2, axis=1) < r / pos[2] * K[i, 0, 0]
                if pos[2] > 0.1 and hidden.sum() <= 10:
                    occ_kind[i, o] = kind
                    occ_m[i, o] = _matrix(rots[i, o], pos, scale)
                    break
    n_occ = (occ_kind >= 0).sum(1)
    occ = {
        "occ_kind": occ_kind, "occ_matrix": occ_m,
        "occ_rgb": _hsv_to_rgb(rng.random((n, N_OCCLUDERS)), rng.uniform(0, 1, (n, N_OCCLUDERS)),
                               rng.uniform(0.05, 0.95, (n, N_OCCLUDERS))),
        "occ_rough": rng.uniform(0.1, 0.9, (n, N_OCCLUDERS)),
        "occ_metal": rng.uniform(0, 1, (n, N_OCCLUDERS)) * (rng.random((n, N_OCCLUDERS)) < 0.2),
    }

    scene = {
        "image_size": np.array([s.size, s.size]), "samples": np.array(s.samples), "K": K,
        "render_seed": rng.integers(0, 2 ** 31 - 1, n),
        "hand_faces": model.faces.astype(np.int64), "nail": hands.nail, "palm": hands.palm,
        "hand_verts": np.take_along_axis(v_cam, slot_of_side[:, :, None, None], 1).astype(np.float32),
        "arm_verts": np.take_along_axis(arm_v, slot_of_side[:, :, None, None], 1).astype(np.float32),
        "arm_faces": arm_f.astype(np.int64), "side_present": present_side,
        **{k: take(a) for k, a in skin.items()}, **lights, **bg, **occ,
        "n_meshes": np.array(len(meshes)),
    }
    for k, (mv, mf, smooth) in enumerate(meshes):
        scene[f"mesh_{k}_v"], scene[f"mesh_{k}_f"], scene[f"mesh_{k}_smooth"] = mv, mf, np.array(smooth)

    sel = present[..., None, None]
    labels = {
        "K": K, "image_size": np.array([s.size, s.size]), "present": present, "side": side,
        "joints3d": np.where(sel, j_cam, 0.0), "joints3d_mp": np.where(sel, j_cam[..., mp, :], 0.0),
        "joints2d": np.where(sel, j2d, 0.0), "joints2d_mp": np.where(sel, j2d[..., mp, :], 0.0),
        "roi": np.where(present[..., None], roi, 0.0), "roi_grown": grown & present,
        "angles": ang, "betas": betas, "rotmats": rot_cam, "transl": transl, "mirrored": side == 1, "ego": ego,
        "fitzpatrick": (fitz + 1) * present, "occluders": n_occ, "focal_px": K[:, 0, 0],
    }
    return scene, labels


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _look_at(pos, target) -> np.ndarray:
    """Rotations (n, 3, 3) whose local -Z points from pos to target (Blender lights and cameras)."""
    fwd = _unit(target - pos)
    up = np.broadcast_to(np.array([0.0, -1.0, 0.0]), fwd.shape)
    x = np.cross(fwd, up)
    bad = np.linalg.norm(x, axis=-1) < 1e-6
    x[bad] = np.cross(fwd[bad], [1.0, 0, 0])
    x = _unit(x)
    y = np.cross(x, fwd)
    return np.stack([x, y, -fwd], -1)


def chunk_seed(base_seed: int, chunk: int) -> int:
    """The seed of chunk ``chunk`` (fixed per chunk: any subset of chunks can be generated in any order)."""
    return int(np.random.SeedSequence([int(base_seed), int(chunk)]).generate_state(1, np.uint32)[0])


__all__ = ["SynthSettings", "sample_chunk", "chunk_seed", "ycb_meshes", "shape_mesh", "kelvin_rgb"]
