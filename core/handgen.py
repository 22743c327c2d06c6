"""The project's own open hand model in MANO's format ("handcap-open"), generated from code.

The official MANO model cannot be shipped, so this module builds a right hand from an anthropometric
skeleton (pure numpy/scipy, deterministic) and mirrors it for the left:

1. a 16-joint skeleton in MANO's joint order (`core.hand_model.MANO_JOINTS`);
2. an implicit surface (smooth union of tapered capsules along the finger bones, a rounded palm slab
   with thenar / hypothenar pads and knuckles, and a short wrist stump);
3. a hand-made quad cage of the same topology (palm tube, four finger tubes joined by crotch triangles,
   the thumb tube on a hole in the palm's radial side, capped tips and wrist), placed on the surface by
   ray casts, subdivided once (Catmull-Clark), projected onto the surface, relaxed, triangulated:
   a closed, manifold, outward-oriented mesh of 2,076 vertices and 4,148 triangles;
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
import scipy.sparse as sp

from .hand_model import MANO_PARENTS, N_JOINTS

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
_TO_MODEL = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # (u, w, h) -> (x, y, z)


def _unit(v: np.ndarray) -> np.ndarray:
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
    axis = _unit(np.cross(dirs[0], dirs[2]))
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


def _palm_centre_h(u, w):
    """Height (mm) of the palm slab's mid-surface: a slight transverse arch, lower toward the web."""
    return np.interp(u, [0.0, 60.0, 100.0], [0.0, -0.5, -3.5]) + 2.5 * (1.0 - np.clip(w / 42.0, -1, 1) ** 2)


def _palm_half_thickness(u):
    return np.interp(u, [0.0, 45.0, 84.0, 104.0], [16.0, 14.0, 12.5, 6.0])


def _slab_sdf(p):
    u, w, h = p[:, 0], p[:, 1], p[:, 2]
    d2 = _polygon_sdf(p[:, :2], _PALM_OUTLINE)
    t = _palm_half_thickness(u)
    r = np.minimum(8.0, t)
    dh = np.abs(h - _palm_centre_h(u, w)) - t
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


def _palm_sdf(p):
    """The palm without the thenar: slab, wrist stump, hypothenar pad, knuckles (mm)."""
    d = _smin(_slab_sdf(p), _wrist_sdf(p), 12.0)
    d = _smin(d, _round_cone(p, np.array([14.0, -29.0, -5.0]), np.array([64.0, -35.0, -4.0]), 10.5, 9.0), 8.0)
    for name in FINGER_ORDER:
        c = CHAINS[name]
        centre = c["pts"][0] + np.array([-4.0, 0.0, 2.0])
        d = _smin(d, np.linalg.norm(p - centre, axis=1) - (c["radii"][0] + 0.8), 4.0)
    return d


def _thenar_sdf(p):
    return _round_cone(p, np.array([13.0, 13.0, -8.0]), np.array([46.0, 31.0, -14.0]), 12.5, 9.5)


def _chain_sdf(p, name):
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
    palm = _smin(_palm_sdf(p), _thenar_sdf(p), 10.0)
    d = palm
    for name in FINGER_ORDER:
        d = np.minimum(d, _smin(palm, _chain_sdf(p, name), 7.0))
    if with_thumb:
        d = np.minimum(d, _smin(palm, _chain_sdf(p, "thumb"), 9.0))
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
        org = np.c_[org_u, np.full(26, wc), _palm_centre_h(org_u, np.full(26, wc))]
        rings.append(add(_ray_exit(_palm_sdf, org, _unit(dirs))))

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
        direction = -_unit(ca["dirs"][0] + cb["dirs"][0])
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
            cur = add(_ring_rays(lambda q: _chain_sdf(q, name), centre, a, angles))
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


# ---------------------------------------------------------------------------------------------
# 5. MANO arrays on the mesh (design frame, mm).
# ---------------------------------------------------------------------------------------------
def _chain_of_joint():
    """joint id -> (chain name, index 0..2 within the chain); the wrist is absent."""
    return {j: (name, k) for name, c in CHAINS.items() for k, j in enumerate(c["ids"])}


def _hard_labels(verts):
    """Joint (V,) whose bone each vertex lies on: nearest body part, then position along its chain."""
    names = list(CHAINS)
    parts = np.stack([_palm_sdf(verts)] + [_chain_sdf(verts, n) for n in names] + [_thenar_sdf(verts)])
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
            axis = _unit(c["dirs"][k] + c["dirs"][max(k - 1, 0)])
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
    sd[:, 2, 9] = 0.06 * w_palm * (h - np.where(u > 0, _palm_centre_h(u, wl), 0.0))
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
    """The right hand's arrays (npz keys of `core.hand_model`, model frame, metres, float32)."""
    verts, tris, _ = build_mesh()
    w0 = skinning_weights(verts, tris, np.zeros(0, np.int64))
    tips = _tip_vertices(verts, w0)
    w = skinning_weights(verts, tris, tips)
    v32 = (verts @ _TO_MODEL.T / 1000.0).astype(np.float32)
    # regress in design axes from the stored float32 vertices (_TO_MODEL only permutes and flips signs)
    reg = joint_regressor(v32.astype(np.float64) @ _TO_MODEL, design_joints() / 1000.0)
    sd = np.einsum("vcb,dc->vdb", shape_directions(verts, w), _TO_MODEL) / 1000.0  # (V,3,B): M @ s
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


def generator_id() -> str:
    """Fingerprint of this generator (hash of this file): assets made by another version are stale."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


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
    from .mano_pkl import write_mano_pickle

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = asset_paths(out_dir)
    for side, arrays in build_both().items():
        write_mano_pickle(mano_arrays(arrays), paths[f"handcap_MANO_{side.upper()}"])
        _write_npz(paths[f"handcap_{side}"], {**arrays, "generator": np.array(generator_id())})
    return paths
