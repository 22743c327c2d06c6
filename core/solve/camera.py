"""Intrinsics, projection and the metric camera-frame translation of a hand from its 2D landmarks."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

# A phone's main camera: ~26 mm full-frame equivalent, about 69 degrees across the long side.
DEFAULT_FOV_DEG = 69.0


def intrinsics(width: int, height: int, fx: float | None = None, fy: float | None = None,
               cx: float | None = None, cy: float | None = None, fov_deg: float | None = None) -> np.ndarray:
    """Pixel intrinsics K (3, 3) float64.

    Missing focal lengths come from ``fov_deg`` (default DEFAULT_FOV_DEG) across the image's longer
    side; the principal point defaults to the image centre in OpenCV's pixel-centre convention
    ((W - 1) / 2, (H - 1) / 2: pixel (0, 0)'s centre is at 0.0); fy defaults to fx.
    """
    if fx is None:
        fov = math.radians(fov_deg if fov_deg is not None else DEFAULT_FOV_DEG)
        fx = 0.5 * max(width, height) / math.tan(0.5 * fov)
    fy = fx if fy is None else fy
    cx = 0.5 * (width - 1) if cx is None else cx
    cy = 0.5 * (height - 1) if cy is None else cy
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pinhole projection. points (B, N, 3) camera frame metres, K (B, 3, 3) -> pixels (B, N, 2)."""
    z = points[..., 2:3].clamp_min(1e-6)
    xy = points[..., :2] / z
    return xy * torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None] + K[:, None, :2, 2]


def ray_rotation(kp_px: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Rotation (B, 3, 3) taking the optical axis to the viewing ray through the landmarks' centre.

    A detector that predicts 3D from an image crop sees the hand as if it were on the optical axis;
    rotating its 3D by this matrix accounts for the hand being off-centre in the frame.
    kp_px (B, N, 2) pixels, K (B, 3, 3).
    """
    c = kp_px.mean(1)
    ray = torch.stack([(c[:, 0] - K[:, 0, 2]) / K[:, 0, 0], (c[:, 1] - K[:, 1, 2]) / K[:, 1, 1], torch.ones_like(c[:, 0])], -1)
    ray = ray / ray.norm(dim=-1, keepdim=True)
    z = torch.zeros_like(ray)
    z[:, 2] = 1
    from ..rot import rotation_between

    return rotation_between(z, ray)


def solve_translation(rel: torch.Tensor, kp_px: torch.Tensor, K: torch.Tensor, w: torch.Tensor | None = None,
                      iters: int = 3) -> torch.Tensor:
    """Camera-frame translation t (B, 3) so that project(rel + t) matches the 2D landmarks.

    rel (B, N, 3): joints relative to any origin, metres, camera axes; kp_px (B, N, 2); K (B, 3, 3);
    w (B, N) weights or None. Steps: 1. linear least squares of the cross-multiplied projection
    equations fx (X + tx) - (u - cx)(Z + tz) = 0 (and the same for y); 2. ``iters`` Gauss-Newton
    steps on the pixel error itself.
    """
    bsz, n, _ = rel.shape
    if w is None:
        w = torch.ones(bsz, n, dtype=rel.dtype, device=rel.device)
    fx, fy, cx, cy = K[:, 0, 0, None], K[:, 1, 1, None], K[:, 0, 2, None], K[:, 1, 2, None]
    du, dv = kp_px[..., 0] - cx, kp_px[..., 1] - cy
    zeros = torch.zeros_like(du)
    # 1. rows [fx, 0, -du] t = du Z - fx X ; [0, fy, -dv] t = dv Z - fy Y
    a = torch.cat([torch.stack([fx.expand_as(du), zeros, -du], -1), torch.stack([zeros, fy.expand_as(dv), -dv], -1)], 1)
    b = torch.cat([du * rel[..., 2] - fx * rel[..., 0], dv * rel[..., 2] - fy * rel[..., 1]], 1)
    ww = torch.cat([w, w], 1)[..., None]
    ata = (a * ww).transpose(1, 2) @ a + 1e-9 * torch.eye(3, dtype=rel.dtype, device=rel.device)
    atb = (a * ww).transpose(1, 2) @ b[..., None]
    t = torch.linalg.solve(ata, atb)[..., 0]
    # 2. Gauss-Newton on reprojection error.
    for _ in range(iters):
        p = rel + t[:, None]
        z = p[..., 2].clamp_min(1e-4)
        r = torch.cat([fx * p[..., 0] / z + cx - kp_px[..., 0], fy * p[..., 1] / z + cy - kp_px[..., 1]], 1)
        jx = torch.stack([fx / z, zeros, -fx * p[..., 0] / z**2], -1)
        jy = torch.stack([zeros, fy / z, -fy * p[..., 1] / z**2], -1)
        jac = torch.cat([jx, jy], 1)
        jtj = (jac * ww).transpose(1, 2) @ jac + 1e-9 * torch.eye(3, dtype=rel.dtype, device=rel.device)
        jtr = (jac * ww).transpose(1, 2) @ r[..., None]
        t = t - torch.linalg.solve(jtj, jtr)[..., 0]
    return t


def _rodrigues(w: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of axis-angle vectors (..., 3)."""
    th = np.linalg.norm(w, axis=-1)[..., None, None]
    k = w / np.maximum(th[..., 0], 1e-12)
    kx = np.zeros(w.shape[:-1] + (3, 3))
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx = kx - np.swapaxes(kx, -1, -2)
    return np.eye(3) + np.sin(th) * kx + (1 - np.cos(th)) * kx @ kx


def rigid_residual(shape3d: np.ndarray, kp_px: np.ndarray, f: float, c: np.ndarray, iters: int = 12) -> np.ndarray:
    """How well a rigid 3D hand explains its 2D landmarks with focal ``f`` (pixels): per frame the rotation and
    translation that place ``shape3d`` (N, J, 3) metres (any origin; its own scale is kept) onto ``kp_px``
    (N, J, 2) with principal point ``c`` (2,) (batched Gauss-Newton from a weak-perspective start), and the
    mean |residual| over the joints in hand sizes (the landmarks' rms spread): (N,). Perspective *within* the
    hand is all that tells focal lengths apart here: with f a times longer the hand sits a times farther and
    only its depth relief projects differently."""
    x = np.asarray(shape3d, np.float64)
    x = x - x.mean(1, keepdims=True)
    u = np.asarray(kp_px, np.float64)
    n = len(x)
    size = np.sqrt(((u - u.mean(1, keepdims=True)) ** 2).sum(-1).mean(1))  # (N,) px
    size3 = np.sqrt((x[..., :2] ** 2).sum(-1).mean(1) + 1e-12)
    # Start: orientation from a 2D Procrustes of the x, y spread (about the optical axis), depth from the size.
    z0 = f * size3 / np.maximum(size, 1e-9)
    t = np.concatenate([(u.mean(1) - c) / f * z0[:, None], z0[:, None]], 1)
    w = np.zeros((n, 3))
    lam = 1e-3
    for _ in range(iters):
        r_m = _rodrigues(w)
        p = x @ np.swapaxes(r_m, 1, 2) + t[:, None]
        z = np.maximum(p[..., 2], 1e-4)
        res = (p[..., :2] / z[..., None] * f + c - u)  # (N, J, 2)
        # d p / d (small rotation about the current one, applied on the left) = -[p - t]x ; d p / d t = I
        q = p - t[:, None]
        dp = np.zeros(x.shape[:2] + (3, 6))
        dp[..., 0, 1], dp[..., 0, 2] = q[..., 2], -q[..., 1]
        dp[..., 1, 0], dp[..., 1, 2] = -q[..., 2], q[..., 0]
        dp[..., 2, 0], dp[..., 2, 1] = q[..., 1], -q[..., 0]
        dp[..., :, 3:] = np.eye(3)
        proj = np.zeros(x.shape[:2] + (2, 3))
        proj[..., 0, 0] = f / z
        proj[..., 1, 1] = f / z
        proj[..., :, 2] = -p[..., :2] * f / z[..., None] ** 2
        jac = (proj @ dp).reshape(n, -1, 6)
        rr = res.reshape(n, -1)
        h = np.swapaxes(jac, 1, 2) @ jac
        h = h + lam * np.eye(6) * np.trace(h, axis1=1, axis2=2)[:, None, None] / 6
        step = -np.linalg.solve(h, (np.swapaxes(jac, 1, 2) @ rr[..., None]))[..., 0]
        w = _compose(step[:, :3], w)
        t = t + step[:, 3:]
    p = x @ np.swapaxes(_rodrigues(w), 1, 2) + t[:, None]
    res = p[..., :2] / np.maximum(p[..., 2:3], 1e-4) * f + c - u
    return np.linalg.norm(res, axis=-1).mean(1) / np.maximum(size, 1e-9)


def _compose(dw: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Axis-angle of R(dw) @ R(w)."""
    from scipy.spatial.transform import Rotation

    return (Rotation.from_rotvec(dw) * Rotation.from_rotvec(w)).as_rotvec()


@dataclasses.dataclass(frozen=True)
class SelfCalibration:
    """Result of `self_calibrate`: ``fov_deg`` the field of view picked (across the longer side) or None when
    the clip does not determine one (the default is kept); ``fovs`` (G,) the grid tried and ``cost`` (G,) the
    criterion (mean rigid residual, hand sizes); ``stability``: share of bootstrap resamples of the frames whose
    best grid point is within one step of the pick; ``gain``: relative drop of the cost from the default field
    of view to the pick; ``reason``: one line."""

    fov_deg: float | None
    fovs: np.ndarray
    cost: np.ndarray
    stability: float
    gain: float
    reason: str


def self_calibrate(shape3d: np.ndarray, kp_px: np.ndarray, width: int, height: int,
                   fovs: np.ndarray | None = None, max_frames: int = 120, min_gain: float = 0.05,
                   min_stability: float = 0.8, seed: int = 0) -> SelfCalibration:
    """One focal length for a clip from the hand alone (`--fov auto`): the field of view whose perspective best
    explains, frame by frame, the detector's rigid 3D hand on its 2D landmarks (`rigid_residual`), over a grid.

    A pinhole image of a hand is the same for focal a*f at depth a*Z up to the perspective *within* the hand
    (its depth relief over its distance), so only hands near the camera with depth relief carry the focal
    length; a depth change alone carries none (the image size f L / Z scales the same at every depth). The
    pick is kept only when it is a clear minimum inside the grid (not at an end, and the cost at both ends at
    least ``min_gain`` higher: a cost still falling, or flat, towards an end means the 3D's own errors, not
    perspective, decide; the detector's flattened 3D favours long lenses), lowers the cost by at least
    ``min_gain`` from the default field of view, and at least ``min_stability`` of 50 bootstrap resamples of
    the frames agree within one grid step;
    otherwise ``fov_deg`` is None. shape3d (N, 21, 3) metres, kp_px (N, 21, 2) pixels (OpenCV pixel centres),
    over the detected frames (at most ``max_frames`` used, evenly spaced)."""
    fovs = np.arange(30.0, 111.0, 5.0) if fovs is None else np.asarray(fovs, np.float64)
    x = np.asarray(shape3d, np.float64)
    u = np.asarray(kp_px, np.float64)
    if len(x) > max_frames:
        idx = np.linspace(0, len(x) - 1, max_frames).round().astype(int)
        x, u = x[idx], u[idx]
    c = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    long_side = max(width, height)
    per = np.stack([rigid_residual(x, u, 0.5 * long_side / math.tan(math.radians(fv) / 2), c) for fv in fovs], 1)
    cost = per.mean(0)
    best = int(np.argmin(cost))
    rng = np.random.default_rng(seed)
    picks = np.array([int(np.argmin(per[rng.integers(0, len(per), len(per))].mean(0))) for _ in range(50)])
    stability = float((np.abs(picks - best) <= 1).mean())
    c_def = float(np.interp(DEFAULT_FOV_DEG, fovs, cost))
    gain = float(1.0 - cost[best] / c_def) if c_def > 0 else 0.0
    ends = min(cost[0], cost[-1])
    if best in (0, len(fovs) - 1):
        reason = f"not determined: the cost still falls at the grid's end ({fovs[best]:.0f} deg)"
    elif ends < (1 + min_gain) * cost[best]:
        reason = (f"not determined: no clear minimum (the best, {fovs[best]:.0f} deg, is within {100 * min_gain:.0f} % "
                  f"of the grid's ends)")
    elif gain < min_gain:
        reason = f"not determined: the best field of view ({fovs[best]:.0f} deg) fits only {100 * gain:.1f} % better than the default"
    elif stability < min_stability:
        reason = f"not determined: resampled frames pick {fovs[best]:.0f} deg +-5 in only {100 * stability:.0f} %"
    else:
        return SelfCalibration(float(fovs[best]), fovs, cost, stability, gain,
                               f"self-calibrated: {fovs[best]:.0f} deg across ({100 * gain:.1f} % lower cost than the default)")
    return SelfCalibration(None, fovs, cost, stability, gain, reason)
