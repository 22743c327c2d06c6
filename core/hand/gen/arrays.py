"""The project's own open hand model in MANO's format ("handcap-open"), generated from code.

The official MANO model cannot be shipped, so this module builds a right hand from an anthropometric
skeleton (numpy and scipy, deterministic; build time and the CLI only, never imported by Blender) and mirrors it for the left:

1.-3. skeleton, implicit surface and mesh (`core.hand.gen.mesh`: a closed, manifold mesh of 2,076 vertices
   and 4,148 triangles);
4. MANO arrays on it: J_regressor (each joint a convex combination of a ring of vertices around it,
   reproducing the designed joint exactly), smooth skinning weights, ten documented shape directions,
   zero pose correctives, identity hand PCA.

Rest-pose axes (metres, right hand; the same as the official MANO right hand's template)
-----------------------------------------------------------------------------------------
* wrist joint at the origin;
* fingers point along **-x** (the middle fingertip is at x = -0.184);
* the thumb is on the **+z** side (radial), the little finger on -z;
* the palm faces **-y** (palmar side), the back of the hand faces +y; the thumb sits ~1.5 cm palmar of
  the plane of the other knuckles, as in MANO's flat hand.
For flexion, a finger bone's axis is roughly ``cross(bone_direction, palm_normal)``; with bone direction
-x and palm normal -y that is +z (curling a right-hand finger toward the palm is a rotation about +z).
The left hand mirrors x -> -x: fingers along +x, thumb +z, palm -y.

Design frame: the code below works in millimetres in (u, w, h) = (distal, radial/thumb side, dorsal);
the model frame is x = -u, y = h, z = w (a proper rotation), metres.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np

from ..load import generator_id
from ..model import MANO_PARENTS, N_JOINTS
from .mesh import CHAINS, TIP_ORDER, TO_MODEL, adjacency, build_mesh, chain_sdf, design_joints, palm_centre_h, palm_sdf, thenar_sdf, unit

NAME = "handcap-open"
BETA_NAMES = (
    "size",  # 0: uniform scale about the wrist, +1 = +5 %
    "palm_width",  # 1: palm and knuckle spread across the hand, +1 = +5.5 %
    "palm_length",  # 2: wrist-to-knuckle length (middle knuckle), +1 = +5 %
    "thumb_length",  # 3-7: one finger's length from its base joint, +1 = +5 %
    "index_length",
    "middle_length",
    "ring_length",
    "pinky_length",
    "finger_thickness",  # 8: radius of every finger and the thumb, +1 = +6 %
    "palm_thickness",  # 9: back-to-palm thickness of the palm, +1 = +6 %
)


# ---------------------------------------------------------------------------------------------
# 4. MANO arrays on the mesh (design frame, mm; steps 1-3 are in core.hand.gen.mesh).
# ---------------------------------------------------------------------------------------------
def _chain_of_joint():
    """joint id -> (chain name, index 0..2 within the chain); the wrist is absent."""
    return {j: (name, k) for name, c in CHAINS.items() for k, j in enumerate(c["ids"])}


def _hard_labels(verts):
    """Joint (V,) whose bone each vertex lies on: nearest body part, then position along its chain."""
    names = list(CHAINS)
    parts = np.stack([palm_sdf(verts)] + [chain_sdf(verts, n) for n in names] + [thenar_sdf(verts)])
    nearest = np.argmin(parts, axis=0)
    labels = np.zeros(len(verts), np.int64)
    for i, name in enumerate(names):
        c = CHAINS[name]
        sel = (nearest == i + 1) | ((nearest == len(names) + 1) & (name == "thumb"))
        p = verts[sel]
        # distance to each bone segment (the last one ends at the tip)
        dist = []
        for k in range(3):
            a, b = c["pts"][k], c["pts"][k + 1]
            t = np.clip((p - a) @ (b - a) / ((b - a) @ (b - a)), 0.0, 1.0)
            dist.append(np.linalg.norm(p - a - t[:, None] * (b - a), axis=1))
        k = np.argmin(np.stack(dist), axis=0)
        lab = np.array(c["ids"])[k]
        lab[(k == 0) & ((p - c["pts"][0]) @ c["dirs"][0] < 0)] = 0
        labels[sel] = lab
    return labels


def skinning_weights(verts, tris, tip_ids, iters=12):
    """Smooth LBS weights (V, 16): hard bone labels diffused over the mesh; tips rigid on their last joint."""
    w = np.zeros((len(verts), N_JOINTS))
    w[np.arange(len(verts)), _hard_labels(verts)] = 1.0
    adj = adjacency(len(verts), tris)
    deg = np.asarray(adj.sum(axis=1)).ravel()[:, None]
    for _ in range(iters):
        w = 0.5 * w + 0.5 * (adj @ w) / deg
    w[w < 1e-4] = 0.0
    w /= w.sum(axis=1, keepdims=True)
    for name, v in zip(TIP_ORDER, tip_ids):
        w[v] = 0.0
        w[v, CHAINS[name]["ids"][2]] = 1.0
    return w


def _convex_weights(points, target, prior):
    """Weights (n,) >= 0, summing to 1, with points.T @ w == target, near ``prior``; None if infeasible.

    Non-negative least squares on [lam * [points.T; 1]; I] w ~ [lam * [target; 1]; prior], then an exact
    minimum-norm correction of the equality on the support.
    """
    from scipy.optimize import nnls

    a = np.vstack([points.T, np.ones(len(points))])
    b = np.append(target, 1.0)
    lam = 1e4
    w, _ = nnls(np.vstack([lam * a, np.eye(len(points))]), np.concatenate([lam * b, prior]), maxiter=50 * len(points))
    w[w < 1e-9] = 0.0
    sup = w > 0
    if sup.sum() < 4:
        return None
    a_s = a[:, sup]
    w[sup] += a_s.T @ np.linalg.lstsq(a_s @ a_s.T, b - a_s @ w[sup], rcond=None)[0]
    if w.min() < 0 or np.abs(a @ w - b).max() > 1e-9:
        return None
    return w


def joint_regressor(verts_m, joints_m):
    """J_regressor (16, V): each joint a convex combination of a ring of vertices around it.

    verts_m (V, 3) and joints_m (16, 3) are in the design frame's axes but in metres (the stored,
    float32-rounded vertices), so J_regressor @ verts_m reproduces joints_m to float precision.
    The ring: vertices within ``half`` of the plane through the joint across its bone and within
    ``radius`` of the bone; the slab widens until the joint is inside the ring's convex hull.
    """
    owner = _chain_of_joint()
    reg = np.zeros((N_JOINTS, len(verts_m)))
    for j in range(N_JOINTS):
        if j == 0:
            axis, radius = np.array([1.0, 0.0, 0.0]), 0.040
        else:
            name, k = owner[j]
            c = CHAINS[name]
            axis = unit(c["dirs"][k] + c["dirs"][max(k - 1, 0)])
            radius = 0.030 if (name == "thumb" and k == 0) else 1.7e-3 * c["radii"][k]
        rel = verts_m - joints_m[j]
        along = rel @ axis
        across = np.linalg.norm(rel - along[:, None] * axis, axis=1)
        for half in (0.004, 0.006, 0.009, 0.013):
            ring = np.flatnonzero((np.abs(along) < half) & (across < radius))
            w = _convex_weights(verts_m[ring], joints_m[j], np.full(len(ring), 1.0 / max(len(ring), 1)))
            if w is not None:
                break
        else:
            raise RuntimeError(f"handgen: no ring of vertices encloses joint {j}")
        reg[j, ring] = w
    return reg


def shape_directions(verts, w):
    """shapedirs (V, 3, 10) in mm per unit beta, design frame; see BETA_NAMES."""
    n_v = len(verts)
    u, wl, h = verts[:, 0], verts[:, 1], verts[:, 2]
    owner = _chain_of_joint()
    base = np.zeros((N_JOINTS, 3))  # base joint (MCP / CMC) of each joint's chain
    for j, (name, _) in owner.items():
        base[j] = CHAINS[name]["pts"][0]
    w_palm, w_digits = w[:, 0], w[:, 1:]
    sd = np.zeros((n_v, 3, 10))
    sd[:, :, 0] = 0.05 * verts
    w_centre = -4.0
    sd[:, 1, 1] = 0.055 * (w_palm * (wl - w_centre) + w_digits @ (base[1:, 1] - w_centre))
    # palm length: stretch along u from 10 mm past the wrist joint (so the wrist joint stays put), scaled
    # so the middle knuckle moves 5 % of its distance from the wrist
    u0 = 10.0
    scale = 0.05 * CHAINS["middle"]["pts"][0, 0] / (CHAINS["middle"]["pts"][0, 0] - u0)
    sd[:, 0, 2] = scale * (w_palm * np.maximum(u - u0, 0.0) + w_digits @ np.maximum(base[1:, 0] - u0, 0.0))
    for b, name in enumerate(TIP_ORDER):
        c = CHAINS[name]
        for k, j in enumerate(c["ids"]):
            a = c["dirs"][k]
            along = (verts - c["pts"][k]) @ a
            if k == 0:
                along = np.maximum(along, 0.0)
            disp = (c["pts"][k] - c["pts"][0]) + along[:, None] * a
            sd[:, :, 3 + b] += 0.05 * w[:, j:j + 1] * disp
            radial = verts - c["pts"][k] - ((verts - c["pts"][k]) @ a)[:, None] * a
            sd[:, :, 8] += 0.06 * w[:, j:j + 1] * radial
    sd[:, 2, 9] = 0.06 * w_palm * (h - np.where(u > 0, palm_centre_h(u, wl), 0.0))
    return sd


def _tip_vertices(verts, w):
    """Most distal vertex of each digit's last bone (thumb, index, middle, ring, pinky)."""
    out = []
    for name in TIP_ORDER:
        c = CHAINS[name]
        cand = np.flatnonzero(w[:, c["ids"][2]] > 0.5)
        out.append(cand[np.argmax((verts[cand] - c["pts"][2]) @ c["dirs"][2])])
    return np.array(out, np.int64)


def build_right() -> dict:
    """The right hand's arrays (npz keys of `core.hand.model`, model frame, metres, float32)."""
    verts, tris, _ = build_mesh()
    w0 = skinning_weights(verts, tris, np.zeros(0, np.int64))
    tips = _tip_vertices(verts, w0)
    w = skinning_weights(verts, tris, tips)
    v32 = (verts @ TO_MODEL.T / 1000.0).astype(np.float32)
    # regress in design axes from the stored float32 vertices (TO_MODEL only permutes and flips signs)
    reg = joint_regressor(v32.astype(np.float64) @ TO_MODEL, design_joints() / 1000.0)
    sd = np.einsum("vcb,dc->vdb", shape_directions(verts, w), TO_MODEL) / 1000.0  # (V,3,B): M @ s
    kintree = np.stack([MANO_PARENTS, np.arange(N_JOINTS)]).astype(np.int64)
    kintree[0, 0] = 4294967295
    return {
        "v_template": v32,
        "faces": tris.astype(np.int32),
        "weights": w.astype(np.float32),
        "J_regressor": reg.astype(np.float32),
        "shapedirs": sd.astype(np.float32),
        "posedirs": np.zeros((len(verts), 3, 135), np.float32),
        "tip_vertex_ids": tips,
        "side": np.array("right"),
        "name": np.array(NAME),
        "beta_names": np.array(BETA_NAMES),
        "hands_components": np.eye(45, dtype=np.float32),
        "hands_mean": np.zeros(45, np.float32),
        "kintree_table": kintree.astype(np.uint32),
    }


def mirror_to_left(right: dict) -> dict:
    """The left hand: every position and direction mirrored x -> -x, face winding flipped."""
    left = dict(right)
    left["v_template"] = right["v_template"] * np.array([-1.0, 1.0, 1.0], np.float32)
    sd = right["shapedirs"].copy()
    sd[:, 0, :] *= -1.0
    left["shapedirs"] = sd
    left["faces"] = right["faces"][:, [0, 2, 1]].copy()
    left["side"] = np.array("left")
    return left


def build_both() -> dict:
    """{"right": arrays, "left": arrays}."""
    right = build_right()
    return {"right": right, "left": mirror_to_left(right)}


def mano_arrays(arrays: dict) -> dict:
    """The official MANO pickle's keys (what smplx.MANO reads) from this module's arrays."""
    out = {k: arrays[k] for k in ("v_template", "weights", "J_regressor", "shapedirs", "posedirs",
                                  "hands_components", "hands_mean", "kintree_table", "tip_vertex_ids",
                                  "beta_names", "side", "name")}
    out["f"] = arrays["faces"].astype(np.uint32)
    return out


def _write_npz(path: Path, arrays: dict) -> None:
    """np.savez_compressed, but byte-for-byte reproducible (fixed zip timestamps) and atomic."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    tmp.replace(path)


def asset_paths(out_dir) -> dict:
    """{file stem: Path} of the four generated files in ``out_dir``."""
    out_dir = Path(out_dir)
    paths = {}
    for side in ("right", "left"):
        paths[f"handcap_{side}"] = out_dir / f"handcap_{side}.npz"
        paths[f"handcap_MANO_{side.upper()}"] = out_dir / f"handcap_MANO_{side.upper()}.pkl"
    return paths


def assets_current(out_dir) -> bool:
    """True when all four files exist and were written by this version of the generator."""
    paths = asset_paths(out_dir)
    if not all(p.is_file() for p in paths.values()):
        return False
    try:
        for side in ("right", "left"):
            with np.load(paths[f"handcap_{side}"], allow_pickle=False) as z:
                if "generator" not in z.files or str(z["generator"]) != generator_id():
                    return False
    except (OSError, ValueError, zipfile.BadZipFile):
        return False
    return True


def write_assets(out_dir) -> dict:
    """Generate both hands and write them; returns {file stem: Path}.

    Writes ``handcap_right.npz`` / ``handcap_left.npz`` (this project's format, `np.load` with
    ``allow_pickle=False``, stamped with `generator_id`) and ``handcap_MANO_RIGHT.pkl`` /
    ``handcap_MANO_LEFT.pkl`` (the official MANO pickle layout: a plain dict of numpy arrays that
    ``smplx.MANO(model_path=...)`` loads).  Every file is replaced atomically.
    """
    from ..mano_pkl import write_mano_pickle

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = asset_paths(out_dir)
    for side, arrays in build_both().items():
        write_mano_pickle(mano_arrays(arrays), paths[f"handcap_MANO_{side.upper()}"])
        _write_npz(paths[f"handcap_{side}"], {**arrays, "generator": np.array(generator_id())})
    return paths
