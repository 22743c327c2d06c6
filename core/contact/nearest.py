"""Closest points on a deforming triangle mesh (a posed hand) for points near it, batched in torch.

The hand's topology never changes, so instead of building a search tree per frame (libigl: ~5 ms of
tree building per frame and call, whatever the number of points) the closest face of a point is
searched among the faces around its nearest vertices (their one-rings, `vertex_faces`). That is the
exact closest face whenever it touches one of those vertices, which holds for points near the surface
of a mesh with even edge lengths such as the hand (checked against libigl in the tests); farther
points may get a face that is close but not the closest (their distance is then over-estimated).

* `closest_point_triangle`: Ericson's closest point on triangles, with barycentric coordinates.
* `vertex_faces`: the one-ring table of a mesh.
* `nearest_vertices`, `faces_around`, `near_faces` (both): for points (with their frame), the closest
  face among the one-rings of the k nearest vertices of that frame's mesh, the closest point, its
  barycentric coordinates and the signed distance (negative behind that face: inside an outward mesh).
"""
from __future__ import annotations

import numpy as np
import torch


def closest_point_triangle(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor):
    """Closest point on triangles (a, b, c) to points p, all (..., 3).

    Returns:
        closest (..., 3) and its barycentric coordinates (..., 3) (weights of a, b, c; >= 0, sum 1).
    Degenerate triangles give one of their vertices or edges (no NaN).
    """
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2

    def div(n, d):
        return n / torch.where(d.abs() > 1e-30, d, torch.ones_like(d))

    one, zero = torch.ones_like(d1), torch.zeros_like(d1)
    # Ericson 5.1.5 tests the regions in the order A, B, AB, C, AC, BC, interior and returns the first
    # that holds: compose in reverse so that the earlier tests win.
    den = va + vb + vc
    v, w = div(vb, den), div(vc, den)
    u = one - v - w
    t = div(d4 - d3, (d4 - d3) + (d5 - d6))  # BC
    m = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    u, v, w = torch.where(m, zero, u), torch.where(m, 1 - t, v), torch.where(m, t, w)
    t = div(d2, d2 - d6)  # AC
    m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    u, v, w = torch.where(m, 1 - t, u), torch.where(m, zero, v), torch.where(m, t, w)
    m = (d6 >= 0) & (d5 <= d6)  # C
    u, v, w = torch.where(m, zero, u), torch.where(m, zero, v), torch.where(m, one, w)
    t = div(d1, d1 - d3)  # AB
    m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    u, v, w = torch.where(m, 1 - t, u), torch.where(m, t, v), torch.where(m, zero, w)
    m = (d3 >= 0) & (d4 <= d3)  # B
    u, v, w = torch.where(m, zero, u), torch.where(m, one, v), torch.where(m, zero, w)
    m = (d1 <= 0) & (d2 <= 0)  # A
    u, v, w = torch.where(m, one, u), torch.where(m, zero, v), torch.where(m, zero, w)
    bary = torch.stack([u, v, w], -1).clamp_min(0)
    bary = bary / bary.sum(-1, keepdim=True).clamp_min(1e-30)
    closest = bary[..., :1] * a + bary[..., 1:2] * b + bary[..., 2:] * c
    return closest, bary


def vertex_faces(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """The faces around each vertex: (V, K) face ids, padded with -1 (K = the largest valence)."""
    f = np.asarray(faces, np.int64)
    vid = f.ravel()
    fid = np.repeat(np.arange(len(f)), 3)
    order = np.argsort(vid, kind="stable")
    vid, fid = vid[order], fid[order]
    count = np.bincount(vid, minlength=n_vertices)
    start = np.r_[0, np.cumsum(count)[:-1]]
    out = np.full((n_vertices, max(int(count.max(initial=0)), 1)), -1, np.int64)
    out[vid, np.arange(len(vid)) - start[vid]] = fid
    return out


def nearest_vertices(points: torch.Tensor, rows: torch.Tensor, verts: torch.Tensor, k: int = 1,
                     candidates: torch.Tensor | None = None, with_distance: bool = False):
    """The k nearest vertices (M, k) long of ``verts[rows]`` to each point (``with_distance``: and the
    distance (M,) to the nearest of them).

    Args:
        points (M, 3); rows (M,) long: the frame of each point; verts (N, V, 3) the meshes of the frames;
        candidates: optional (V,) or (N, V) bool, the vertices (of every frame, or per frame) the search
            may return (e.g. those near an object: a point on an object's surface is at least as far
            from its nearest vertex as that vertex is from the object). A frame without any: all.
    """
    M, dev = points.shape[0], points.device
    allv = torch.arange(verts.shape[1], device=dev)
    near = torch.zeros(M, k, dtype=torch.long, device=dev)
    dmin = points.new_zeros(M)
    order = torch.argsort(rows, stable=True)
    bounds = torch.searchsorted(rows[order], torch.arange(verts.shape[0] + 1, device=dev)).tolist()
    for n in range(verts.shape[0]):
        s, e = bounds[n], bounds[n + 1]
        if s == e:
            continue
        sel = order[s:e]
        cols = allv
        if candidates is not None:
            cols = torch.nonzero(candidates if candidates.dim() == 1 else candidates[n])[:, 0]
            cols = allv if len(cols) == 0 else cols
        kk = min(k, len(cols))
        dist = torch.cdist(points[sel], verts[n, cols])
        best = dist.argmin(1, keepdim=True) if kk == 1 else dist.topk(kk, dim=1, largest=False).indices
        nn = cols[best]
        near[sel] = torch.cat([nn, nn[:, -1:].expand(-1, k - kk)], 1)
        if with_distance:
            dmin[sel] = dist.gather(1, best[:, :1])[:, 0]
    return (near, dmin) if with_distance else near


def faces_around(points: torch.Tensor, rows: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor,
                 ring: torch.Tensor, near: torch.Tensor):
    """Closest face of ``verts[rows]`` to each point among the one-rings of its vertices ``near``.

    Args:
        points (M, 3); rows (M,) long; verts (N, V, 3); faces (F, 3) long, outward; ring (V, K) long from
        `vertex_faces`; near (M, k) long vertex ids (`nearest_vertices`).
    Returns:
        face (M,) long, closest (M, 3), bary (M, 3), signed (M,) metres: the distance to the closest point,
        negative when the point lies behind that face (inside the mesh).
    """
    M = points.shape[0]
    dev, dt = points.device, points.dtype
    if M == 0:
        e = torch.zeros(0, 3, dtype=dt, device=dev)
        return torch.zeros(0, dtype=torch.long, device=dev), e, e, torch.zeros(0, dtype=dt, device=dev)
    cand = ring[near].reshape(M, -1)  # (M, k*K) faces, -1 = padding
    m, slot = torch.nonzero(cand >= 0, as_tuple=True)  # the real (point, face) pairs, in row-major order
    fid = cand[m, slot]
    vv = verts[rows[m][:, None], faces[fid]]  # (P, 3, 3)
    p = points[m]
    closest, bary = closest_point_triangle(p, vv[:, 0], vv[:, 1], vv[:, 2])
    dist2 = (p - closest).square().sum(-1)
    # per point the first pair of least distance (what argmin over the padded rows picked)
    low = dist2.new_full((M,), float("inf")).scatter_reduce(0, m, dist2, "amin")
    pos = torch.arange(len(m), device=dev)
    best = torch.full((M,), len(m), dtype=torch.long, device=dev).scatter_reduce(
        0, m, torch.where(dist2 == low[m], pos, len(m)), "amin")
    face, closest, bary, corners = fid[best], closest[best], bary[best], vv[best]
    normal = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    diff = points - closest
    dist = diff.norm(dim=-1)
    side = (diff * normal).sum(-1)
    # a point on the face's plane (dist ~ 0): its side seen from the face's centroid
    side = torch.where(side.abs() > 1e-12 * normal.norm(dim=-1), side, ((points - corners.mean(1)) * normal).sum(-1))
    return face, closest, bary, torch.where(side < 0, -dist, dist)


def near_faces(points: torch.Tensor, rows: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor,
               ring: torch.Tensor, k: int = 2, candidates: torch.Tensor | None = None):
    """`faces_around` the k `nearest_vertices` of each point (arguments and returns as those)."""
    return faces_around(points, rows, verts, faces, ring, nearest_vertices(points, rows, verts, k, candidates))
