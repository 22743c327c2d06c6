"""Penetration on the hand mesh (core.contact.hands) and the contact metrics (core.contact.metrics), on
scenes built here with known answers: two hands pushed through each other by a known distance, finger
poses that cross or do not, overlapping spheres and boxes with analytic intersection volumes."""
from __future__ import annotations

import igl
import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from core.contact import hands, metrics
from core.errors import CaptureError
from core.hand.load import load_model
from core.hand.mano import ManoLayer
from core.hand.model import FINGERS
from core.solve import collide, limits

PALMAR = np.array([0.0, -1.0, 0.0])  # the rest hands' palms face -y (a fist moves the fingertips that way)


@pytest.fixture(scope="module")
def right():
    return load_model("right")


@pytest.fixture(scope="module")
def left():
    return load_model("left")


def _facing(right, left, push_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The rest right hand and the left model facing it palm to palm, pushed ``push_mm`` into it (< 0: a
    gap): the left hand is the right one mirrored across a plane parallel to the palm, placed so that the
    right hand's most palmar vertex (the thumb's pad) and its mirror image are ``push_mm`` apart, inside."""
    v = right.v_template.astype(np.float64)
    c = (v @ PALMAR).max() - push_mm / 2000.0  # mirror plane: p . PALMAR = c
    turn = np.diag([-1.0, -1.0, 1.0])  # the left model (x mirrored) turned 180 deg about z ...
    b = left.v_template.astype(np.float64) @ turn.T + 2 * c * PALMAR  # ... and moved: the mirror image
    assert np.allclose(b, v - 2 * ((v @ PALMAR) - c)[:, None] * PALMAR, atol=1e-9)
    return v, b


def _point_mesh_distance(p: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> float:
    """Brute force: the distance from p (3,) to the nearest triangle (Ericson, Real-Time Collision
    Detection 5.1.5, clamped barycentric regions), independent of igl's tree."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp, cp = p - b, p - c
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    den = np.where(np.abs(va + vb + vc) > 1e-30, va + vb + vc, 1e-30)
    q = a + ab * (vb / den)[:, None] + ac * (vc / den)[:, None]  # inside the face
    edge = lambda o, e, t: o + e * np.clip(t, 0, 1)[:, None]  # noqa: E731
    t_ab = d1 / np.maximum(d1 - d3, 1e-30)
    t_ac = d2 / np.maximum(d2 - d6, 1e-30)
    t_bc = (d4 - d3) / np.maximum((d4 - d3) + (d5 - d6), 1e-30)
    q = np.where(((vc <= 0) & (d1 >= 0) & (d3 <= 0))[:, None], edge(a, ab, t_ab), q)
    q = np.where(((vb <= 0) & (d2 >= 0) & (d6 <= 0))[:, None], edge(a, ac, t_ac), q)
    q = np.where(((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0))[:, None], edge(b, c - b, t_bc), q)
    q = np.where(((d1 <= 0) & (d2 <= 0))[:, None], a, q)
    q = np.where(((d3 >= 0) & (d4 <= d3))[:, None], b, q)
    q = np.where(((d6 >= 0) & (d5 <= d6))[:, None], c, q)
    return float(np.linalg.norm(q - p, axis=1).min())


@pytest.mark.parametrize("push_mm", [1.0, 3.0, 6.0])
def test_hands_pushed_through_each_other(right, left, push_mm):
    """Depth within [0.9, 1] x the push: the deepest vertex is the mirror image of the contact point,
    ``push`` along the normal from the other hand's surface; the thumb pad's curvature brings the nearest
    surface point a little closer (0.935 x measured). Both ways agree (mirror symmetry) and the distances
    match a brute-force point-triangle search with an exact winding-number sign."""
    a, b = _facing(right, left, push_mm)
    depth, d_a, d_b = hands.hand_in_hand(a[None], b[None], right.faces, faces_b=left.faces)
    assert 0.9 * push_mm <= depth[0] <= push_mm + 1e-6, depth
    assert abs(d_a.min() - d_b.min()) < 1e-9
    b_faces = np.ascontiguousarray(left.faces)
    for k in [int(np.argmin(d_a[0]))] + list(np.nonzero(np.isfinite(d_a[0]))[0][::97]):
        ref = _point_mesh_distance(a[k], b, b_faces)
        sign = -1.0 if igl.winding_number(b, b_faces, a[k : k + 1])[0] > 0.5 else 1.0
        assert abs(d_a[0, k] - sign * ref) < 1e-9, (k, d_a[0, k], sign * ref)
    # The right model's faces for the mirrored hand (inward then) are flipped by the enclosed volume's sign.
    same, _, _ = hands.hand_in_hand(a[None], b[None], right.faces)
    assert same[0] == pytest.approx(depth[0], abs=1e-9)


def test_hands_apart(right, left):
    a, b = _facing(right, left, -2.0)  # a 2 mm gap
    depth, d_a, _ = hands.hand_in_hand(a[None], b[None], right.faces, faces_b=left.faces)
    assert depth[0] == 0.0
    assert 0.0 < d_a.min() <= 0.002 + 1e-9
    far = b + np.array([0.0, 0.0, 0.5])  # half a metre away: boxes apart, the frame is skipped
    depth, d_a, d_b = hands.hand_in_hand(np.stack([a, a]), np.stack([b, far]), right.faces, faces_b=left.faces)
    assert depth[1] == 0.0 and np.isinf(d_a[1]).all() and np.isinf(d_b[1]).all()
    _, d_all, _ = hands.hand_in_hand(np.stack([a, a]), np.stack([b, far]), right.faces, faces_b=left.faces, reach=None,
                                     frames=[0, 1])
    assert np.isfinite(d_all).all() and d_all[1].min() > 0.3
    with pytest.raises(CaptureError):
        hands.hand_in_hand(a, b, right.faces)


def test_torch_distances_carry_the_gradient_to_both_hands(right, left):
    a_np, b_np = _facing(right, left, 4.0)
    a = torch.tensor(a_np[None], requires_grad=True)
    b = torch.tensor(b_np[None], requires_grad=True)
    d_a, d_b = hands.hand_in_hand_torch(a, b, right.faces, faces_b=left.faces)
    _, n_a, n_b = hands.hand_in_hand(a_np[None], b_np[None], right.faces, faces_b=left.faces)
    fin = np.isfinite(n_a)
    assert np.array_equal(fin, torch.isfinite(d_a).numpy())
    assert np.abs(d_a.detach().numpy()[fin] - n_a[fin]).max() < 1e-9  # the 1e-16 m^2 floor under the root
    pen = torch.relu(-d_a).square().sum() + torch.relu(-d_b).square().sum()
    pen.backward()
    assert a.grad.abs().max() > 0 and b.grad.abs().max() > 0  # both hands get a gradient
    # Finite differences of the numpy measure, on b's vertex with the largest gradient.
    k = int(b.grad[0].norm(dim=-1).argmax())

    def cost(bb):
        _, x, y = hands.hand_in_hand(a_np[None], bb[None], right.faces, faces_b=left.faces)
        return np.square(np.minimum(x, 0)).sum() + np.square(np.minimum(y, 0)).sum()

    for ax in range(3):
        e = np.zeros_like(b_np)
        e[k, ax] = 1e-7
        fd = (cost(b_np + e) - cost(b_np - e)) / 2e-7
        assert abs(fd - b.grad[0, k, ax].item()) < 1e-3 * abs(b.grad[0, k]).max().item() + 1e-9
    # Moving hand a down its gradient takes it out of hand b.
    before = hands.hand_in_hand(a_np[None], b_np[None], right.faces, faces_b=left.faces)[0][0]
    step = 1e-3 / a.grad.abs().max().item()
    depths = [hands.hand_in_hand((a - s * step * a.grad).detach().numpy(), b_np[None], right.faces,
                                 faces_b=left.faces)[0][0] for s in (1, 2, 3)]
    assert before > depths[0] > depths[1] > depths[2]


# ---------------------------------------------------------------------------------------------------
# Self-penetration on the mesh.


@pytest.fixture(scope="module", params=["right", "left"])
def layer(request):
    return ManoLayer(load_model(request.param), dtype=torch.float64)


def _pose(layer, angles):
    """Vertices (B, V, 3) and local rotations of finger joint angles (B, 15, 3) rad, identity orient."""
    betas = torch.zeros(angles.shape[0], layer.n_betas, dtype=angles.dtype)
    eye = torch.eye(3, dtype=angles.dtype).expand(angles.shape[0], 1, 3, 3)
    rot = torch.cat([eye, limits.angles_to_rotmats(layer, angles, betas)], 1)
    with torch.no_grad():
        return layer(betas, None, None, None, rotmats=rot).vertices, rot


def _capsule_mm(layer, rot):
    betas = torch.zeros(1, layer.n_betas, dtype=rot.dtype)
    with torch.no_grad():
        j = layer(betas.expand(len(rot), -1), None, None, None, with_vertices=False, rotmats=rot).joints21
        return collide.penetration_depth(j, collide.hand_capsules(layer, betas)).numpy() * 1000.0


@pytest.mark.parametrize("push_mm", [1.0, 4.0, 8.0])
def test_linked_distances_equal_the_exact_ones(right, left, push_mm):
    """The refinement's hand-hand ties (`link_hands` + `linked_distance`: nearest vertex, its one-ring,
    batched over frames) give libigl's exact signed distances for every vertex inside the other hand or
    within the band of it, both ways, and carry a gradient to both hands."""
    from core.contact.nearest import vertex_faces

    a_np, b_np = _facing(right, left, push_mm)
    _, n_a, n_b = hands.hand_in_hand(a_np[None], b_np[None], right.faces, faces_b=left.faces)
    a = torch.tensor(a_np[None], requires_grad=True)
    b = torch.tensor(b_np[None], requires_grad=True)
    for p, q, fq, exact in ((a, b, left.faces, n_a), (b, a, right.faces, n_b)):
        faces = torch.as_tensor(hands._outward(q[0].detach().numpy(), fq))
        ring = torch.as_tensor(vertex_faces(faces.numpy(), q.shape[1]))
        links = hands.link_hands(p.detach(), q.detach(), faces, ring, band=0.004)
        d = hands.linked_distance(p, q, links).detach().numpy()[0]
        want = exact[0] < 0.004
        assert (exact[0] < 0).sum() > 0
        assert np.array_equal(np.isfinite(d), want)  # tied: exactly the vertices inside or within the band
        np.testing.assert_allclose(d[want], exact[0][want], atol=1e-7)
    d_a = hands.linked_distance(a, b, hands.link_hands(a.detach(), b.detach(), torch.as_tensor(
        hands._outward(b_np, left.faces)), torch.as_tensor(vertex_faces(hands._outward(b_np, left.faces), b.shape[1]))))
    torch.relu(-d_a).square().sum().backward()
    assert a.grad.abs().max() > 0 and b.grad.abs().max() > 0


def test_parts_are_closed(layer):
    parts = hands.parts_of(layer)
    n_v = layer.v_template.shape[0]
    assert sum(parts.n_skin) == layer.faces.shape[0]
    rest = np.concatenate([layer.v_template.numpy(), np.zeros((5, 3))])
    for k, lp in enumerate(parts.loops):
        rest[n_v + k] = rest[lp].mean(0)
    for f in parts.faces:
        e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1)
        _, count = np.unique(e, axis=0, return_counts=True)
        assert (count == 2).all()  # every edge shared by two faces: closed
        assert hands._volume(rest, f) > 0  # outward


def test_self_penetration_rest_and_fists(layer):
    """The flat hand and fists with the thumb out of the way: nothing inside anything (the tightest fist's
    pinky pad touches the palm: under 1 mm)."""
    ang = torch.zeros(4, 15, 3, dtype=torch.float64)
    for row, (mcp, pip, dip) in enumerate([(0, 0, 0), (70, 100, 70), (85, 100, 70), (90, 110, 90)], start=0):
        for name in ("index", "middle", "ring", "pinky"):
            j1, j2, j3 = FINGERS[name][0]
            ang[row, j1 - 1, 0], ang[row, j2 - 1, 0], ang[row, j3 - 1, 0] = np.radians([mcp, pip, dip])
    v, rot = _pose(layer, ang)
    mesh = hands.self_penetration(layer, v)
    assert mesh[0] == 0.0
    assert (mesh < 1.0).all(), mesh
    assert (_capsule_mm(layer, rot) == 0).all()


def test_self_penetration_finger_pushed_into_the_next(layer):
    """The index abducted into the middle finger (limit: 30 deg, but the rest fingers touch): 0 at 8 deg,
    then deeper with every step up to the finger's half-thickness (~8 mm at 16 deg, where the max-depth
    measure saturates: the deepest vertex is then as deep as a finger is thick), > 2 mm from 12 deg; only
    the index-middle pair; the capsules agree within 1.5 mm over the growing part."""
    degs = [8, 10, 12, 14, 16]
    ang = torch.zeros(len(degs), 15, 3, dtype=torch.float64)
    ang[:, 0, 1] = -torch.deg2rad(torch.tensor(degs, dtype=torch.float64))  # index MCP, towards the middle
    v, rot = _pose(layer, ang)
    pairs = hands.self_penetration_pairs(layer, v)
    mesh = pairs.max((1, 2))
    assert mesh[0] == 0.0
    assert (np.diff(mesh) > 0.5).all(), mesh
    assert (mesh[2:] > 2.0).all() and mesh[-1] > 6.0, mesh
    others = pairs.copy()
    others[:, 1, 2] = others[:, 2, 1] = 0
    assert others.max() < 0.5
    assert np.abs(mesh - _capsule_mm(layer, rot)).max() < 1.5


def test_self_penetration_agrees_with_capsules_on_sampled_poses(layer):
    """Poses sampled inside the joint limits (random independent angles, so some cross fingers): where the
    capsules find no overlap, no finger is inside another on the mesh (< 1 mm); the mesh's finger-finger
    figure > 2 mm only where the capsules also say > 2 mm (the capsules, rounder than a finger's flat
    sides, flag ~15 % more frames). The palm pairs are not asserted here: this open model's thumb enters
    the palm at CMC flexion >= ~30 deg (reported in BENCHMARKS)."""
    rot = limits.sample_poses(layer, 120, torch.Generator().manual_seed(0),
                              betas=torch.zeros(120, layer.n_betas, dtype=torch.float64))
    betas = torch.zeros(120, layer.n_betas, dtype=torch.float64)
    with torch.no_grad():
        v = layer(betas, None, None, None, rotmats=rot).vertices
    fingers = hands.self_penetration_pairs(layer, v)[:, :5, :5].max((1, 2))
    caps = _capsule_mm(layer, rot)
    assert (caps == 0).sum() >= 30
    assert fingers[caps == 0].max() < 1.0
    assert ((fingers > 2.0) & (caps <= 2.0)).sum() <= 1
    assert (fingers > 2.0).sum() >= 0.7 * (caps > 2.0).sum()


# ---------------------------------------------------------------------------------------------------
# Metrics.


def _sphere(r: float, centre, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """A triangulated sphere (convex hull of a Fibonacci point set), faces outward."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    th = np.pi * (1 + 5**0.5) * i
    p = np.stack([np.sqrt(1 - z * z) * np.cos(th), np.sqrt(1 - z * z) * np.sin(th), z], 1)
    f = ConvexHull(p).simplices
    flip = np.einsum("ij,ij->i", p[f[:, 0]], np.cross(p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]])) < 0
    f[flip] = f[flip][:, ::-1]
    return p * r + np.asarray(centre, float), f


def _box(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])], float)
    f = ConvexHull(v).simplices  # triangles of the box's six faces
    c = v.mean(0)
    flip = np.einsum("ij,ij->i", v[f[:, 0]] - c, np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])) < 0
    f[flip] = f[flip][:, ::-1]
    return v, f


def test_intersection_volume_analytic():
    """Two 3 cm spheres 5 / 4 / 2 cm apart: the lens volume pi (4R + d)(2R - d)^2 / 12 within 3 % at 2 mm
    voxels (measured: +2.3 % / +0.3 % / +0.2 %); two 4 cm boxes overlapping in a 2 cm cube: 8 cm^3 exactly
    (the grid fits); inward faces count the same; apart: 0."""
    r = 0.03
    for d in (0.05, 0.04, 0.02):
        a, fa = _sphere(r, [0, 0, 0])
        b, fb = _sphere(r, [d, 0, 0])
        lens = np.pi * (4 * r + d) * (2 * r - d) ** 2 / 12 * 1e6
        assert abs(metrics.intersection_volume(a, fa, b, fb) / lens - 1) < 0.03
    a, fa = _box([0, 0, 0], [0.04, 0.04, 0.04])
    b, fb = _box([0.02, 0.02, 0.02], [0.06, 0.06, 0.06])
    assert metrics.intersection_volume(a, fa, b, fb) == pytest.approx(8.0, abs=1e-9)
    assert metrics.intersection_volume(a, fa[:, ::-1], b, fb) == pytest.approx(8.0, abs=1e-9)
    assert metrics.intersection_volume(a, fa, b + 0.05, fb) == 0.0
    frames = metrics.intersection_volume_frames(np.stack([a, a + 0.1]), fa, b, fb)
    assert frames == pytest.approx([8.0, 0.0], abs=1e-9)
    per_frame = metrics.intersection_volume_frames(np.stack([a, a]), fa, np.stack([b, b + 0.01]), fb)
    assert per_frame == pytest.approx([8.0, 1.0], abs=1e-9)
    with pytest.raises(CaptureError):
        metrics.intersection_volume(a, fa, np.zeros((0, 3)), fb)


def test_intersection_volume_of_two_hands(right, left):
    """The hands pushed 6 mm through each other share a small volume; the same pair 2 mm apart none."""
    a, b = _facing(right, left, 6.0)
    vol = metrics.intersection_volume(a, right.faces, b, left.faces)
    assert 0.0 < vol < 2.0
    a, b = _facing(right, left, -2.0)
    assert metrics.intersection_volume(a, right.faces, b, left.faces) == 0.0


def test_penetration_stats():
    d = np.array([[-0.003, -0.001, 0.002, np.inf], [0.001, 0.0, 0.5, np.inf]])
    s = metrics.penetration_stats(d)
    assert s["max_mm"] == pytest.approx([3.0, 0.0])
    assert s["mean_mm"] == pytest.approx([2.0, 0.0])


def test_contact_recall():
    true = np.array([[0.0, 0.001, 0.02, -0.0015, 0.05],
                     [0.002, 0.03, 0.0, 0.0, np.nan]])  # 6 touching in the truth (|d| <= 2 mm)
    pred = np.array([[0.0005, 0.004, 0.0, -0.002, 0.05],
                     [-0.001, 0.0, 0.0025, 0.0, 0.0]])  # of those, 4 touch: (0,0) (0,3) (1,0) (1,3)
    assert metrics.contact_recall(true, pred) == pytest.approx(4 / 6)
    assert metrics.contact_recall(true, pred, touch_mm=5.0) == pytest.approx(1.0)
    assert np.isnan(metrics.contact_recall(np.full((2, 5), 0.1), pred))


def test_pose_reprojection_and_jitter():
    rng = np.random.default_rng(0)
    j = rng.normal(0, 0.03, (10, 21, 3)) + np.array([0, 0, 0.5])
    moved = j + np.array([0.003, 0.004, 0.0])  # 5 mm sideways
    assert metrics.pose_change_mm(j, moved) == pytest.approx(5.0)
    K = np.array([[1000.0, 0, 320], [0, 1000.0, 240], [0, 0, 1]])
    shift = j.copy()
    shift[..., :2] += shift[..., 2:3] * np.array([2.0, 0.0]) / 1000.0  # 2 px to the right at any depth
    assert metrics.reprojection_change_px(j, shift, K) == pytest.approx(2.0)
    assert metrics.reprojection_change_px(j, shift, np.repeat(K[None], 10, 0)) == pytest.approx(2.0)
    t = np.arange(10.0)[:, None, None]
    smooth = np.zeros((10, 21, 3)) + t * 0.001  # constant velocity: no acceleration
    assert metrics.jitter(smooth) == pytest.approx(0.0)
    shake = smooth.copy()
    shake[::2, 1:, 0] += 0.001  # every other frame 1 mm off: |a| = 2 mm/frame^2 on the 20 non-root joints
    assert metrics.jitter(shake) == pytest.approx(2.0 * 20 / 21)
