"""Contact metrics (issue 10 item 7): penetration depth, intersection volume, contact recall, and what the
refinement costs in pose, reprojection and jitter. numpy in, floats or per-frame arrays out.

Units: distances in metres in, millimetres out; volumes in cm^3; pixels for reprojection.
"""
from __future__ import annotations

import igl
import numpy as np

from ..errors import CaptureError
from ..eval import metrics as eval_metrics
from ..eval.reproj import project

PITCH_M = 0.002  # `intersection_volume`'s default voxel pitch: 2 mm (the issue's bound)
_CHUNK = 1_000_000  # voxel centres per winding-number call
TOUCH_MM = 2.0  # `contact_recall`: a fingertip touches when its distance is within this


def penetration_stats(d) -> dict:
    """Per-frame penetration of signed distances d (T, N) metres (negative inside; +inf = not measured).

    Returns {"max_mm": (T,), "mean_mm": (T,)}: the deepest point and the mean depth over the points inside,
    mm (0 where no point is inside).
    """
    d = np.asarray(d, np.float64)
    if d.ndim != 2:
        raise CaptureError(f"Expected signed distances as a (T, N) array, got shape {d.shape}; pass one row per frame.")
    depth = np.clip(-np.where(np.isnan(d), np.inf, d), 0.0, None) * 1000.0  # (T, N) mm, 0 outside
    n_in = (depth > 0).sum(1)
    mean = np.divide(depth.sum(1), n_in, out=np.zeros(len(d)), where=n_in > 0)
    return {"max_mm": depth.max(1, initial=0.0), "mean_mm": mean}


def _mesh(verts, faces, what: str) -> tuple[np.ndarray, np.ndarray]:
    v = np.ascontiguousarray(np.asarray(verts, np.float64))
    f = np.ascontiguousarray(np.asarray(faces, np.int64))
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise CaptureError(f"Expected the {what} as vertices (M, 3) and triangles (F, 3), got {v.shape} and {f.shape}; "
                           "pass a non-empty triangle mesh.")
    return v, f


def _inside(verts: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N,) bool: |fast winding number| > 1/2 (either face orientation; open meshes too, approximately)."""
    return np.abs(igl.fast_winding_number(verts, faces, points)) > 0.5


def intersection_volume(verts_hand, faces_hand, obj_vertices, obj_faces, pitch: float = PITCH_M, _obj_bvh=None) -> float:
    """Volume inside both meshes, cm^3, counted on voxels of ``pitch`` metres (default 2 mm).

    The overlap of the two bounding boxes is cut into cubes of side ``pitch`` (a grid anchored at the
    overlap's low corner); a cube counts when its centre is inside both meshes (winding number > 1/2:
    open meshes are read by their generalised winding number). Error: about a voxel layer over the
    overlap's surface (a 1 cm lens at 2 mm: tens of percent; at 1 mm: half that).

    Args:
        verts_hand (V, 3), faces_hand (F, 3): the hand (metres); obj_vertices (M, 3), obj_faces (G, 3):
        the other mesh (an object, or the other hand), in the same frame. pitch: metres, > 0.
        _obj_bvh: the other mesh's prebuilt ``igl.FastWindingNumberBVH`` (the same winding numbers, built
        once for a static mesh by `intersection_volume_frames`).
    """
    vh, fh = _mesh(verts_hand, faces_hand, "hand mesh")
    vo, fo = _mesh(obj_vertices, obj_faces, "object mesh")
    if not pitch > 0:
        raise CaptureError(f"Expected a positive voxel pitch in metres, got {pitch}; use e.g. 0.002 (2 mm).")
    lo = np.maximum(vh.min(0), vo.min(0))
    hi = np.minimum(vh.max(0), vo.max(0))
    if (hi <= lo).any():
        return 0.0
    n = np.maximum(np.ceil((hi - lo) / pitch).astype(np.int64), 1)
    if int(np.prod(n)) > 50_000_000:
        raise CaptureError(f"Expected at most 50 million voxels, the overlap needs {int(np.prod(n))} at {pitch * 1000:g} mm; "
                           "use a larger pitch.")
    axes = [lo[k] + (np.arange(n[k]) + 0.5) * pitch for k in range(3)]
    step = max(1, _CHUNK // int(n[1] * n[2]))
    count = 0
    for i in range(0, n[0], step):  # slabs of at most ~_CHUNK points keep memory flat
        g = np.stack(np.meshgrid(axes[0][i : i + step], axes[1], axes[2], indexing="ij"), -1).reshape(-1, 3)
        in_h = _inside(vh, fh, g)
        if in_h.any():
            q = np.ascontiguousarray(g[in_h])
            inside = _inside(vo, fo, q) if _obj_bvh is None else np.abs(_obj_bvh.winding_number(q)) > 0.5
            count += int(inside.sum())
    return count * pitch**3 * 1e6


def intersection_volume_frames(verts, faces, obj_verts, obj_faces, pitch: float = PITCH_M) -> np.ndarray:
    """`intersection_volume` per frame, (T,) cm^3. verts (T, V, 3) the hand; obj_verts (T, M, 3) the
    other mesh per frame, or (M, 3) static."""
    v = np.asarray(verts, np.float64)
    o = np.asarray(obj_verts, np.float64)
    if v.ndim != 3:
        raise CaptureError(f"Expected hand vertices as a (T, V, 3) array, got shape {v.shape}; pass one mesh per frame.")
    bvh = None
    if o.ndim == 2:
        vo, fo = _mesh(o, obj_faces, "object mesh")
        bvh = igl.FastWindingNumberBVH()  # a static mesh: its winding-number hierarchy built once
        bvh.init(vo, fo)
        o = np.broadcast_to(o, (len(v), *o.shape))
    if len(o) != len(v):
        raise CaptureError(f"Expected the object's vertices for the hand's {len(v)} frames, got {len(o)}; "
                           "pass (T, M, 3) or one static (M, 3).")
    return np.array([intersection_volume(v[t], faces, o[t], obj_faces, pitch, bvh) for t in range(len(v))])


def contact_recall(tip_dist_true, tip_dist_pred, touch_mm: float = TOUCH_MM) -> float:
    """Fraction of the fingertips touching in the truth that touch in the result.

    tip_dist_true, tip_dist_pred: (T, 5) metres, each fingertip's signed distance to the surface it
    touches (NaN = unknown: left out). Touching: |d| <= touch_mm. Returns NaN when nothing touches in
    the truth.
    """
    t = np.asarray(tip_dist_true, np.float64)
    p = np.asarray(tip_dist_pred, np.float64)
    if t.shape != p.shape:
        raise CaptureError(f"Expected true and predicted fingertip distances of one shape, got {t.shape} and {p.shape}.")
    lim = touch_mm / 1000.0
    truth = (np.abs(t) <= lim) & np.isfinite(p)
    if not truth.any():
        return float("nan")
    return float((np.abs(p[truth]) <= lim).mean())


def pose_change_mm(joints_a, joints_b) -> float:
    """Mean joint displacement between two results, mm. joints (T, 21, 3) metres, same frame and order."""
    a, b = np.asarray(joints_a, np.float64), np.asarray(joints_b, np.float64)
    if a.shape != b.shape:
        raise CaptureError(f"Expected two joint arrays of one shape, got {a.shape} and {b.shape}.")
    return float(np.nanmean(np.linalg.norm(a - b, axis=-1)) * 1000.0) if a.size else 0.0


def jitter(joints, valid=None) -> float:
    """Root-relative mean joint acceleration, mm/frame^2, over runs of three valid frames: the measure of
    BENCHMARKS "Jitter and lag" (`core.eval.metrics.jitter`). joints (T, 21, 3) metres, valid (T,) bool."""
    return eval_metrics.jitter(np.asarray(joints, np.float64), valid)


def reprojection_change_px(joints_a, joints_b, K) -> float:
    """Mean image distance between the projections of two results' joints, px.

    joints_a, joints_b (T, J, 3) metres in the camera frame; K (3, 3) or (T, 3, 3). Points at or behind
    the camera are left out.
    """
    a, b = np.asarray(joints_a, np.float64), np.asarray(joints_b, np.float64)
    if a.shape != b.shape:
        raise CaptureError(f"Expected two joint arrays of one shape, got {a.shape} and {b.shape}.")
    k = np.asarray(K, np.float64)
    d = np.linalg.norm(project(a, k) - project(b, k), axis=-1)
    d = d[np.isfinite(d)]
    return float(d.mean()) if d.size else 0.0
