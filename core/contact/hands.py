"""Penetration measured on the hand mesh: one hand into the other, and a hand's fingers into each other.

The hand mesh is closed (watertight, outward faces), so a point is inside a hand where the mesh's winding
number around it is above 1/2. Distances are libigl's exact point-to-mesh distances (AABB tree) with the
fast winding number for the sign (`_signed`), metres, negative inside.

* `hand_in_hand`: per frame, the signed distance of each hand's vertices to the other hand's mesh and the
  deepest penetration either way (numpy, for metrics). `hand_in_hand_torch`: the same distances,
  differentiable with respect to both hands' vertices (for the refinement solve).
* `self_penetration`: finger-finger and finger-palm penetration of one hand on its mesh (`HandParts`).
"""
from __future__ import annotations

import dataclasses

import igl
import numpy as np
import torch

from ..errors import CaptureError
from ..hand.model import FINGERS

PART_NAMES = ("thumb", "index", "middle", "ring", "pinky", "palm")  # `HandParts` order
SEAM_M = 0.012  # `self_penetration` ignores vertices closer than this (rest pose) to the other part's seam
REACH_M = 0.02  # `hand_in_hand`: vertices farther than this from the other hand's box are not measured
_EPS2 = 1e-16  # floor under a squared distance (metres^2): a finite gradient at contact


def _f64(a) -> np.ndarray:
    a = a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)
    return np.ascontiguousarray(a, np.float64)


def _volume(verts: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume (m^3) enclosed by a triangle mesh; positive when its faces point outward."""
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return float(np.einsum("ij,ij->", v0, np.cross(v1, v2)) / 6.0)


def _outward(verts: np.ndarray, faces) -> np.ndarray:
    """faces (F, 3) int64, flipped when they enclose a negative volume (a mirrored hand's vertex order)."""
    f = np.ascontiguousarray(np.asarray(faces), np.int64)
    if f.ndim != 2 or f.shape[1] != 3 or f.size == 0:
        raise CaptureError(f"Expected hand faces as a non-empty (F, 3) array of triangles, got shape {f.shape}; "
                           "pass the hand model's faces.")
    return np.ascontiguousarray(f[:, ::-1]) if _volume(verts, f) < 0 else f


def _pair(verts_a, verts_b, faces, faces_b) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    va, vb = _f64(verts_a), _f64(verts_b)
    if va.ndim != 3 or va.shape[-1] != 3 or vb.shape[0] != va.shape[0] or vb.ndim != 3 or vb.shape[-1] != 3:
        raise CaptureError(f"Expected two hands' vertices as (T, V, 3) arrays with the same T, got {va.shape} and "
                           f"{vb.shape}; pass both hands' vertices for the same frames.")
    if len(va) == 0:
        z = np.zeros((0, 3), np.int64)
        return va, vb, z, z
    fa = _outward(va[0], faces)
    fb = _outward(vb[0], faces if faces_b is None else faces_b)
    return va, vb, fa, fb


def boxes_apart(verts_a: np.ndarray, verts_b: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """(T,) bool: frames whose axis-aligned bounding boxes of verts_a and verts_b (T, V, 3) are more than
    ``margin`` metres apart along some axis (then no vertex of one hand can be inside the other)."""
    lo_a, hi_a = verts_a.min(1), verts_a.max(1)
    lo_b, hi_b = verts_b.min(1), verts_b.max(1)
    return ((lo_a > hi_b + margin) | (lo_b > hi_a + margin)).any(-1)


def _near_box(points: np.ndarray, verts: np.ndarray, reach: float | None) -> np.ndarray:
    """(N,) bool: points within ``reach`` metres of the bounding box of verts (all when reach is None)."""
    if reach is None:
        return np.ones(len(points), bool)
    return ((points >= verts.min(0) - reach) & (points <= verts.max(0) + reach)).all(1)


def _signed(points: np.ndarray, verts: np.ndarray, faces: np.ndarray):
    """Signed distance (N,) metres (negative inside), closest face (N,) and closest point (N, 3).

    The distance is igl's exact point-triangle distance (`igl.point_mesh_squared_distance`, AABB tree),
    the sign its fast winding number (inside where > 1/2). Not `igl.signed_distance` with the fast
    winding number sign: in libigl 2.6.3 that returns magnitudes up to 0.5 % off the true distance
    (0.2 mm at 4 cm; its exact winding-number mode is twice as slow as these two calls)."""
    p = np.ascontiguousarray(points, np.float64)
    sq, i, c = igl.point_mesh_squared_distance(p, verts, faces)
    inside = igl.fast_winding_number(verts, faces, p) > 0.5
    return np.where(inside, -1.0, 1.0) * np.sqrt(sq), i, c


def _frames(va: np.ndarray, vb: np.ndarray, frames, reach: float | None) -> np.ndarray:
    """Frame indices to measure: ``frames`` (indices or a (T,) mask), else those whose boxes are close."""
    if frames is not None:
        idx = np.asarray(frames)
        return np.nonzero(idx)[0] if idx.dtype == bool else idx.astype(np.int64).reshape(-1)
    if len(va) == 0:
        return np.zeros(0, np.int64)
    return np.nonzero(~boxes_apart(va, vb, 0.0 if reach is None else reach))[0]


def hand_in_hand(verts_a, verts_b, faces, faces_b=None, reach: float | None = REACH_M, frames=None):
    """Penetration between two hands, exact, per frame.

    Args:
        verts_a, verts_b: (T, V, 3) metres, the two hands' posed vertices in one frame (numpy or torch).
        faces: (F, 3) the hand mesh's triangles (both hands; ``faces_b`` for the second hand's own). A
            hand whose faces enclose a negative volume (a left hand given the right model's faces) is
            read with them flipped.
        reach: metres; only vertices within ``reach`` of the other hand's bounding box are measured
            (the others are farther than ``reach`` from it, so outside it), and frames whose boxes are
            farther apart than ``reach`` are skipped. None: every vertex of every frame.
        frames: frame indices (K,) or a (T,) bool mask to measure (default: by ``reach``).
    Returns:
        depth_mm (T,): the deepest vertex of either hand inside the other, mm (>= 0; exact: any vertex
            inside the other hand is inside its box);
        d_a (T, V): signed distance of verts_a to hand b's mesh, metres, negative inside;
        d_b (T, Vb): of verts_b to hand a's mesh. +inf where not measured (beyond ``reach``, or a frame
            skipped: depth 0 there).
    """
    va, vb, fa, fb = _pair(verts_a, verts_b, faces, faces_b)
    d_a, d_b = np.full(va.shape[:2], np.inf), np.full(vb.shape[:2], np.inf)
    for k in _frames(va, vb, frames, reach):
        for p, q, fq, out in ((va[k], vb[k], fb, d_a), (vb[k], va[k], fa, d_b)):
            near = _near_box(p, q, reach)
            if near.any():
                out[k, near] = _signed(p[near], q, fq)[0]
    deep = np.minimum(d_a.min(1, initial=np.inf), d_b.min(1, initial=np.inf))
    return np.clip(-deep, 0.0, None) * 1000.0, d_a, d_b


def barycentric(points: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (N, 3) of points (N, 3) lying on triangles tri (N, 3, 3) (the closest
    points igl returns), clipped to >= 0 and summing to 1 (degenerate triangles: their first vertex)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    den = d00 * d11 - d01 * d01
    ok = den > 1e-30
    den = np.where(ok, den, 1.0)
    v = np.where(ok, (d11 * d20 - d01 * d21) / den, 0.0)
    w = np.where(ok, (d00 * d21 - d01 * d20) / den, 0.0)
    bc = np.clip(np.stack([1.0 - v - w, v, w], 1), 0.0, None)
    return bc / bc.sum(1, keepdims=True).clip(1e-30)


def hand_in_hand_torch(verts_a: torch.Tensor, verts_b: torch.Tensor, faces, frames=None, faces_b=None,
                       reach: float | None = REACH_M) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed distances between two hands, differentiable with respect to both hands' vertices.

    igl finds, on detached copies, each vertex's closest face of the other hand, the barycentric
    coordinates of the closest point on it, and the sign; then the closest point is rebuilt from the
    other hand's (torch) vertices, c = sum_k w_k v_k, and d = s * ||p - c||. The gradient reaches the
    query vertex and the three vertices of its closest face (the face, the weights and the sign are
    held fixed: exact to first order while the closest face stays the same).

    Args:
        verts_a, verts_b: (T, V, 3) metres; faces, faces_b, reach, frames: as `hand_in_hand`.
    Returns:
        d_a (T, V), d_b (T, Vb): metres, negative inside; +inf where not measured (constants: use them
        through a clamp such as ``relu(-d)`` or ``d.clamp(max=...)``, never multiplied by zero).
    """
    va, vb, fa, fb = _pair(verts_a, verts_b, faces, faces_b)
    idx = _frames(va, vb, frames, reach)
    outs = []
    for p_np, q_np, fq, p, q in ((va, vb, fb, verts_a, verts_b), (vb, va, fa, verts_b, verts_a)):
        rows, cols, sign, tri, bary = [], [], [], [], []
        for k in idx:
            near = np.nonzero(_near_box(p_np[k], q_np[k], reach))[0]
            if len(near) == 0:
                continue
            s, i, c = _signed(p_np[k][near], q_np[k], fq)
            rows.append(np.full(len(near), k))
            cols.append(near)
            sign.append(np.where(s < 0, -1.0, 1.0))
            tri.append(fq[i])
            bary.append(barycentric(c, q_np[k][fq[i]]))
        out = torch.full(p.shape[:2], float("inf"), dtype=p.dtype, device=p.device)
        if rows:
            kk = torch.as_tensor(np.concatenate(rows), device=p.device)
            vv = torch.as_tensor(np.concatenate(cols), device=p.device)
            tt = torch.as_tensor(np.concatenate(tri), device=p.device)  # (N, 3) vertex ids of q
            w = torch.as_tensor(np.concatenate(bary), dtype=p.dtype, device=p.device)  # (N, 3)
            s = torch.as_tensor(np.concatenate(sign), dtype=p.dtype, device=p.device)
            c = (w[..., None] * q[kk[:, None], tt]).sum(1)  # (N, 3) closest points, on q's vertices
            d = s * ((p[kk, vv] - c).square().sum(-1) + _EPS2).sqrt()
            out = out.index_put((kk, vv), d)
        outs.append(out)
    return outs[0], outs[1]


def link_hands(p: torch.Tensor, q: torch.Tensor, faces_q: torch.Tensor, ring_q: torch.Tensor,
               reach: float | None = REACH_M, band: float = 0.004):
    """Each vertex of hand p near hand q, frame by frame, tied to its closest face of q (for
    `linked_distance`): the faces around its nearest vertex of q (`core.contact.nearest`: no
    search tree per frame), kept when inside q or within ``band`` metres of it.

    Args:
        p, q: (K, V, 3) and (K, Vq, 3) metres, the two hands on the same K frames (detached).
        faces_q (F, 3) long, outward (`_outward`); ring_q (Vq, R) from `nearest.vertex_faces`.
        reach: only vertices within this of q's bounding box are tied (None: all).
    Returns:
        rows (N,), cols (N,) long: frame and vertex of p; tri (N, 3) long: q's face corners; bary (N, 3).
    """
    from .nearest import faces_around, nearest_vertices

    def within(x, y):  # (K, V) bool: x's vertices within reach of y's box, per frame
        if reach is None:
            return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return ((x >= y.amin(1)[:, None] - reach) & (x <= y.amax(1)[:, None] + reach)).all(-1)

    rows, cols = torch.nonzero(within(p, q), as_tuple=True)
    pts = p[rows, cols]
    # a point within the band of q's surface has its nearest vertex of q within band + an edge (< reach) of
    # it, so inside p's box grown by reach: the search looks only there (farther points get a farther face)
    near = nearest_vertices(pts, rows, q, 1, within(q, p))
    face, _, bary, signed = faces_around(pts, rows, q, faces_q, ring_q, near)
    keep = signed < band
    return rows[keep], cols[keep], faces_q[face[keep]], bary[keep]


def linked_distance(p: torch.Tensor, q: torch.Tensor, links) -> torch.Tensor:
    """Signed distance (K, V) metres of hand p's vertices to hand q's mesh through `link_hands`' ties, +inf
    where untied, differentiable with respect to both hands: the closest point is rebuilt on q's current
    vertices with the tie's barycentric weights, the sign is the side of that face the vertex is on now."""
    rows, cols, tri, bary = links
    out = torch.full(p.shape[:2], float("inf"), dtype=p.dtype, device=p.device)
    if len(rows) == 0:
        return out
    corners = q[rows[:, None], tri]  # (N, 3, 3)
    c = (bary[..., None].to(p.dtype) * corners).sum(1)
    diff = p[rows, cols] - c
    with torch.no_grad():
        n = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        s = torch.where((diff * n).sum(-1) < 0, -1.0, 1.0).to(p.dtype)
    return out.index_put((rows, cols), s * (diff.square().sum(-1) + _EPS2).sqrt())


# ---------------------------------------------------------------------------------------------------
# Self-penetration on the mesh.


@dataclasses.dataclass(frozen=True)
class HandParts:
    """The hand mesh cut into six closed parts (`hand_parts`), in PART_NAMES order (5 fingers, palm).

    faces[p] (Fp, 3): part p's skin faces, then its cap faces (indices >= V are the caps' centres,
        vertex V + f the centroid of finger f's seam loop); n_skin[p]: how many are skin.
    loops[f] (L,): finger f's seam loop (vertex ids, in order); members[p] (N,): vertices of part p
        that lie on no seam (the query points of part p).
    near[p][q] (N,) bool: members[p] within SEAM_M (rest pose) of part q's seam: not tested against q.
    """

    faces: tuple
    n_skin: tuple
    loops: tuple
    members: tuple
    near: tuple


def _part_of_vertex(weights: np.ndarray) -> np.ndarray:
    """(V,) 0-4 = the finger (PART_NAMES order) with the largest summed skinning weight, 5 = palm. The
    thumb's first joint (the CMC: the thenar eminence, the first metacarpal's flesh) counts as palm."""
    thumb1 = FINGERS["thumb"][0][0]
    cols = [weights[:, [j for j in FINGERS[name][0] if j != thumb1]].sum(1) for name in PART_NAMES[:5]]
    cols.append(weights[:, 0] + weights[:, thumb1])
    return np.stack(cols, 1).argmax(1)


def hand_parts(weights: np.ndarray, faces: np.ndarray, rest: np.ndarray) -> HandParts:
    """Cut the closed hand mesh into fingers and palm by skinning weights, and close each part.

    1. Each vertex goes to the finger (its three joints' weights summed) or to the palm (the wrist
       joint's weight) weighing most on it; a face is a finger's when its three vertices are that
       finger's, else it is the palm's. So fingers share no vertex, and the palm's boundary is the union
       of the fingers' seam loops.
    2. Each finger's boundary must be one loop (its seam with the palm); it is closed by a fan from the
       loop's centroid, oriented outward, and the palm by the same fans reversed.
    3. ``near``: for the seam rule of `self_penetration`, the members of each part within SEAM_M of
       another part's seam in the rest pose ``rest`` (V, 3).
    """
    faces = np.asarray(faces, np.int64)
    n_v = len(weights)
    part = _part_of_vertex(np.asarray(weights))
    fp = part[faces]
    face_part = np.where((fp == fp[:, :1]).all(1), fp[:, 0], 5)
    loops, caps = [], []
    for f in range(5):
        sub = faces[face_part == f]
        found = igl.boundary_loop_all(sub) if len(sub) else []
        if len(found) != 1:
            raise CaptureError(f"Expected the {PART_NAMES[f]} finger of the hand mesh to meet the palm along one seam "
                               f"loop, found {len(found)}; use a hand model whose skinning weights split it cleanly.")
        loop = np.asarray(found[0], np.int64)
        cap = np.stack([np.full(len(loop), n_v), np.roll(loop, -1), loop], 1)  # centre = row n_v below
        if _volume(np.concatenate([rest, rest[loop].mean(0, keepdims=True)]), np.concatenate([sub, cap])) < 0:
            cap = cap[:, ::-1]
        loops.append(loop)
        caps.append(np.where(cap == n_v, n_v + f, cap))
    all_faces = [np.concatenate([faces[face_part == f], caps[f]]) for f in range(5)]
    all_faces.append(np.concatenate([faces[face_part == 5]] + [c[:, ::-1] for c in caps]))
    n_skin = tuple(int((face_part == p).sum()) for p in range(6))
    seam = np.zeros(n_v, bool)
    seam[np.concatenate(loops)] = True
    members = []
    for p in range(6):
        used = np.zeros(n_v, bool)
        used[faces[face_part == p].ravel()] = True
        members.append(np.nonzero(used & ~seam)[0])
    near = []
    for p in range(6):
        row = []
        for q in range(6):
            seam_q = np.concatenate(loops) if q == 5 else loops[q]
            d = np.linalg.norm(rest[members[p]][:, None] - rest[seam_q][None], axis=-1).min(1)
            row.append(d < SEAM_M)
        near.append(tuple(row))
    return HandParts(tuple(np.ascontiguousarray(f) for f in all_faces), n_skin, tuple(loops), tuple(members),
                     tuple(near))


_PARTS: dict = {}


def parts_of(layer_or_model) -> HandParts:
    """`hand_parts` of a ManoLayer or HandModel (its weights, faces and template), cached per mesh."""
    w = _f64(layer_or_model.weights)
    f = np.asarray(layer_or_model.faces.cpu() if torch.is_tensor(layer_or_model.faces) else layer_or_model.faces,
                   np.int64)
    rest = _f64(layer_or_model.v_template)
    key = hash((w.tobytes(), f.tobytes(), rest.tobytes()))
    if key not in _PARTS:
        _PARTS[key] = hand_parts(w, f, rest)
    return _PARTS[key]


def self_penetration_pairs(layer_or_model, verts, palm: bool = True) -> np.ndarray:
    """Penetration of each part into each other part of one hand, on the mesh, per frame.

    For part q (closed: skin plus caps, `hand_parts`) and every other part p, the vertices of p inside q
    (fast winding number > 1/2) count with their exact distance to q's closed mesh, except:
    1. seam rule: vertices within SEAM_M (12 mm) of q's seam in the rest pose (for the palm, of any
       finger's seam) are not tested against q: around a seam, skinning folds the skin of two adjoining
       parts into each other when a joint bends (the knuckle's crease), which is not two fingers meeting;
    2. cap rule: a vertex inside q whose nearest point of q lies on a cap is not counted: the caps are
       not skin, only where q meets the palm.
    Vertices outside q's bounding box are skipped (they cannot be inside). About 12 ms a frame (2 cores).

    Args:
        layer_or_model: the hand's ManoLayer or HandModel (weights, faces, template).
        verts: (T, V, 3) metres, the posed vertices (numpy or torch).
        palm: also measure fingers into the palm and the palm into fingers (else fingers only).
    Returns:
        (T, 6, 6) mm >= 0: [t, p, q] = the deepest vertex of part p inside part q (PART_NAMES order:
        thumb, index, middle, ring, pinky, palm); 0 on the diagonal.
    """
    parts = parts_of(layer_or_model)
    v = _f64(verts)
    if v.ndim != 3 or v.shape[-1] != 3:
        raise CaptureError(f"Expected hand vertices as a (T, V, 3) array, got shape {v.shape}; pass the posed mesh "
                           "vertices (ManoLayer with with_vertices=True).")
    out = np.zeros((len(v), 6, 6))
    n_v = v.shape[1]
    used = [np.unique(f[f < n_v]) for f in parts.faces]
    queries = []  # per part q: (query vertex ids, their part)
    for q in range(6 if palm else 5):
        ids = [(parts.members[p][~parts.near[p][q]], p) for p in range(6 if palm else 5) if p != q]
        queries.append((np.concatenate([i for i, _ in ids]), np.concatenate([np.full(len(i), p) for i, p in ids])))
    for t in range(len(v)):
        ext = np.concatenate([v[t], np.stack([v[t][lp].mean(0) for lp in parts.loops])])
        for q, (ids, owner) in enumerate(queries):
            lo, hi = v[t][used[q]].min(0), v[t][used[q]].max(0)
            pts = v[t][ids]
            inbox = ((pts >= lo) & (pts <= hi)).all(1)
            if not inbox.any():
                continue
            pts, who = np.ascontiguousarray(pts[inbox]), owner[inbox]
            inside = igl.fast_winding_number(ext, parts.faces[q], pts) > 0.5
            if not inside.any():
                continue
            sq, i, _ = igl.point_mesh_squared_distance(np.ascontiguousarray(pts[inside]), ext, parts.faces[q])
            skin = i < parts.n_skin[q]
            np.maximum.at(out[t, :, q], who[inside][skin], np.sqrt(sq[skin]) * 1000.0)
    return out


def self_penetration(layer_or_model, verts, palm: bool = True) -> np.ndarray:
    """Deepest finger-finger (and, with ``palm``, finger-palm) penetration of one hand per frame, (T,) mm,
    measured on the mesh (`self_penetration_pairs`). verts (T, V, 3) metres, numpy or torch."""
    return self_penetration_pairs(layer_or_model, verts, palm).max((1, 2), initial=0.0)
