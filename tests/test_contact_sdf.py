"""Signed distance to meshes (issue 10 item 1): core.contact.mesh and core.contact.sdf.

Checked against analytic truth (a tessellated sphere and a box built here), against libigl's own
``signed_distance``, on the shared YCB mug and the open HOT3D mouse, and on every kind of bad mesh.
"""
from __future__ import annotations

import igl
import numpy as np
import pytest
import torch

from core.contact.mesh import TriMesh, invert_rigid, load_mesh, load_transforms, mesh_from_arrays, transform_points
from core.contact.sdf import Body, Exact, Field, signed_distance
from core.errors import CaptureError


# ---------------------------------------------------------------- meshes with analytic truth
def uv_sphere(r: float, n_lon: int, n_lat: int) -> TriMesh:
    """A closed UV sphere, 2 n_lon (n_lat - 1) triangles, wound outward; vertices exactly on the sphere."""
    th = np.pi * np.arange(1, n_lat) / n_lat
    ph = 2 * np.pi * np.arange(n_lon) / n_lon
    ring = np.stack([np.sin(th)[:, None] * np.cos(ph), np.sin(th)[:, None] * np.sin(ph),
                     np.repeat(np.cos(th)[:, None], n_lon, 1)], -1).reshape(-1, 3)
    v = np.concatenate([[[0, 0, 1]], ring, [[0, 0, -1]]]) * r
    j = np.arange(n_lon)
    jn = (j + 1) % n_lon
    faces = [np.stack([np.zeros(n_lon, int), 1 + j, 1 + jn], 1)]
    for i in range(n_lat - 2):
        a, b = 1 + i * n_lon, 1 + (i + 1) * n_lon
        faces += [np.stack([a + j, b + j, b + jn], 1), np.stack([a + j, b + jn, a + jn], 1)]
    s = len(v) - 1
    faces.append(np.stack([np.full(n_lon, s), 1 + (n_lat - 2) * n_lon + jn, 1 + (n_lat - 2) * n_lon + j], 1))
    return mesh_from_arrays(v, np.concatenate(faces), name="sphere")


def sphere_tol(r: float, n_lon: int, n_lat: int) -> float:
    """Bound on |mesh distance - sphere distance|: the mesh lies between r cos(a) and r, a = cell size."""
    a = max(np.pi / n_lat, 2 * np.pi / n_lon)
    return r * (1 - np.cos(a))


BOX_V = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
# quads wound outward (vertex index = 4 * (x > 0) + 2 * (y > 0) + (z > 0))
BOX_QUADS = np.array([[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]])


def box(h=(0.03, 0.02, 0.04), drop_quads=()) -> TriMesh:
    quads = np.delete(BOX_QUADS, list(drop_quads), 0)
    tris = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    return mesh_from_arrays(BOX_V * np.asarray(h), tris, name="box")


def box_sdf(p, h):
    q = np.abs(p) - np.asarray(h)
    return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)


def near(mesh: TriMesh, n: int, spread: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return mesh.vertices[rng.integers(0, mesh.n_vertices, n)] + rng.uniform(-spread, spread, (n, 3))


@pytest.fixture(scope="module")
def sphere():
    return uv_sphere(0.05, 96, 48)


@pytest.fixture(scope="module")
def mug(data_dir):
    return load_mesh(data_dir / "objects" / "ycb_025_mug.obj")


@pytest.fixture(scope="module")
def mug_field(mug):
    return Field.build(mug, res=128)


# ---------------------------------------------------------------- exact query
def test_sphere_distance_and_closest_points_match_analytic(sphere):
    assert sphere.closed and sphere.n_faces == 2 * 96 * 47
    tol = sphere_tol(0.05, 96, 48)
    p = np.random.default_rng(0).uniform(-0.09, 0.09, (20000, 3))
    r = np.linalg.norm(p, axis=1)
    d, c = signed_distance(sphere, p)
    assert np.abs(d - (r - 0.05)).max() <= tol
    clear = np.abs(r - 0.05) > tol
    assert clear.sum() > 19000 and np.all(np.sign(d[clear]) == np.sign(r[clear] - 0.05))
    rc = np.linalg.norm(c, axis=1)
    assert np.all((rc <= 0.05 + 1e-12) & (rc >= 0.05 - tol))          # on the tessellated surface
    np.testing.assert_allclose(np.linalg.norm(p - c, axis=1), np.abs(d), atol=1e-12)
    assert np.abs(signed_distance(sphere, c)[0]).max() < 1e-12


def test_box_distance_is_exact_and_equals_igl(sphere):
    h = (0.03, 0.02, 0.04)
    b = box(h)
    assert b.closed and b.n_faces == 12
    p = np.random.default_rng(1).uniform(-0.07, 0.07, (20000, 3))
    d, c = signed_distance(b, p)
    np.testing.assert_allclose(d, box_sdf(p, h), atol=1e-12)
    assert np.abs(box_sdf(c, h)).max() < 1e-12
    # the magnitude is libigl's exact unsigned distance and the sign its winding-number sign; libigl's own
    # signed_distance scales the distance by |1 - 2|w||, which is 1 only where w is exactly 0 or 1
    for m in (b, sphere, box(h, drop_quads=[1])):
        s, _, ci, _ = igl.signed_distance(p, m.vertices, m.faces, igl.SIGNED_DISTANCE_TYPE_FAST_WINDING_NUMBER)
        d, c = signed_distance(m, p)
        np.testing.assert_allclose(c, ci, atol=1e-15)
        np.testing.assert_allclose(np.abs(d), np.linalg.norm(p - ci, axis=1), atol=1e-15)
        np.testing.assert_array_equal(np.sign(d), np.sign(s))
        if m.closed:
            s, _, _, _ = igl.signed_distance(p, m.vertices, m.faces, igl.SIGNED_DISTANCE_TYPE_WINDING_NUMBER)
            np.testing.assert_allclose(d, s, atol=1e-12)


def test_inside_out_mesh_keeps_its_inside():
    h = (0.03, 0.02, 0.04)
    b = box(h)
    flipped = mesh_from_arrays(b.vertices, b.faces[:, ::-1])
    assert flipped.closed
    p = np.random.default_rng(15).uniform(-0.07, 0.07, (5000, 3))
    np.testing.assert_allclose(signed_distance(flipped, p)[0], box_sdf(p, h), atol=1e-12)


def test_exact_winding_sign_agrees_with_fast(mug):
    p = near(mug, 3000, 0.03)
    fast, exact = Exact(mug, "fast").query(p), Exact(mug, "exact").query(p)
    np.testing.assert_array_equal(fast[0], exact[0])


def test_fast_sign_accuracy_follows_closedness(mug):
    """Closed meshes get the cheaper hierarchy (accuracy 1: the winding number is an integer off the
    surface) and still sign every point within mm of the surface as the exact winding number does; open
    ones keep libigl's recommended 2."""
    fast = Exact(mug, "fast")
    assert mug.closed and fast.accuracy == 1.0
    p = near(mug, 4000, 0.004, seed=3)
    np.testing.assert_array_equal(np.abs(fast.winding(p)) > 0.5, np.abs(igl.winding_number(mug.vertices, mug.faces, p)) > 0.5)
    holed = mesh_from_arrays(mug.vertices, mug.faces[np.random.default_rng(4).random(mug.n_faces) > 0.05], "holed")
    assert not holed.closed and Exact(holed, "fast").accuracy == 2.0


# ---------------------------------------------------------------- gradients and the grid
def test_exact_gradient_is_the_unit_direction(sphere):
    p0 = near(sphere, 600, 0.02, seed=2).reshape(2, 300, 3)
    p = torch.tensor(p0, requires_grad=True)
    body = Body(sphere, None)
    d = body.distance(p, exact=True)
    d.sum().backward()
    dn, c = body.closest(p0)
    np.testing.assert_allclose(d.detach().numpy(), dn, atol=1e-15)
    unit = (p0 - c) / np.abs(dn)[..., None] * np.sign(dn)[..., None]
    np.testing.assert_allclose(p.grad.numpy(), unit, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(p.grad.numpy(), axis=-1), 1, atol=1e-9)
    # on a box face region the gradient is that face's normal, inside (-) and outside (+)
    pts = torch.tensor([[[0.0, 0.0, 0.05], [0.0, 0.0, 0.035], [0.0, 0.025, 0.0]]], requires_grad=True)
    Body(box(), None).distance(pts, exact=True).sum().backward()
    np.testing.assert_allclose(pts.grad.numpy()[0], [[0, 0, 1], [0, 0, 1], [0, 1, 0]], atol=1e-12)


def test_field_error_against_exact(mug, mug_field):
    """128^3 on the mug (1.23 mm voxels), points in the grid within 1 cm of the surface: measured mean 0.025 mm,
    p99 0.32 mm (BENCHMARKS.md); bounds 0.05 mm mean, 0.5 mm p99, and at most the voxel size anywhere."""
    f = mug_field
    assert f.shape == (128, 109, 100) and abs(f.pitch - (np.ptp(mug.vertices, 0).max() + 0.04) / 127) < 1e-12
    p = near(mug, 20000, 0.015, seed=3)
    d, _ = signed_distance(mug, p)
    keep = np.all((p >= f.origin) & (p <= f.upper), 1) & (np.abs(d) < 0.01)
    err = np.abs(f.lookup(torch.from_numpy(p[keep])).numpy() - d[keep])
    assert keep.sum() > 15000
    assert err.mean() < 5e-5 and np.percentile(err, 99) < 5e-4 and err.max() < f.pitch
    # float32 points give float32 distances, the same to float32 precision
    e32 = f.lookup(torch.from_numpy(p[keep]).float())
    assert e32.dtype == torch.float32 and np.abs(e32.double().numpy() - d[keep]).mean() < 6e-5


def test_field_gradient_matches_finite_differences(mug_field):
    """Inside the grid (points kept away from cell faces, where trilinear is smooth) and outside it."""
    f = mug_field
    rng = np.random.default_rng(4)
    idx = rng.integers(0, np.array(f.shape) - 1, (400, 3))
    p_in = f.origin + f.pitch * (idx + 0.5 + rng.uniform(-0.3, 0.3, (400, 3)))
    # outside: push 1 to 3 coordinates of such points beyond the box, 1 to 50 mm
    push = rng.random((400, 3)) < 0.5
    push[~push.any(1), 0] = True
    beyond = np.where(rng.random((400, 3)) < 0.5, f.origin - rng.uniform(0.001, 0.05, (400, 3)),
                      f.upper + rng.uniform(0.001, 0.05, (400, 3)))
    p_out = np.where(push, beyond, p_in)
    for p in (p_in, p_out):
        x = torch.tensor(p, requires_grad=True)
        v = f.lookup(x)
        v.sum().backward()
        h, fd = 1e-7, np.zeros_like(p)
        for k in range(3):
            e = np.zeros(3)
            e[k] = h
            fd[:, k] = (f.lookup(torch.tensor(p + e)).numpy() - f.lookup(torch.tensor(p - e)).numpy()) / (2 * h)
        assert np.isfinite(x.grad.numpy()).all()
        np.testing.assert_allclose(x.grad.numpy(), fd, atol=1e-6)
    # outside: the boundary value plus the distance to the box, positive
    q = np.clip(p_out, f.origin, f.upper)
    want = f.lookup(torch.tensor(q)).numpy() + np.linalg.norm(p_out - q, axis=1)
    np.testing.assert_allclose(f.lookup(torch.tensor(p_out)).numpy(), want, atol=1e-12)
    assert (want > 0).all()


def test_body_field_mode_and_device(mug, mug_field):
    p = torch.tensor(near(mug, 400, 0.005, seed=5).reshape(2, 200, 3))
    body = Body(mug, None, field=mug_field.to("cpu"))
    a, b = body.distance(p, exact=False), body.distance(p, exact=True)
    assert a.shape == (2, 200) and np.abs((a - b).numpy()).mean() < 1e-4
    if torch.cuda.is_available():
        g = Body(mug, None, field=mug_field.to("cuda")).distance(p.cuda(), exact=False)
        assert g.device.type == "cuda" and torch.allclose(g.cpu(), a, atol=1e-9)


# ---------------------------------------------------------------- transforms
def rigid(rng, n):
    q, _ = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    q *= np.sign(np.linalg.det(q))[:, None, None]
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3], T[:, :3, 3] = q, rng.uniform(-0.3, 0.3, (n, 3)) + [0, 0, 0.5]
    return T


def test_moved_body_equals_points_moved_by_the_inverse(mug):
    rng = np.random.default_rng(6)
    T = rigid(rng, 5)
    p_mesh = near(mug, 5 * 150, 0.02, seed=7).reshape(5, 150, 3)
    p_cam = transform_points(T, p_mesh)
    for static in (True, False):
        Tb = T[0] if static else T
        pc = transform_points(T[:1], p_mesh) if static else p_cam
        d = Body(mug, Tb).distance(torch.tensor(pc), exact=True).numpy()
        want = np.stack([signed_distance(mug, p_mesh[t])[0] for t in range(5)])
        np.testing.assert_allclose(d, want, atol=1e-9)
    dn, c_cam = Body(mug, T).closest(p_cam)
    np.testing.assert_allclose(dn, want, atol=1e-9)
    np.testing.assert_allclose(c_cam, transform_points(T, np.stack([signed_distance(mug, p_mesh[t])[1]
                                                                     for t in range(5)])), atol=1e-9)
    np.testing.assert_allclose(transform_points(invert_rigid(T), p_cam), p_mesh, atol=1e-12)


def test_gradient_flows_through_the_transform(mug):
    rng = np.random.default_rng(8)
    T = torch.tensor(rigid(rng, 3), requires_grad=True)
    p = torch.tensor(transform_points(T.detach().numpy(), near(mug, 300, 0.01, seed=9).reshape(3, 100, 3)),
                     requires_grad=True)
    for exact in (True, False):
        T.grad, p.grad = None, None
        Body(mug, T, field=None if exact else Field.build(mug, res=32)).distance(p, exact).sum().backward()
        # moving the mesh by dt moves every distance like moving the points by -dt
        np.testing.assert_allclose(T.grad[:, :3, 3].numpy(), -p.grad.sum(1).numpy(), atol=1e-9)


# ---------------------------------------------------------------- shared meshes
def test_mug_loads_closed(mug):
    assert mug.closed and mug.n_faces == 2000 and mug.vertices.shape == (996, 3)


def test_open_hot3d_mouse_signs_by_winding_number(data_dir):
    m = load_mesh(data_dir / "objects" / "hot3d_mouse.obj")
    assert not m.closed and m.n_faces == 6803
    rng = np.random.default_rng(10)
    centre = m.vertices.mean(0)
    inside = centre + rng.uniform(-0.004, 0.004, (500, 3))
    lo, hi = m.vertices.min(0), m.vertices.max(0)
    outside = rng.uniform(lo - 0.08, hi + 0.08, (5000, 3))
    gap = np.linalg.norm(np.maximum(np.maximum(lo - outside, outside - hi), 0), axis=1)
    outside = outside[gap >= 0.05][:500]                              # 5 cm or more beyond the bounding box
    d_in, _ = signed_distance(m, inside)
    d_out, _ = signed_distance(m, outside)
    assert len(outside) == 500 and (d_in < -0.005).all() and (d_out >= 0.05).all()
    ex = Exact(m, "exact")
    assert (ex.winding(inside) > 0.99).all() and (np.abs(ex.winding(outside)) < 0.01).all()


# ---------------------------------------------------------------- bad meshes
def test_open_box_keeps_correct_signs():
    h = (0.03, 0.02, 0.04)
    b = box(h, drop_quads=[1])                                        # the +x face removed: a hole
    assert not b.closed and b.n_faces == 10
    rng = np.random.default_rng(11)
    inside = rng.uniform(-0.6, 0.6, (3000, 3)) * h
    outside = rng.uniform(-3, 3, (20000, 3)) * h
    outside = outside[np.abs(outside / h).max(1) > 1.5][:3000]
    for sign in ("fast", "exact"):
        ex = Exact(b, sign)
        d_in, d_out = ex.query(inside)[0], ex.query(outside)[0]
        assert (d_in < 0).all() and (d_out > 0).all()
    # away from the hole the distance is still the box's
    far = inside[inside[:, 0] < -0.3 * h[0]]
    np.testing.assert_allclose(signed_distance(b, far)[0], box_sdf(far, h), atol=1e-12)


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg
    return msg


def test_empty_meshes_are_refused(tmp_path):
    for v, f in ((np.zeros((0, 3)), [[0, 1, 2]]), (BOX_V, np.zeros((0, 3), int)), (BOX_V, [])):
        with pytest.raises(CaptureError) as e:
            mesh_from_arrays(v, f)
        assert "empty mesh" in one_line(e)
    with pytest.raises(CaptureError) as e:
        mesh_from_arrays(np.zeros((3, 3)), [[0, 1, 2]])                # one zero-area triangle
    assert "degenerate" in one_line(e)
    (tmp_path / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(CaptureError) as e:
        load_mesh(tmp_path / "points.obj")
    assert "no faces" in one_line(e)
    (tmp_path / "empty.obj").write_text("# nothing\n")
    with pytest.raises(CaptureError) as e:
        load_mesh(tmp_path / "empty.obj")
    assert "empty mesh" in one_line(e)


def test_quads_and_ngons_are_triangulated(tmp_path):
    """An OBJ of quads and hexagons (i/t/n forms, negative indices, two objects, vt/vn/usemtl lines) gives
    the same distances as the triangle mesh of the same surfaces."""
    h = np.array([0.03, 0.02, 0.04])
    ang = np.pi / 3 * np.arange(6)
    hexv = np.concatenate([np.stack([0.02 * np.cos(ang), 0.02 * np.sin(ang), np.full(6, z)], 1) for z in (0.1, 0.14)])
    lines = ["# a box of quads and a hexagonal prism", "mtllib x.mtl", "o box"]
    lines += [f"v {x} {y} {z}" for x, y, z in BOX_V * h]
    lines += ["vt 0 0", "vn 0 0 1", "usemtl red", "s off"]
    lines += ["f " + " ".join(f"{i + 1}/1/1" for i in q) for q in BOX_QUADS[:3]]
    lines += ["f " + " ".join(f"{i - 8}//1" for i in q) for q in BOX_QUADS[3:]]      # negative
    lines += ["o prism", "g side"] + [f"v {x} {y} {z}" for x, y, z in hexv]
    lines += ["f " + " ".join(str(9 + i) for i in (5, 4, 3, 2, 1, 0)), "f " + " ".join(str(15 + i) for i in range(6))]
    lines += [f"f {9 + i} {9 + (i + 1) % 6} {15 + (i + 1) % 6} {15 + i}" for i in range(6)]
    (tmp_path / "poly.obj").write_text("\n".join(lines) + "\n")
    m = load_mesh(tmp_path / "poly.obj")
    assert m.n_faces == 12 + 2 * 4 + 12 and m.faces.shape[1] == 3 and m.closed
    # the same surfaces triangulated differently: box by its other diagonal, hexagons around a centre vertex
    v = np.concatenate([BOX_V * h, hexv, [[0, 0, 0.1], [0, 0, 0.14]]])
    tris = [BOX_QUADS[:, [0, 1, 3]], BOX_QUADS[:, [1, 2, 3]]]
    tris += [np.array([[20, 8 + (i + 1) % 6, 8 + i] for i in range(6)]),
             np.array([[21, 14 + i, 14 + (i + 1) % 6] for i in range(6)])]
    tris += [np.array([[8 + i, 8 + (i + 1) % 6, 14 + (i + 1) % 6], [8 + i, 14 + (i + 1) % 6, 14 + i]]) for i in range(6)]
    t = mesh_from_arrays(v, np.concatenate(tris))
    assert t.closed
    p = np.random.default_rng(12).uniform([-0.06, -0.06, -0.06], [0.06, 0.06, 0.18], (5000, 3))
    np.testing.assert_allclose(signed_distance(m, p)[0], signed_distance(t, p)[0], atol=1e-12)
    # a list of polygons of varying length, straight from arrays
    poly = [list(q) for q in BOX_QUADS]
    np.testing.assert_array_equal(mesh_from_arrays(BOX_V, poly).faces, mesh_from_arrays(BOX_V, BOX_QUADS).faces)


def test_million_face_mesh_is_usable(tmp_path):
    """1,000,000 faces: saved, loaded, queried exactly (analytic truth), and a grid built from it (decimated
    to 200k faces first, see core.contact.sdf)."""
    s = uv_sphere(0.05, 1000, 501)
    assert s.n_faces == 1_000_000 and s.closed
    np.savez(tmp_path / "big.npz", vertices=s.vertices, faces=s.faces)
    m = load_mesh(tmp_path / "big.npz")
    assert m.n_faces == 1_000_000 and m.closed
    rng = np.random.default_rng(13)
    u = rng.normal(size=(20000, 3))
    p = u / np.linalg.norm(u, axis=1, keepdims=True) * rng.uniform(0.035, 0.065, (20000, 1))  # within 15 mm
    d, _ = signed_distance(m, p)
    assert np.abs(d - (np.linalg.norm(p, axis=1) - 0.05)).max() <= sphere_tol(0.05, 1000, 501)
    f = Field.build(m, res=32)
    assert f.source_faces <= 200_000
    err = np.abs(f.lookup(torch.from_numpy(p)).numpy() - d)
    assert err.mean() < 0.02 * f.pitch and err.max() < 0.2 * f.pitch


def test_malformed_obj_is_refused(tmp_path):
    head = "v 0 0 0\nv 1 0 0\nv 0 1 0\n"
    cases = {"few coords": "v 1 2\n", "word": "v 1 a 3\n", "bad index": head + "f 1 x 3\n",
             "two verts": head + "f 1 2\n", "zero": head + "f 0 1 2\n", "out of range": head + "f 1 2 9\n",
             "negative out of range": head + "f -1 -2 -5\n", "coords after face": head + "f 1 2 3\nv 1 2\n"}
    for name, text in cases.items():
        (tmp_path / "bad.obj").write_text(text)
        with pytest.raises(CaptureError) as e:
            load_mesh(tmp_path / "bad.obj")
        assert "bad.obj line" in one_line(e), name
    for path, want in ((tmp_path / "missing.obj", "not found"), (tmp_path / "mesh.stl", "unknown file type")):
        with pytest.raises(CaptureError) as e:
            load_mesh(path)
        assert want in one_line(e)
    np.savez(tmp_path / "keys.npz", verts=BOX_V)
    with pytest.raises(CaptureError) as e:
        load_mesh(tmp_path / "keys.npz")
    assert "lacks" in one_line(e)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CaptureError) as e:
        load_mesh(tmp_path / "junk.npz")
    assert "cannot read" in one_line(e)


def test_bad_arrays_are_refused():
    cases = [(np.array([[0, 0, np.nan], [1, 0, 0], [0, 1, 0]]), [[0, 1, 2]], "non-finite"),
             (BOX_V, [[0, 1, 8]], "out of range"), (BOX_V, [[0, -1, 2]], "out of range"),
             (BOX_V, [[0, 1]], "at least 3"), (BOX_V, [[0, 1, 2], [3, 4]], "at least 3"),
             (BOX_V[:, :2], [[0, 1, 2]], "(V, 3)"), (BOX_V, [[0.5, 1, 2]], "whole numbers")]
    for v, f, want in cases:
        with pytest.raises(CaptureError) as e:
            mesh_from_arrays(v, f)
        assert want in one_line(e)


def test_transforms_are_checked(tmp_path):
    T = rigid(np.random.default_rng(14), 4)
    np.save(tmp_path / "t.npy", T)
    np.testing.assert_array_equal(load_transforms(tmp_path / "t.npy", 4), T)
    assert load_transforms(T[0], 7).shape == (7, 4, 4) and load_transforms(T[:1], 3).shape == (3, 4, 4)
    scaled, mirror, shear, nan, row = (T.copy() for _ in range(5))
    scaled[2, :3, :3] *= 1.01
    mirror[1, :3, 0] *= -1
    shear[0, 0, 1] += 0.01
    nan[3, 0, 3] = np.nan
    row[2, 3, 0] = 0.1
    for a, want in ((T, "4 transforms for a clip of 5"), (scaled, "orthonormal"), (mirror, "mirror"),
                    (shear, "orthonormal"), (nan, "non-finite"), (row, "last row"), (T[:, :3], "shape"),
                    (tmp_path / "none.npy", "not found")):
        with pytest.raises(CaptureError) as e:
            load_transforms(a, 5 if a is T else 4)
        assert want in one_line(e)
    (tmp_path / "junk.npy").write_text("junk")
    with pytest.raises(CaptureError) as e:
        load_transforms(tmp_path / "junk.npy", 4)
    assert "cannot read" in one_line(e)
