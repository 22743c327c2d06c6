"""Geometry of the project's open hand ("handcap-open"): skeleton, implicit surface, quad cage, mesh.

Pure numpy, deterministic; `core.hand.gen.arrays` puts MANO's arrays on the mesh built here. Steps:

1. a 16-joint skeleton in MANO's joint order (`core.hand.model.MANO_JOINTS`), in millimetres in the
   design frame (u, w, h) = (distal, radial/thumb side, dorsal); the model frame is x = -u, y = h,
   z = w (a proper rotation, `TO_MODEL`), metres;
2. an implicit surface (smooth union of tapered capsules along the finger bones, a rounded palm slab
   with thenar / hypothenar pads and knuckles, and a short wrist stump);
3. a hand-made quad cage of the same topology (palm tube, four finger tubes joined by crotch triangles,
   the thumb tube on a hole in the palm's radial side, capped tips and wrist), placed on the surface by
   ray casts, subdivided once (Catmull-Clark), projected onto the surface, relaxed, triangulated
   (`build_mesh`): a closed, manifold, outward-oriented mesh of 2,076 vertices and 4,148 triangles.
"""
from __future__ import annotations

import numpy as np

from ..model import N_JOINTS

# ---------------------------------------------------------------------------------------------
# 1. Skeleton (design frame, mm).  Bone lengths are rounded adult means of the kind reported by
# radiographic studies of hand proportions (Buryanov & Kotiuk 2010, "Proportions of hand segments",
# Int. J. Morphol. 28(3):755-758): proximal phalanx ~ 1.6-1.8 x middle phalanx, distal phalanx ~
# 0.6-0.7 x middle (plus ~4 mm of pulp beyond the bone); thumb metacarpal ~ 44-46 mm.  Overall size
# sits between adult female and male survey means (hand length ~ 18.5 cm, breadth ~ 8.5 cm).
# ---------------------------------------------------------------------------------------------
# name: MANO joint ids, MCP (u, w, h), splay in degrees toward the thumb, (P1, P2, distal+pulp) lengths,
# radii at MCP, PIP, DIP and the tip.
_FINGERS = {
    "index": ((1, 2, 3), (85.0, 26.5, -1.0), 5.0, (40.0, 23.0, 20.0), (9.2, 8.4, 7.3, 6.5)),
    "middle": ((4, 5, 6), (91.0, 5.5, 1.0), 0.5, (45.0, 27.0, 21.0), (9.4, 8.6, 7.5, 6.7)),
    "ring": ((10, 11, 12), (86.5, -15.0, 0.0), -4.5, (42.0, 26.0, 20.0), (8.9, 8.1, 7.1, 6.4)),
    "pinky": ((7, 8, 9), (77.0, -33.5, -2.5), -11.0, (33.0, 19.0, 18.0), (7.9, 7.2, 6.3, 5.7)),
}
# Thumb: CMC position; per bone (abduction from the fingers toward +w, palmar tilt) in degrees.
_THUMB = ((13, 14, 15), (20.0, 20.0, -11.0), ((42.0, 14.0), (36.0, 4.0), (30.0, 0.0)),
          (44.0, 31.0, 25.0), (12.5, 10.5, 9.5, 8.3))
FINGER_ORDER = ("index", "middle", "ring", "pinky")  # radial to ulnar; the thumb is separate
TIP_ORDER = ("thumb", "index", "middle", "ring", "pinky")  # order of tip_vertex_ids
TO_MODEL = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # (u, w, h) -> (x, y, z)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """v (3,) rotated about unit ``axis`` by ``angle`` radians (Rodrigues)."""
    return v * np.cos(angle) + np.cross(axis, v) * np.sin(angle) + axis * (axis @ v) * (1 - np.cos(angle))


def _chains() -> dict:
    """Finger chains: name -> dict(ids (3,), pts (4, 3) joints + tip, radii (4,), dirs (3, 3))."""
    out = {}
    for name, (ids, mcp, splay, lengths, radii) in _FINGERS.items():
        a = np.radians(splay)
        d = np.array([np.cos(a), np.sin(a), 0.0])
        pts = np.asarray(mcp, float) + np.outer(np.concatenate([[0.0], np.cumsum(lengths)]), d)
        out[name] = dict(ids=ids, pts=pts, radii=np.array(radii), dirs=np.tile(d, (3, 1)))
    ids, cmc, angles, lengths, radii = _THUMB
    dirs = np.array([[np.cos(np.radians(t)) * np.cos(np.radians(ab)), np.cos(np.radians(t)) * np.sin(np.radians(ab)),
                      -np.sin(np.radians(t))] for ab, t in angles])
    # Keep the thumb's rest bend in ONE plane (both joints bend about the same axis), as a hinge
    # does: then the bend plane seen in a posed thumb tells its twist exactly (core/ik.py).
    axis = unit(np.cross(dirs[0], dirs[2]))
    bends = [np.arccos(np.clip(dirs[k] @ dirs[k + 1], -1, 1)) for k in range(2)]
    dirs = np.array([_rotate(dirs[0], axis, a) for a in (0.0, bends[0], bends[0] + bends[1])])
    pts = np.vstack([cmc, cmc + np.cumsum(dirs * np.array(lengths)[:, None], axis=0)])
    out["thumb"] = dict(ids=ids, pts=pts, radii=np.array(radii), dirs=dirs)
    return out


CHAINS = _chains()


def design_joints() -> np.ndarray:
    """Rest joints (16, 3) float64, mm, design frame (u distal, w radial, h dorsal)."""
    j = np.zeros((N_JOINTS, 3))
    for c in CHAINS.values():
        j[list(c["ids"])] = c["pts"][:3]
    return j


# ---------------------------------------------------------------------------------------------
# 2. Implicit surface (negative inside), mm.
# ---------------------------------------------------------------------------------------------
def _smin(a, b, k):
    """Polynomial smooth minimum with blend width k (mm)."""
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


def _round_cone(p, a, b, r1, r2):
    """Signed distance (N,) to a capsule from a (radius r1) to b (radius r2)."""
    ba = b - a
    l2 = ba @ ba
    rr = r1 - r2
    a2 = l2 - rr * rr
    pa = p - a
    y = pa @ ba
    z = y - l2
    x2 = np.sum((pa * l2 - np.outer(y, ba)) ** 2, axis=1)
    y2, z2 = y * y * l2, z * z * l2
    k = np.sign(rr) * rr * rr * x2
    d_mid = (np.sqrt(np.maximum(x2 * a2 / l2, 0.0)) + y * rr) / l2 - r1
    d_b = np.sqrt(x2 + z2) / l2 - r2
    d_a = np.sqrt(x2 + y2) / l2 - r1
    return np.where(np.sign(z) * a2 * z2 > k, d_b, np.where(np.sign(y) * a2 * y2 < k, d_a, d_mid))


# Outer outline of the palm slab in (u, w), convex, counter-clockwise.
_PALM_OUTLINE = np.array([
    [-4.0, -31.0], [35.0, -45.5], [68.0, -46.0], [84.0, -39.5], [96.0, -18.0], [103.0, 4.0],
    [98.0, 27.5], [84.0, 38.5], [40.0, 37.5], [-4.0, 27.0],
])


def _polygon_sdf(q, poly):
    """Signed distance (N,) from 2-D points q (N, 2) to a convex polygon (M, 2), negative inside."""
    a, b = poly, np.roll(poly, -1, axis=0)
    e = b - a
    pa = q[:, None, :] - a[None]
    t = np.clip(np.sum(pa * e, -1) / np.sum(e * e, -1), 0.0, 1.0)
    dist = np.min(np.linalg.norm(pa - t[..., None] * e, axis=-1), axis=1)
    cross = e[None, :, 0] * pa[..., 1] - e[None, :, 1] * pa[..., 0]
    inside = np.all(cross > 0, axis=1)
    return np.where(inside, -dist, dist)


def palm_centre_h(u, w):
    """Height (mm) of the palm slab's mid-surface: a slight transverse arch, lower toward the web."""
    return np.interp(u, [0.0, 60.0, 100.0], [0.0, -0.5, -3.5]) + 2.5 * (1.0 - np.clip(w / 42.0, -1, 1) ** 2)


def _palm_half_thickness(u):
    return np.interp(u, [0.0, 45.0, 84.0, 104.0], [16.0, 14.0, 12.5, 6.0])


def _slab_sdf(p):
    u, w, h = p[:, 0], p[:, 1], p[:, 2]
    d2 = _polygon_sdf(p[:, :2], _PALM_OUTLINE)
    t = _palm_half_thickness(u)
    r = np.minimum(8.0, t)
    dh = np.abs(h - palm_centre_h(u, w)) - t
    qa, qb = d2 + r, dh + r
    return np.sqrt(np.maximum(qa, 0) ** 2 + np.maximum(qb, 0) ** 2) + np.minimum(np.maximum(qa, qb), 0) - r


def _wrist_sdf(p):
    u, w, h = p[:, 0], p[:, 1], p[:, 2]
    a, b = 29.0, 19.5
    e = np.sqrt(((w + 2.0) / a) ** 2 + (h / b) ** 2)
    d_side = (e - 1.0) * b
    d_end = np.maximum(-28.0 - u, u - 25.0)
    r = 8.0
    qa, qb = d_side + r, d_end + r
    return np.sqrt(np.maximum(qa, 0) ** 2 + np.maximum(qb, 0) ** 2) + np.minimum(np.maximum(qa, qb), 0) - r


def palm_sdf(p):
    """The palm without the thenar: slab, wrist stump, hypothenar pad, knuckles (mm)."""
    d = _smin(_slab_sdf(p), _wrist_sdf(p), 12.0)
    d = _smin(d, _round_cone(p, np.array([14.0, -29.0, -5.0]), np.array([64.0, -35.0, -4.0]), 10.5, 9.0), 8.0)
    for name in FINGER_ORDER:
        c = CHAINS[name]
        centre = c["pts"][0] + np.array([-4.0, 0.0, 2.0])
        d = _smin(d, np.linalg.norm(p - centre, axis=1) - (c["radii"][0] + 0.8), 4.0)
    return d


def thenar_sdf(p):
    return _round_cone(p, np.array([13.0, 13.0, -8.0]), np.array([46.0, 31.0, -14.0]), 12.5, 9.5)


def chain_sdf(p, name):
    """One finger (or the thumb): tapered capsules between its joints, joint bulges (mm)."""
    c = CHAINS[name]
    pts, r = c["pts"], c["radii"]
    tip_centre = pts[3] - c["dirs"][2] * r[3]
    ends = [pts[0], pts[1], pts[2], tip_centre]
    d = _round_cone(p, ends[0], ends[1], r[0], r[1])
    for i in (1, 2):
        d = _smin(d, _round_cone(p, ends[i], ends[i + 1], r[i], r[i + 1]), 2.0)
        d = _smin(d, np.linalg.norm(p - pts[i], axis=1) - (r[i] + 0.5), 3.0)
    return d


def _hand_sdf(p, with_thumb=True):
    """The whole hand: the palm (with thenar) smoothly joined to each digit, digits kept apart (mm)."""
    palm = _smin(palm_sdf(p), thenar_sdf(p), 10.0)
    d = palm
    for name in FINGER_ORDER:
        d = np.minimum(d, _smin(palm, chain_sdf(p, name), 7.0))
    if with_thumb:
        d = np.minimum(d, _smin(palm, chain_sdf(p, "thumb"), 9.0))
    return d


def _value_grad(f, p, eps=1e-4):
    """f (N,) and its forward-difference gradient (N, 3) at points p (N, 3), in one batched call."""
    n = len(p)
    vals = f(np.concatenate([p, p + [eps, 0, 0], p + [0, eps, 0], p + [0, 0, eps]]))
    return vals[:n], (vals[n:].reshape(3, n) - vals[:n]).T / eps


def _project(f, p, iters=12, max_step=4.0):
    """Move points onto the zero set of f by damped Newton steps along the gradient."""
    p = p.copy()
    todo = np.arange(len(p))
    for _ in range(iters):
        d, g = _value_grad(f, p[todo])
        step = d[:, None] * g / np.maximum(np.sum(g * g, axis=1, keepdims=True), 1e-12)
        n = np.linalg.norm(step, axis=1, keepdims=True)
        p[todo] -= step * np.minimum(1.0, max_step / np.maximum(n, 1e-12))
        todo = todo[np.abs(d) > 1e-7]  # converged points (|f| < 1e-7 mm before this step) stop
        if len(todo) == 0:
            break
    return p


def _ray_exit(f, origins, dirs, t_max=60.0, dt=1.0):
    """First point where each ray leaves the solid f < 0 (origins must be inside)."""
    ts = np.arange(0.0, t_max + dt, dt)
    pts = origins[:, None, :] + ts[None, :, None] * dirs[:, None, :]
    vals = f(pts.reshape(-1, 3)).reshape(len(origins), len(ts))
    first = np.argmax(vals > 0, axis=1)
    if np.any(first == 0):
        raise RuntimeError("handgen: a ray started outside the hand surface")
    lo, hi = ts[first - 1], ts[first]
    for _ in range(18):
        mid = 0.5 * (lo + hi)
        inside = f(origins + mid[:, None] * dirs) < 0
        lo, hi = np.where(inside, mid, lo), np.where(inside, hi, mid)
    return origins + (0.5 * (lo + hi))[:, None] * dirs


# ---------------------------------------------------------------------------------------------
# 3. The quad cage: palm tube, finger tubes, thumb on a hole in the palm, capped ends.
# ---------------------------------------------------------------------------------------------
_PALM_T = (0.0, 0.12, 0.24, 0.36, 0.48, 0.60, 0.72, 0.84)  # palm rings, wrist end (0) to knuckles (1)
_THUMB_HOLE_RING = 4  # the palm ring whose P0 vertex is replaced by the thumb


def _frame(a):
    """Cross-section frame of a bone with direction a: (radial r, dorsal d), r = d x a."""
    d = np.array([0.0, 0.0, 1.0]) - a[2] * a
    d = d / np.linalg.norm(d)
    return np.cross(d, a), d


def _chain_point(c, s):
    """Point and bone direction at arc length s (mm) along a chain from its first joint."""
    lengths = np.linalg.norm(np.diff(c["pts"], axis=0), axis=1)
    k = int(np.searchsorted(np.cumsum(lengths), s, side="right"))
    k = min(k, 2)
    return c["pts"][k] + (s - np.concatenate([[0.0], np.cumsum(lengths)])[k]) * c["dirs"][k], c["dirs"][k]


def _ring_rays(f, centre, a, angles):
    r, d = _frame(a)
    dirs = np.cos(angles)[:, None] * r + np.sin(angles)[:, None] * d
    return _ray_exit(f, np.tile(centre, (len(angles), 1)), dirs)


def _build_cage():
    """Quad-dominant control mesh (vertices (N, 3) mm, faces list of index tuples) and tip vertex ids."""
    verts: list = []
    faces: list = []

    def add(points):
        start = len(verts)
        verts.extend(np.atleast_2d(points))
        return list(range(start, len(verts)))

    def band(ring_a, ring_b):
        n = len(ring_a)
        faces.extend((ring_a[m], ring_a[(m + 1) % n], ring_b[(m + 1) % n], ring_b[m]) for m in range(n))

    ring8 = FINGER_ORDER
    # Palm columns: dorsal D0..D11 / palmar P0..P11 radial to ulnar, three per finger, plus two sides.
    end_w, end_u = [], []
    for name in ring8:
        c = CHAINS[name]
        for off in (0.7, 0.0, -0.7):
            end_w.append(c["pts"][0, 1] + off * c["radii"][0])
            end_u.append(c["pts"][0, 0])
    end_w, end_u = np.array(end_w), np.array(end_u)
    start_w = np.linspace(22.5, -26.5, 12)
    rings = []
    for t in _PALM_T:
        wc = (1 - t) * -2.0 + t * -4.0
        cols_u = -25.0 + t * (end_u + 25.0)
        cols_w = (1 - t) * start_w + t * end_w
        u_side = np.array([-25.0 + t * (CHAINS["index"]["pts"][0, 0] + 25.0),
                           -25.0 + t * (CHAINS["pinky"]["pts"][0, 0] + 25.0)])
        # Rays from the palm's mid-surface; ring order S_R, D0..D11, S_U, P11..P0.
        back = np.arange(11, -1, -1)
        org_u = np.concatenate([[u_side[0]], cols_u, [u_side[1]], cols_u[back]])
        dirs = np.concatenate([[[0.0, 1.0, 0.0]], np.c_[np.zeros(12), cols_w - wc, np.full(12, 13.0)],
                               [[0.0, -1.0, 0.0]], np.c_[np.zeros(12), cols_w[back] - wc, np.full(12, -13.0)]])
        org = np.c_[org_u, np.full(26, wc), palm_centre_h(org_u, np.full(26, wc))]
        rings.append(add(_ray_exit(palm_sdf, org, unit(dirs))))

    # Knuckle ring: each finger's base ring shares its dorsal and palmar vertices with the palm.
    no_thumb = lambda q: _hand_sdf(q, with_thumb=False)  # noqa: E731
    deg = np.radians
    base = {}
    for i, name in enumerate(ring8):
        c = CHAINS[name]
        angles = deg([45.0, 90.0, 135.0, 225.0, 270.0, 315.0])
        pts = _ring_rays(no_thumb, c["pts"][0], c["dirs"][0], angles)
        base[name] = add(pts)  # d0, d1, d2, p2, p1, p0
    s_r = add(_ring_rays(no_thumb, CHAINS["index"]["pts"][0], CHAINS["index"]["dirs"][0], deg([0.0])))[0]
    s_u = add(_ring_rays(no_thumb, CHAINS["pinky"]["pts"][0], CHAINS["pinky"]["dirs"][0], deg([180.0])))[0]
    crotch, crotch_s = [], {n: [] for n in ring8}
    for i in range(3):
        ca, cb = CHAINS[ring8[i]], CHAINS[ring8[i + 1]]
        start = 0.5 * (_chain_point(ca, 30.0)[0] + _chain_point(cb, 30.0)[0])
        direction = -unit(ca["dirs"][0] + cb["dirs"][0])
        p = _ray_exit(lambda q: -no_thumb(q), start[None], direction[None], t_max=40.0)[0]
        crotch.append(add(p)[0])
        for c, n in ((ca, ring8[i]), (cb, ring8[i + 1])):
            crotch_s[n].append((p - c["pts"][0]) @ c["dirs"][0])
    ring_k = [s_r]
    for name in ring8:
        ring_k += base[name][:3]
    ring_k.append(s_u)
    for name in reversed(ring8):
        ring_k += base[name][3:]  # p2, p1, p0: ulnar to radial
    rings.append(ring_k)
    for j in range(len(rings) - 1):
        band(rings[j], rings[j + 1])
    # Wrist cap: rows of quads across the stump's flat end, closed by triangles at the two sides.
    r0 = rings[0]
    rows = [r0[1:13]]
    top, bottom = np.array([verts[v] for v in r0[1:13]]), np.array([verts[v] for v in r0[14:26][::-1]])
    for frac in (0.25, 0.5, 0.75):
        row = (1 - frac) * top + frac * bottom
        row[:, 0] = -29.0
        rows.append(add(row))
    rows.append(r0[14:26][::-1])
    for ra, rb in zip(rows[:-1], rows[1:]):
        faces.extend((ra[k], ra[k + 1], rb[k + 1], rb[k]) for k in range(11))
    for side, k in ((r0[0], 0), (r0[13], 11)):
        faces.extend((side, ra[k], rb[k]) for ra, rb in zip(rows[:-1], rows[1:]))

    tips = {}

    def tube(ring0, name, stations, angles):
        c = CHAINS[name]
        prev = ring0
        for s in stations:
            centre, a = _chain_point(c, s)
            cur = add(_ring_rays(lambda q: chain_sdf(q, name), centre, a, angles))
            band(prev, cur)
            prev = cur
        tip = add(c["pts"][3])[0]
        n = len(prev)
        faces.extend((prev[m], prev[(m + 1) % n], prev[(m + 2) % n], tip) for m in range(0, n, 2))
        return tip

    finger_angles = deg(np.arange(0.0, 360.0, 45.0))
    for i, name in enumerate(ring8):
        c = CHAINS[name]
        d0, d1, d2, p2, p1, p0 = base[name]
        side_r = s_r if i == 0 else crotch[i - 1]
        side_u = s_u if i == 3 else crotch[i]
        l1, l2, l3 = np.linalg.norm(np.diff(c["pts"], axis=0), axis=1)
        s1 = max(crotch_s[name]) + 4.0
        stations = [s1, l1, l1 + 0.5 * l2, l1 + l2, l1 + l2 + 0.45 * l3, l1 + l2 + 0.8 * l3]
        tips[name] = tube([side_r, d0, d1, d2, side_u, p2, p1, p0], name, stations, finger_angles)
    for i in range(3):
        left, right = base[ring8[i]], base[ring8[i + 1]]
        faces.append((left[2], right[0], crotch[i]))  # dorsal crotch triangle: d2(i), d0(i+1), c_i
        faces.append((right[5], left[3], crotch[i]))  # palmar crotch triangle: p0(i+1), p2(i), c_i

    # Thumb: remove the four quads around P0 of the hole ring; the hole's 8-vertex border is its base.
    j = _THUMB_HOLE_RING
    col = {"S_R": 0, "P0": 25, "P1": 24}
    centre_v = rings[j][col["P0"]]
    faces = [f for f in faces if centre_v not in f]
    hole = [rings[j - 1][col["P1"]], rings[j - 1][col["P0"]], rings[j - 1][col["S_R"]], rings[j][col["S_R"]],
            rings[j + 1][col["S_R"]], rings[j + 1][col["P0"]], rings[j + 1][col["P1"]], rings[j][col["P1"]]]
    c = CHAINS["thumb"]
    l1, l2, l3 = np.linalg.norm(np.diff(c["pts"], axis=0), axis=1)
    stations = [0.72 * l1, l1, l1 + 0.5 * l2, l1 + l2, l1 + l2 + 0.45 * l3, l1 + l2 + 0.8 * l3]
    # Evenly spaced ring angles, starting and turning like the hole's border seen along the thumb.
    r, d = _frame(c["dirs"][0])
    rel = np.array([verts[v] for v in hole])
    rel = rel - rel.mean(axis=0)
    phi = np.unwrap(np.arctan2(rel @ d, rel @ r))
    sense = np.sign(phi[-1] - phi[0])
    thumb_angles = phi[0] + sense * np.radians(45.0) * np.arange(8)
    tips["thumb"] = tube(hole, "thumb", stations, thumb_angles)

    used = np.zeros(len(verts), bool)
    used[[v for f in faces for v in f]] = True
    remap = np.cumsum(used) - 1
    verts = np.array(verts)[used]
    faces = [tuple(int(remap[v]) for v in f) for f in faces]
    tip_ids = np.array([remap[tips[n]] for n in TIP_ORDER])
    return verts, faces, tip_ids


# ---------------------------------------------------------------------------------------------
# 4. Mesh operations: orientation, Catmull-Clark, relaxation, triangulation.
# ---------------------------------------------------------------------------------------------
def _orient(faces):
    """Flip polygons so every shared edge is traversed in opposite directions (flood fill)."""
    faces = [list(f) for f in faces]
    edge_faces: dict = {}
    for i, f in enumerate(faces):
        for a, b in zip(f, f[1:] + f[:1]):
            edge_faces.setdefault(frozenset((a, b)), []).append(i)
    done = np.zeros(len(faces), bool)
    for seed in range(len(faces)):
        if done[seed]:
            continue
        done[seed] = True
        queue = [seed]
        while queue:
            i = queue.pop()
            f = faces[i]
            for a, b in zip(f, f[1:] + f[:1]):
                for j in edge_faces[frozenset((a, b))]:
                    if done[j]:
                        continue
                    g = faces[j]
                    if any(x == a and y == b for x, y in zip(g, g[1:] + g[:1])):
                        faces[j] = g[::-1]
                    done[j] = True
                    queue.append(j)
    return [tuple(f) for f in faces]


def _catmull_clark(verts, faces):
    """One Catmull-Clark step on a closed polygon mesh; returns (verts, quads)."""
    n_v = len(verts)
    face_pts = np.array([verts[list(f)].mean(axis=0) for f in faces])
    edges: dict = {}
    for i, f in enumerate(faces):
        for a, b in zip(f, f[1:] + f[:1]):
            edges.setdefault((min(a, b), max(a, b)), []).append(i)
    edge_keys = sorted(edges)
    edge_id = {e: n_v + len(faces) + k for k, e in enumerate(edge_keys)}
    edge_pts = np.array([(verts[a] + verts[b] + face_pts[edges[(a, b)]].sum(axis=0)) / 4.0 for a, b in edge_keys])
    f_sum, f_cnt = np.zeros_like(verts), np.zeros(n_v)
    for i, f in enumerate(faces):
        f_sum[list(f)] += face_pts[i]
        f_cnt[list(f)] += 1
    e_sum, e_cnt = np.zeros_like(verts), np.zeros(n_v)
    for a, b in edge_keys:
        mid = 0.5 * (verts[a] + verts[b])
        e_sum[[a, b]] += mid
        e_cnt[[a, b]] += 1
    n = f_cnt[:, None]
    new_v = (f_sum / n + 2.0 * e_sum / e_cnt[:, None] + (n - 3.0) * verts) / n
    quads = []
    for i, f in enumerate(faces):
        k = len(f)
        for m in range(k):
            a, b, prev = f[m], f[(m + 1) % k], f[m - 1]
            quads.append((a, edge_id[(min(a, b), max(a, b))], n_v + i, edge_id[(min(prev, a), max(prev, a))]))
    return np.vstack([new_v, face_pts, edge_pts]), quads


def _triangulate(verts, quads):
    q = np.array(quads)
    d02 = np.linalg.norm(verts[q[:, 0]] - verts[q[:, 2]], axis=1)
    d13 = np.linalg.norm(verts[q[:, 1]] - verts[q[:, 3]], axis=1)
    use02 = (d02 <= d13)[:, None]
    t1 = np.where(use02, q[:, [0, 1, 2]], q[:, [0, 1, 3]])
    t2 = np.where(use02, q[:, [0, 2, 3]], q[:, [1, 2, 3]])
    return np.vstack([t1, t2])


def vertex_normals(verts, tris):
    """Area-weighted unit vertex normals (V, 3)."""
    fn = np.cross(verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]])
    n = np.zeros_like(verts)
    for k in range(3):
        np.add.at(n, tris[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def adjacency(n_verts, tris):
    """Symmetric vertex adjacency (V, V) scipy.sparse.csr_matrix of 0/1 from triangles."""
    import scipy.sparse as sp  # here: a capture that finds the model files current never loads scipy

    e = np.vstack([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    e = np.vstack([e, e[:, ::-1]])
    a = sp.csr_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n_verts, n_verts))
    a.data[:] = 1.0
    return a


def _relax(f, verts, tris, iters=10, rate=0.5):
    """Tangential Laplacian relaxation, re-projecting onto the surface after each step."""
    adj = adjacency(len(verts), tris)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    for _ in range(iters):
        n = vertex_normals(verts, tris)
        delta = adj @ verts / deg[:, None] - verts
        delta -= np.sum(delta * n, axis=1, keepdims=True) * n
        verts = _project(f, verts + rate * delta, iters=3)
    return verts


def signed_volume(verts, tris):
    """Enclosed volume (positive when triangles are counter-clockwise seen from outside)."""
    v0, v1, v2 = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    return float(np.sum(np.einsum("ij,ij->i", v0, np.cross(v1, v2))) / 6.0)


def build_mesh():
    """Right-hand rest mesh in the design frame: verts (V, 3) mm, tris (F, 3) int64, tip ids (5,)."""
    cage_v, cage_f, tips = _build_cage()
    cage_v = _project(_hand_sdf, cage_v)
    cage_f = _orient(cage_f)
    fan = np.array([(f[0], f[k], f[k + 1]) for f in cage_f for k in range(1, len(f) - 1)])
    cage_v = _relax(_hand_sdf, cage_v, fan, iters=6)
    verts, quads = _catmull_clark(cage_v, cage_f)
    verts = _project(_hand_sdf, verts)
    tris = _triangulate(verts, quads)
    verts = _relax(_hand_sdf, verts, tris, iters=10)
    tris = _triangulate(verts, quads)
    if signed_volume(verts, tris) < 0:
        tris = tris[:, ::-1].copy()
    return verts, tris.astype(np.int64), tips
