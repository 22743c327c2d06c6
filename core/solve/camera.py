"""Intrinsics, projection and the metric camera-frame translation of a hand from its 2D landmarks."""
from __future__ import annotations

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
