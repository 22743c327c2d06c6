"""The open hand model (core.hand.gen), MANO pickles (core.hand.mano_pkl) and loading (core.hand.load)."""
from __future__ import annotations

import os
import pickle
import shutil
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial.transform import Rotation

from core.hand import load, mano_pkl
from core.hand import model as hand_model
from core.hand.gen import arrays as handgen
from core.hand.gen import ensure_open_model
from core.hand.gen import mesh as handmesh
from core.errors import CaptureError

DISTAL = {"thumb": 15, "index": 3, "middle": 6, "ring": 12, "pinky": 9}  # last joint of each digit
MM = 1e-3


@pytest.fixture(scope="session")
def assets(tmp_path_factory):
    """The generated files: {stem: Path} (generated once per test session)."""
    return handgen.write_assets(tmp_path_factory.mktemp("handcap_assets"))


@pytest.fixture(scope="session")
def arrays(assets):
    """{"right": npz arrays, "left": npz arrays}, read with allow_pickle=False."""
    out = {}
    for side in hand_model.SIDES:
        with np.load(assets[f"handcap_{side}"], allow_pickle=False) as z:
            out[side] = {k: z[k] for k in z.files}
    return out


@pytest.fixture(scope="session")
def right(assets):
    return load.load_model("right", assets["handcap_right"])


def design_joints_m():
    """The designed skeleton in the model frame (16, 3), metres."""
    return handmesh.design_joints() @ handmesh.TO_MODEL.T / 1000.0


def lbs_numpy(a: dict, betas: np.ndarray, pose: np.ndarray):
    """Independent float64 linear blend skinning of MANO-format arrays; pose (16, 3) axis-angle."""
    v = a["v_template"].astype(np.float64) + np.einsum("vcb,b->vc", a["shapedirs"].astype(np.float64), betas)
    j = a["J_regressor"].astype(np.float64) @ v
    rot = Rotation.from_rotvec(np.asarray(pose, np.float64).reshape(16, 3)).as_matrix()
    parents = hand_model.MANO_PARENTS
    g = np.zeros((16, 4, 4))
    for i in range(16):
        local = np.eye(4)
        local[:3, :3] = rot[i]
        local[:3, 3] = j[i] - (j[parents[i]] if i else 0.0)
        g[i] = local if i == 0 else g[parents[i]] @ local
    skin = g.copy()
    skin[:, :3, 3] -= np.einsum("kij,kj->ki", g[:, :3, :3], j)
    t = np.einsum("vk,kij->vij", a["weights"].astype(np.float64), skin)
    return np.einsum("vij,vj->vi", t[:, :3, :3], v) + t[:, :3, 3], g[:, :3, 3]


def signed_volume(v, f):
    v = v.astype(np.float64)
    return np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6.0


# ----------------------------------------------------------------------------------------------
# Mesh
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("side", hand_model.SIDES)
def test_mesh_is_closed_manifold_and_outward(arrays, side):
    a = arrays[side]
    v, f = a["v_template"], a["faces"].astype(np.int64)
    assert 800 <= len(v) <= 2500
    directed = np.vstack([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    # every directed edge once, and its reverse once: each edge in exactly two faces, consistently oriented
    assert len(np.unique(directed, axis=0)) == len(directed)
    und, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    assert np.all(counts == 2)
    assert len(v) - len(und) + len(f) == 2  # Euler characteristic of a sphere
    assert len(np.unique(f)) == len(v)  # no stray vertices
    areas = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1) / 2
    assert areas.min() > 1e-8  # > 0.01 mm^2
    assert signed_volume(v, f) > 2e-4  # m^3; a hand is ~3.6e-4


def test_rest_pose_axes_and_size(arrays):
    """Docstring contract: wrist at origin, fingers -x, thumb +z, palm faces -y; adult proportions."""
    a = arrays["right"]
    v = a["v_template"].astype(np.float64)
    j = a["J_regressor"].astype(np.float64) @ v
    np.testing.assert_allclose(j[0], 0.0, atol=1e-6)
    middle_tip = v[a["tip_vertex_ids"][2]]
    assert 0.18 <= -middle_tip[0] <= 0.19  # hand length: wrist joint to middle fingertip
    assert np.all(j[[1, 4, 7, 10], 0] < -0.07)
    assert j[13:16, 2].min() > 0.015 and j[7, 2] < -0.02  # thumb +z, little finger -z
    assert np.all(j[13:16, 1] < j[[1, 4, 7, 10], 1].mean() - 0.008)  # thumb palmar (-y) of the knuckles
    knuckles = (v[:, 0] < -0.03) & (v[:, 0] > -0.09) & (a["weights"][:, 13:16].sum(1) < 0.3)
    width = v[knuckles, 2].max() - v[knuckles, 2].min()
    assert 0.08 <= width <= 0.09


@pytest.mark.parametrize("side,sign", [("right", 1.0), ("left", -1.0)])
def test_flexion_axis_convention(arrays, side, sign):
    """Bending index1 about sign * z moves the index tip toward the palm (-y)."""
    a = arrays[side]
    pose = np.zeros((16, 3))
    pose[1, 2] = sign * 0.8
    posed, _ = lbs_numpy(a, np.zeros(10), pose)
    tip = a["tip_vertex_ids"][1]
    assert posed[tip, 1] - a["v_template"][tip, 1] < -0.03


# ----------------------------------------------------------------------------------------------
# Regressor, weights, tips
# ----------------------------------------------------------------------------------------------
def test_regressor_reproduces_designed_joints(arrays):
    a = arrays["right"]
    reg, v = a["J_regressor"], a["v_template"]
    assert reg.shape == (16, len(v)) and reg.dtype == np.float32
    assert reg.min() >= 0.0
    np.testing.assert_allclose(reg.sum(axis=1), 1.0, atol=1e-6)
    joints = reg.astype(np.float64) @ v.astype(np.float64)
    np.testing.assert_allclose(joints, design_joints_m(), atol=1e-5)
    for j in range(16):  # each joint from a local ring of vertices
        ring = np.flatnonzero(reg[j])
        assert len(ring) >= 4
        assert np.linalg.norm(v[ring] - joints[j], axis=1).max() < 0.04


def test_weights_and_rigid_tips(arrays):
    a = arrays["right"]
    w, tips = a["weights"], a["tip_vertex_ids"]
    assert w.shape == (len(a["v_template"]), 16) and w.min() >= 0.0
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
    assert tips.shape == (5,) and len(set(tips.tolist())) == 5
    for name, tip in zip(handmesh.TIP_ORDER, tips):
        expected = np.zeros(16, np.float32)
        expected[DISTAL[name]] = 1.0
        np.testing.assert_array_equal(w[tip], expected)
    # blended across joints: some vertices share index1 and index2 about equally
    assert np.any((np.abs(w[:, 1] - 0.5) < 0.15) & (np.abs(w[:, 2] - 0.5) < 0.15))


def test_tip_vertices_are_fingertips(arrays):
    a = arrays["right"]
    v = a["v_template"].astype(np.float64)
    j = a["J_regressor"].astype(np.float64) @ v
    for name, tip in zip(handmesh.TIP_ORDER, a["tip_vertex_ids"]):
        ids = handmesh.CHAINS[name]["ids"]
        bone = _unit(j[ids[2]] - j[ids[1]])
        # the most distal vertex of the digit, 15-30 mm beyond its last joint
        digit = a["weights"][:, list(ids)].sum(axis=1) > 0.5
        assert (v[tip] - j[ids[2]]) @ bone >= ((v[digit] - j[ids[2]]) @ bone).max() - 1e-9
        assert 0.015 < np.linalg.norm(v[tip] - j[ids[2]]) < 0.03


def _unit(x):
    return x / np.linalg.norm(x)


# ----------------------------------------------------------------------------------------------
# Shape directions
# ----------------------------------------------------------------------------------------------
def _shaped(model, b, value=1.0):
    beta = np.zeros(model.n_betas)
    beta[b] = value
    return model.shaped_vertices(beta).astype(np.float64), model.rest_joints(beta).astype(np.float64)


def test_beta_names(right):
    assert right.n_betas == 10
    assert right.beta_names == handgen.BETA_NAMES
    assert right.beta_names[0] == "size" and right.beta_names[5] == "middle_length"


def test_beta_size_scales_about_wrist(right):
    v, j = _shaped(right, 0)
    np.testing.assert_allclose(v, 1.05 * right.v_template, atol=1e-6)
    np.testing.assert_allclose(j, 1.05 * right.rest_joints(), atol=1e-6)


def test_beta_palm_width_spreads_knuckles(right):
    j0 = right.rest_joints().astype(np.float64)
    v, j = _shaped(right, 1)
    spread0, spread = j0[1, 2] - j0[7, 2], j[1, 2] - j[7, 2]
    assert 1.04 < spread / spread0 < 1.07
    tips = right.tip_vertex_ids
    for name, tip in zip(handmesh.TIP_ORDER[1:], tips[1:]):  # fingers move sideways, keep their length
        base = handmesh.CHAINS[name]["ids"][0]
        assert abs(np.linalg.norm(v[tip] - j[base]) - np.linalg.norm(right.v_template[tip] - j0[base])) < 0.3 * MM


def test_beta_palm_length_moves_knuckles_distally(right):
    j0 = right.rest_joints().astype(np.float64)
    v, j = _shaped(right, 2)
    np.testing.assert_allclose(j[0], j0[0], atol=0.05 * MM)  # the wrist stays (thenar blends move it a hair)
    assert j[4, 0] - j0[4, 0] < -0.004  # middle1 ~5 % of 91 mm further along -x
    seg0, seg = np.linalg.norm(j0[5] - j0[4]), np.linalg.norm(j[5] - j[4])
    assert abs(seg - seg0) < 0.3 * MM  # the finger itself keeps its length


@pytest.mark.parametrize("b,name", [(3 + k, n) for k, n in enumerate(handmesh.TIP_ORDER)])
def test_beta_finger_length_changes_only_that_finger(right, b, name):
    assert right.beta_names[b] == f"{name}_length"
    v0, j0 = right.v_template.astype(np.float64), right.rest_joints().astype(np.float64)
    v, j = _shaped(right, b)
    ids = handmesh.CHAINS[name]["ids"]
    for other, tip in zip(handmesh.TIP_ORDER, right.tip_vertex_ids):
        if other == name:
            expected = 0.05 * (v0[tip] - j0[ids[0]])
            np.testing.assert_allclose(v[tip] - v0[tip], expected, atol=1.5 * MM)
        else:
            np.testing.assert_array_equal(v[tip], v0[tip])
    expected = 0.05 * (j0[ids[2]] - j0[ids[0]])
    np.testing.assert_allclose(j[ids[2]] - j0[ids[2]], expected, atol=0.5 * MM)  # joints follow the shape
    others = [k for k in range(16) if k not in ids]
    assert np.abs(j[others] - j0[others]).max() < 0.3 * MM


def test_beta_finger_thickness(right):
    v0, j0 = right.v_template.astype(np.float64), right.rest_joints().astype(np.float64)
    v, j = _shaped(right, 8)
    axis = _unit(j0[6] - j0[5])
    ring = np.flatnonzero(right.J_regressor[5])  # vertices around middle2 (PIP)

    def radius(x):
        rel = x[ring] - j0[5]
        return np.linalg.norm(rel - np.outer(rel @ axis, axis), axis=1).mean()

    assert 1.05 < radius(v) / radius(v0) < 1.07
    assert np.abs(j - j0).max() < 0.5 * MM
    np.testing.assert_array_equal(v[right.weights[:, 0] == 1.0], v0[right.weights[:, 0] == 1.0])


def test_beta_palm_thickness(right):
    v0 = right.v_template.astype(np.float64)
    v, _ = _shaped(right, 9)
    mid = (np.abs(v0[:, 0] + 0.045) < 0.004) & (np.abs(v0[:, 2]) < 0.02)
    t0, t = np.ptp(v0[mid, 1]), np.ptp(v[mid, 1])
    assert 1.04 < t / t0 < 1.07
    np.testing.assert_array_equal(v[right.tip_vertex_ids], v0[right.tip_vertex_ids])


def test_shapes_stay_plausible_at_three_sigma(right):
    f = right.faces
    v0 = right.v_template.astype(np.float64)
    n0 = np.cross(v0[f[:, 1]] - v0[f[:, 0]], v0[f[:, 2]] - v0[f[:, 0]])
    for b in range(right.n_betas):
        for s in (-3.0, 3.0):
            v, _ = _shaped(right, b, s)
            n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
            assert np.einsum("ij,ij->i", n, n0).min() > 0, (b, s)  # no face turns over
            assert 0.15 < -v[:, 0].min() < 0.22


# ----------------------------------------------------------------------------------------------
# Left hand, files, determinism
# ----------------------------------------------------------------------------------------------
def test_left_is_mirror_of_right(arrays):
    r, left = arrays["right"], arrays["left"]
    np.testing.assert_array_equal(left["v_template"], r["v_template"] * np.array([-1, 1, 1], np.float32))
    np.testing.assert_array_equal(left["shapedirs"][:, 0], -r["shapedirs"][:, 0])
    np.testing.assert_array_equal(left["shapedirs"][:, 1:], r["shapedirs"][:, 1:])
    np.testing.assert_array_equal(left["faces"], r["faces"][:, [0, 2, 1]])
    for key in ("weights", "J_regressor", "tip_vertex_ids", "posedirs", "beta_names"):
        np.testing.assert_array_equal(left[key], r[key])
    assert str(left["side"]) == "left" and str(r["side"]) == "right"
    jr = r["J_regressor"] @ r["v_template"]
    jl = left["J_regressor"] @ left["v_template"]
    np.testing.assert_allclose(jl, jr * np.array([-1, 1, 1]), atol=1e-7)
    assert mano_pkl.hand_chirality(jr) > 0.1 and mano_pkl.hand_chirality(jl) < -0.1


def test_npz_contents(arrays):
    a = arrays["right"]
    for key in hand_model.MODEL_KEYS + ("side", "name", "beta_names", "hands_components", "hands_mean",
                                        "kintree_table"):
        assert key in a, key
    assert str(a["name"]) == "handcap-open" and str(a["generator"]) == handgen.generator_id()
    np.testing.assert_array_equal(a["hands_components"], np.eye(45))
    np.testing.assert_array_equal(a["hands_mean"], np.zeros(45))
    assert a["posedirs"].shape == (len(a["v_template"]), 3, 135) and not a["posedirs"].any()
    kt = a["kintree_table"]
    assert kt.dtype == np.uint32 and kt.shape == (2, 16) and kt[0, 0] == 4294967295
    np.testing.assert_array_equal(kt[0, 1:], hand_model.MANO_PARENTS[1:])
    np.testing.assert_array_equal(kt[1], np.arange(16))


@pytest.mark.parametrize("side", hand_model.SIDES)
def test_load_model_reads_npz(assets, side):
    m = load.load_model(side, assets[f"handcap_{side}"])
    assert m.side == side and m.name == "handcap-open" and m.n_verts == len(m.weights)
    with pytest.raises(CaptureError, match="handcap_right.npz is a right hand model"):
        load.load_model("left", assets["handcap_right"])


def test_ensure_open_model_generates_missing_or_stale_files(monkeypatch, tmp_path, assets):
    calls = []

    def fake_write_assets(out_dir):
        calls.append(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for p in assets.values():
            shutil.copy(p, out_dir / p.name)

    monkeypatch.setenv("HANDCAP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HANDCAP_MODEL_DIR", raising=False)
    monkeypatch.setattr(handgen, "write_assets", fake_write_assets)
    folder = load.open_model_dir()
    assert folder == tmp_path / "cache" / "model" / load.generator_id()
    with pytest.raises(CaptureError, match="python -m core model"):  # loading never generates
        load.load_model("left")
    assert calls == []
    assert ensure_open_model() == folder and calls == [folder]
    m = load.load_model("left")
    assert m.side == "left" and m.name == "handcap-open"
    ensure_open_model()  # current: no regeneration
    assert len(calls) == 1
    # files written by another version of the generator are regenerated
    stale = folder / "handcap_right.npz"
    with np.load(stale, allow_pickle=False) as z:
        old = {k: z[k] for k in z.files}
    handgen._write_npz(stale, {**old, "generator": np.array("0123456789abcdef")})
    assert not handgen.assets_current(folder)
    ensure_open_model()
    assert len(calls) == 2 and handgen.assets_current(folder)


def test_shipped_model_is_used_and_never_rewritten(monkeypatch, tmp_path, assets):
    """A built package carries core/hand/assets: loading reads it, ensure_open_model leaves it alone."""
    shipped = tmp_path / "assets"
    shipped.mkdir()
    for side in hand_model.SIDES:
        shutil.copy(assets[f"handcap_{side}"], shipped)
    stale = shipped / "handcap_right.npz"
    with np.load(stale, allow_pickle=False) as z:
        old = {k: z[k] for k in z.files}
    handgen._write_npz(stale, {**old, "generator": np.array("0123456789abcdef")})
    before = {p.name: p.read_bytes() for p in shipped.iterdir()}
    monkeypatch.delenv("HANDCAP_MODEL_DIR", raising=False)
    monkeypatch.setattr(load, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(handgen, "write_assets", lambda out_dir: pytest.fail("the shipped model was regenerated"))
    assert load.open_model_dir() == shipped and ensure_open_model() == shipped
    assert load.load_model("right").n_verts == len(old["v_template"])
    assert {p.name: p.read_bytes() for p in shipped.iterdir()} == before


def test_loading_never_imports_the_generator():
    """Inside Blender only numpy exists: core.hand.load must not pull in core.hand.gen (scipy)."""
    import subprocess

    code = ("import sys; import core.hand.load as l; import core.hand.mano_pkl, core.io.clip; "
            "print(sorted(m for m in sys.modules if m.startswith(('core.hand.gen', 'scipy', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[]"


def test_writers_are_byte_deterministic(arrays, tmp_path):
    a = arrays["right"]
    handgen._write_npz(tmp_path / "a.npz", a)
    handgen._write_npz(tmp_path / "b.npz", a)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    mano_pkl.write_mano_pickle(handgen.mano_arrays(a), tmp_path / "a.pkl")
    mano_pkl.write_mano_pickle(handgen.mano_arrays(a), tmp_path / "b.pkl")
    assert (tmp_path / "a.pkl").read_bytes() == (tmp_path / "b.pkl").read_bytes()
    assert not list(tmp_path.glob("*.part"))


# ----------------------------------------------------------------------------------------------
# MANO pickles: smplx, round trip, chumpy, hostile and broken files
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("side", hand_model.SIDES)
def test_smplx_loads_generated_pickle_and_matches_numpy_lbs(assets, side):
    torch = pytest.importorskip("torch")
    smplx = pytest.importorskip("smplx")
    path = assets[f"handcap_MANO_{side.upper()}"]
    layer = smplx.MANO(model_path=str(path), use_pca=False, flat_hand_mean=True, is_rhand=side == "right")
    assert layer.is_rhand == (side == "right")
    data = mano_pkl.read_pickle(path)
    rng = np.random.default_rng(7)
    for pose, betas in ((np.zeros(48), np.zeros(10)), (rng.normal(0.0, 0.5, 48), rng.normal(0.0, 1.0, 10))):
        out = layer(betas=torch.tensor(betas[None], dtype=torch.float32),
                    global_orient=torch.tensor(pose[None, :3], dtype=torch.float32),
                    hand_pose=torch.tensor(pose[None, 3:], dtype=torch.float32))
        verts, joints = lbs_numpy(data, betas, pose)
        np.testing.assert_allclose(out.vertices[0].detach().numpy(), verts, atol=1e-5)
        np.testing.assert_allclose(out.joints[0].detach().numpy(), joints, atol=1e-5)


@pytest.mark.parametrize("side", hand_model.SIDES)
def test_load_official_round_trip(assets, arrays, side):
    m = load.load_model(side, assets[f"handcap_MANO_{side.upper()}"])
    a = arrays[side]
    assert m.side == side and m.name == "handcap-open" and m.beta_names == handgen.BETA_NAMES
    for key in ("v_template", "faces", "weights", "J_regressor", "shapedirs", "posedirs", "tip_vertex_ids"):
        np.testing.assert_array_equal(getattr(m, key), a[key], err_msg=key)


def _official_like(a: dict, protocol: int, monkeypatch) -> bytes:
    """An official-MANO-like pickle: chumpy Ch / Reshape objects, a scipy csc J_regressor, py2 names."""
    ch_mod, reo_mod = types.ModuleType("chumpy.ch"), types.ModuleType("chumpy.reordering")

    class Ch:  # chumpy pickles __dict__ minus caches; the value is 'x'
        def __init__(self, x):
            self.x = np.asarray(x, np.float64)
            self._dirty_vars, self._itr, self._depends_on_deps = {"x"}, None, {}

    class Reshape:
        def __init__(self, a, newshape):
            self.a, self.newshape, self._dirty_vars = a, newshape, set()

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    Reshape.__module__, Reshape.__qualname__ = "chumpy.reordering", "Reshape"
    ch_mod.Ch, reo_mod.Reshape = Ch, Reshape
    data = {
        "v_template": a["v_template"].astype(np.float64),
        "f": a["faces"].astype(np.uint32),
        "weights": a["weights"].astype(np.float64),
        "J_regressor": sp.csc_matrix(a["J_regressor"].astype(np.float64)),
        "shapedirs": Ch(a["shapedirs"]),
        "posedirs": Reshape(Ch(a["posedirs"].ravel()), a["posedirs"].shape),
        "kintree_table": a["kintree_table"].astype(np.int64),
        "hands_components": a["hands_components"].astype(np.float64),
        "hands_mean": a["hands_mean"].astype(np.float64),
        "tip_vertex_ids": a["tip_vertex_ids"],
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
        m.setitem(sys.modules, "chumpy.ch", ch_mod)
        m.setitem(sys.modules, "chumpy.reordering", reo_mod)
        return pickle.dumps(data, protocol=protocol)


@pytest.mark.parametrize("protocol", [1, 2, 4])
def test_load_official_without_chumpy(arrays, tmp_path, monkeypatch, protocol):
    a = arrays["right"]
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(_official_like(a, protocol, monkeypatch))
    assert "chumpy" not in sys.modules or not hasattr(sys.modules["chumpy"], "ch")
    m = load.load_model("right", path)
    assert m.name == "MANO_RIGHT.pkl" and m.beta_names == ()
    np.testing.assert_allclose(m.shapedirs, a["shapedirs"])
    np.testing.assert_allclose(m.posedirs, a["posedirs"])
    np.testing.assert_allclose(m.J_regressor, a["J_regressor"])
    np.testing.assert_array_equal(m.faces, a["faces"])


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("func,shown", [(os.system, ".system"), (eval, ".eval")])
def test_malicious_pickle_is_refused(tmp_path, func, shown):
    marker = tmp_path / "pwned"
    arg = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w')"
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Evil(func, arg)}, protocol=2))
    with pytest.raises(CaptureError) as err:
        load.load_model("right", path)
    message = str(err.value)  # names the global as written in the file (protocol 2: Python 2 module names)
    assert message.startswith("refusing to load MANO_RIGHT.pkl: it contains ") and shown in message
    assert not marker.exists()


def test_broken_files_name_the_file(assets, tmp_path):
    good = assets["handcap_MANO_RIGHT"].read_bytes()
    cases = {
        "truncated": (good[: len(good) // 2], "truncated"),
        "not a pickle": (assets["handcap_right"].read_bytes(), "is not a MANO pickle"),
        "wrong keys": (pickle.dumps({"v_template": np.zeros((200, 3))}), "missing keys"),
        "not a dict": (pickle.dumps([1, 2, 3]), "holds a list"),
    }
    for case, (payload, message) in cases.items():
        path = tmp_path / "MANO_RIGHT.pkl"
        path.write_bytes(payload)
        with pytest.raises(CaptureError, match=message) as err:
            load.load_model("right", path)
        assert "MANO_RIGHT.pkl" in str(err.value), case
    with pytest.raises(CaptureError, match="not found"):
        load.load_model("right", tmp_path / "missing" / "MANO_RIGHT.pkl")


def test_wrong_side_is_refused(assets, tmp_path):
    with pytest.raises(CaptureError, match="handcap_MANO_RIGHT.pkl is the right hand's MANO file"):
        load.load_model("left", assets["handcap_MANO_RIGHT"])
    # no side in the name: the geometry decides
    anon = tmp_path / "hand.pkl"
    shutil.copy(assets["handcap_MANO_LEFT"], anon)
    with pytest.raises(CaptureError, match="hand.pkl holds a left hand"):
        load.load_model("right", anon)
    assert load.load_model("left", anon).side == "left"
    # a name that lies about the side
    liar = tmp_path / "MANO_LEFT.pkl"
    shutil.copy(assets["handcap_MANO_RIGHT"], liar)
    with pytest.raises(CaptureError, match="MANO_LEFT.pkl holds a right hand"):
        load.load_model("left", liar)
    with pytest.raises(CaptureError, match="MANO_LEFT.pkl"):
        load.load_model("right", liar)


def test_forward_vertex_subset_matches_full_skinning():
    """ManoLayer(vertex_ids=...) skins only those vertices, equal to the full mesh's rows, with and without
    pose correctives; the joints and tips are those of the full forward."""
    import torch

    from core.hand.load import load_model
    from core.hand.mano import ManoLayer

    layer = ManoLayer(load_model("right"), dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    b, aa, t = torch.randn(3, 10, generator=g, dtype=torch.float64) * 0.5, \
        torch.randn(3, 16, 3, generator=g, dtype=torch.float64) * 0.3, torch.randn(3, 3, generator=g, dtype=torch.float64)
    ids = torch.tensor([5, 100, 2000, 7])
    for posedirs in (False, True):
        if posedirs:
            layer.has_posedirs = True
            layer.posedirs = torch.randn(layer.posedirs.shape, generator=g, dtype=torch.float64) * 1e-3
        full = layer(b, aa[:, 0], aa[:, 1:], t)
        sub = layer(b, aa[:, 0], aa[:, 1:], t, vertex_ids=ids)
        assert torch.allclose(sub.vertices, full.vertices[:, ids], atol=1e-12)
        assert torch.allclose(sub.joints21, full.joints21, atol=1e-12)
        assert torch.allclose(layer(b, aa[:, 0], aa[:, 1:], t, with_vertices=False).joints21, full.joints21, atol=1e-12)


def test_one_rest_shape_skinning_matches_per_row_skinning(right):
    """ManoLayer skins one shared rest shape (betas expanded from one row) with a single matrix product:
    the same vertices, subset vertices, tips and gradients as skinning each row's own copy."""
    import torch

    from core.hand.mano import ManoLayer

    layer = ManoLayer(right, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    n = 7
    beta = (torch.randn(1, layer.n_betas, generator=g, dtype=torch.float64) * 0.5).requires_grad_(True)
    pose = (torch.randn(n, 45, generator=g, dtype=torch.float64) * 0.3).requires_grad_(True)
    orient = torch.randn(n, 3, generator=g, dtype=torch.float64)
    tr = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.1
    ids = torch.tensor([0, 5, 17, 300, 1000, 2000])
    for vid in (None, ids):
        shared = layer(beta.expand(n, -1), orient, pose, tr, vertex_ids=vid)
        rows = layer(beta.repeat(n, 1), orient, pose, tr, vertex_ids=vid)  # a (n, NB) copy: each row skinned
        for a, b in ((shared.vertices, rows.vertices), (shared.joints21, rows.joints21)):
            assert torch.allclose(a, b, atol=1e-12)
        ga = torch.autograd.grad(shared.vertices.sin().sum(), [beta, pose])
        gb = torch.autograd.grad(rows.vertices.sin().sum(), [beta, pose])
        for a, b in zip(ga, gb):
            assert torch.allclose(a, b, atol=1e-10)
