"""Synthetic test inputs: a small MANO-format hand model and clips posed with it.

The model is a set of tubes along a flat hand's bones (blended weights at the joints, shape
directions, no pose correctives); it exercises rig, skin and keys without the project's real model.
Clips are written with `core.io.clip.save_clip`, vertices computed by `core.hand.mano.forward`.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from core.io.clip import ClipResult
from core.hand.model import FINGERS, MANO_PARENTS, MP_FROM_MANO21

# Right hand, model frame (metres): wrist at the origin, fingers along +x, thumb on +z.
_J21_RIGHT = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.090, 0.000, 0.026], [0.123, -0.003, 0.026], [0.146, -0.006, 0.026],
        [0.094, 0.000, 0.005], [0.130, -0.003, 0.005], [0.157, -0.006, 0.005],
        [0.078, 0.000, -0.034], [0.102, -0.003, -0.036], [0.120, -0.006, -0.037],
        [0.087, 0.000, -0.015], [0.120, -0.003, -0.016], [0.145, -0.006, -0.017],
        [0.028, 0.006, 0.022], [0.052, 0.008, 0.046], [0.072, 0.009, 0.062],
        [0.090, 0.010, 0.077], [0.166, -0.008, 0.026], [0.178, -0.008, 0.005],
        [0.165, -0.008, -0.018], [0.137, -0.008, -0.038],
    ]
)
_RING = 8
_RADIUS = 0.008


def _ring(center, direction, radius):
    d = direction / np.linalg.norm(direction)
    a = np.cross(d, [0.0, 1.0, 0.0])
    if np.linalg.norm(a) < 1e-6:
        a = np.cross(d, [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(d, a)
    ang = np.linspace(0, 2 * math.pi, _RING, endpoint=False)
    return center + radius * (np.cos(ang)[:, None] * a + np.sin(ang)[:, None] * b)


def synthetic_arrays(side: str = "right", n_betas: int = 10, seed: int = 0) -> dict:
    """MANO-format arrays (v_template, faces, weights, J_regressor, shapedirs, posedirs, tip_vertex_ids)."""
    j21 = _J21_RIGHT.copy()
    if side == "left":
        j21[:, 0] *= -1.0  # mirror image
    verts, faces, weights = [], [], []
    jreg = np.zeros((16, 0))
    joint_ring = {}
    tip_ids = np.zeros(5, np.int64)
    tip_order = {16: 0, 17: 1, 18: 2, 19: 3, 20: 4}

    def add_tube(a, b, w_rows):
        nonlocal jreg
        start = sum(len(v) for v in verts)
        for k, (t, w) in enumerate(zip((0.0, 0.5, 1.0), w_rows)):
            c = j21[a] + t * (j21[b] - j21[a])
            verts.append(_ring(c, j21[b] - j21[a], _RADIUS))
            weights.append(np.repeat(w[None], _RING, 0))
        for k in range(2):
            r0, r1 = start + k * _RING, start + (k + 1) * _RING
            for s in range(_RING):
                s1 = (s + 1) % _RING
                faces.append([r0 + s, r0 + s1, r1 + s1])
                faces.append([r0 + s, r1 + s1, r1 + s])
        return start

    def wvec(pairs):
        w = np.zeros(16)
        for j, x in pairs:
            w[j] += x
        return w

    for chain, tip in FINGERS.values():
        seq = list(chain) + [tip]
        # palm tube wrist -> finger base
        s = add_tube(0, seq[0], [wvec([(0, 1.0)]), wvec([(0, 0.7), (seq[0], 0.3)]), wvec([(0, 0.5), (seq[0], 0.5)])])
        if seq[0] == 4:
            joint_ring[0] = s
        for a, b in zip(seq[:-1], seq[1:]):
            p = int(MANO_PARENTS[a])
            end = wvec([(a, 0.7), (b, 0.3)]) if b < 16 else wvec([(a, 1.0)])
            s = add_tube(a, b, [wvec([(a, 0.6), (p, 0.4)]), wvec([(a, 1.0)]), end])
            joint_ring[a] = s
        tip_ids[tip_order[tip]] = sum(len(v) for v in verts)
        verts.append(j21[tip][None] + 0.004 * (j21[tip] - j21[seq[-2]])[None] / np.linalg.norm(j21[tip] - j21[seq[-2]]))
        weights.append(wvec([(seq[-2], 1.0)])[None])
    v = np.concatenate(verts, 0)
    w = np.concatenate(weights, 0)
    jreg = np.zeros((16, v.shape[0]))
    for j, s in joint_ring.items():
        jreg[j, s:s + _RING] = 1.0 / _RING
    f = np.asarray(faces, np.int64)
    if side == "left":
        f = f[:, ::-1].copy()
    rng = np.random.default_rng(seed)
    shapedirs = rng.normal(0.0, 0.002, (v.shape[0], 3, n_betas))
    return {
        "v_template": v.astype(np.float32),
        "faces": f,
        "weights": w.astype(np.float32),
        "J_regressor": jreg.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((v.shape[0], 3, 135), np.float32),
        "tip_vertex_ids": tip_ids,
    }


def rodrigues(aa: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3), float64."""
    aa = np.asarray(aa, np.float64)
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    k = aa / np.maximum(theta, 1e-12)
    kx = np.zeros(aa.shape[:-1] + (3, 3))
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx = kx - np.swapaxes(kx, -1, -2)
    s, c = np.sin(theta)[..., None], np.cos(theta)[..., None]
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def forward(model, betas: np.ndarray, global_orient: np.ndarray, hand_pose: np.ndarray, transl: np.ndarray):
    """MANO forward kinematics and linear blend skinning in float64 numpy (the Blender tests' own, independent
    of the core's torch layer): betas (NB,), global_orient (T, 3), hand_pose (T, 15, 3) axis-angle,
    transl (T, 3) metres -> vertices (T, V, 3), joints21 (T, 21, 3) (MANO-21: 16 joints + 5 tip vertices)."""
    t_count = len(global_orient)
    v_shaped = model.v_template.astype(np.float64) + np.einsum("vcb,b->vc", model.shapedirs, betas)
    j_rest = model.J_regressor.astype(np.float64) @ v_shaped  # (16, 3)
    rot = rodrigues(np.concatenate([np.reshape(global_orient, (t_count, 1, 3)),
                                    np.reshape(hand_pose, (t_count, 15, 3))], 1))  # (T, 16, 3, 3)
    v = v_shaped[None] + ((rot[:, 1:] - np.eye(3)).reshape(t_count, 135) @
                          model.posedirs.reshape(-1, 135).T.astype(np.float64)).reshape(t_count, -1, 3)
    g_rot, g_pos = [rot[:, 0]], [np.repeat(j_rest[None, 0], t_count, 0)]
    for i in range(1, 16):
        p = MANO_PARENTS[i]
        g_rot.append(g_rot[p] @ rot[:, i])
        g_pos.append(g_pos[p] + np.einsum("tij,j->ti", g_rot[p], j_rest[i] - j_rest[p]))
    g_rot, joints = np.stack(g_rot, 1), np.stack(g_pos, 1)  # (T, 16, 3, 3), (T, 16, 3)
    # x' = sum_j w_vj (R_j (x - J_j) + G_j)
    per_joint = np.einsum("tjab,tvjb->tvja", g_rot, v[:, :, None, :] - j_rest[None, None]) + joints[:, None]
    verts = np.einsum("vj,tvja->tva", model.weights.astype(np.float64), per_joint)
    tr = np.asarray(transl, np.float64)[:, None]
    joints21 = np.concatenate([joints, verts[:, model.tip_vertex_ids]], 1)
    return verts + tr, joints21 + tr


def write_synthetic_model(path: Path, side: str = "right") -> Path:
    """Write the synthetic model as a hand model .npz (loadable with core.hand.model.load_model)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, side=np.array(side), name=np.array("synthetic-test-hand"), **synthetic_arrays(side))
    return path


def make_clip(
    models: dict,
    n_frames: int = 12,
    *,
    source: str = "synthetic.mp4",
    image_size=(640, 480),
    fps: float = 30.0,
    stride: int = 1,
    start: int = 0,
    invalid: dict | None = None,
    with_vertices: bool = True,
    seed: int = 0,
) -> ClipResult:
    """A smooth random-motion clip for the hands in ``models`` ({side: (HandModel, model_path)}).

    invalid: {side: list of clip frames where the hand is not valid}.
    """
    rng = np.random.default_rng(seed)
    sides = tuple(s for s in ("right", "left") if s in models)
    t_count, h_count = n_frames, len(sides)
    frame_index = start + stride * np.arange(t_count)
    time = frame_index / fps
    w, h = image_size
    f = 0.5 * max(w, h) / math.tan(math.radians(69) / 2)
    K = np.tile(np.array([[f, 0, w / 2 + 7.0], [0, f, h / 2 - 5.0], [0, 0, 1]]), (t_count, 1, 1))
    phase = np.linspace(0, 1, t_count)[:, None]
    go, hp, tr, betas, verts, joints = [], [], [], [], [], []
    for hi, side in enumerate(sides):
        model, _ = models[side]
        b = rng.normal(0, 1.0, model.n_betas).astype(np.float32)
        g0, g1 = rng.normal(0, 0.6, 3), rng.normal(0, 0.6, 3)
        g0[0] += math.pi / 2  # fingers roughly up in the image
        gaa = g0 + (g1 - g0) * phase
        p0, p1 = rng.normal(0, 0.25, (15, 3)), rng.normal(0, 0.5, (15, 3))
        p1[:, 2] -= 0.6  # some curl
        paa = p0[None] + (p1 - p0)[None] * phase[:, :, None]
        t0 = np.array([(-0.08 if side == "right" else 0.08), 0.02, 0.45])
        taa = t0 + np.array([0.03, -0.02, 0.08]) * phase
        v, j21 = forward(model, b, gaa, paa, taa)
        go.append(gaa), hp.append(paa), tr.append(taa), betas.append(b)
        verts.append(v)
        joints.append(j21[:, MP_FROM_MANO21])
    valid = np.ones((h_count, t_count), bool)
    for side, frames in (invalid or {}).items():
        valid[sides.index(side), frames] = False
    n_v = {m.n_verts for m, _ in models.values()}
    with_vertices = with_vertices and len(n_v) == 1
    first_model = models[sides[0]][0]
    return ClipResult(
        source=source,
        fps=fps / stride,
        image_size=np.array(image_size),
        frame_index=frame_index,
        time=time,
        K=K,
        K_guessed=False,
        sides=sides,
        model_names=tuple(models[s][0].name for s in sides),
        model_paths=tuple(str(models[s][1] or "") for s in sides),
        valid=valid,
        detected=valid.copy(),
        confidence=valid.astype(np.float32),
        betas=np.stack(betas),
        global_orient=np.stack(go).astype(np.float32),
        hand_pose=np.stack(hp).astype(np.float32),
        transl=np.stack(tr).astype(np.float32),
        joints=np.stack(joints).astype(np.float32),
        landmarks_px=np.zeros((h_count, t_count, 21, 2), np.float32),
        landmarks_world=np.zeros((h_count, t_count, 21, 3), np.float32),
        vertices=np.stack(verts).astype(np.float32) if with_vertices else None,
        faces=first_model.faces if with_vertices else None,
    )
