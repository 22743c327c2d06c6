"""Batched rotation conversions and rigid / similarity fits (torch). Batch axes first; dtype and device follow the input."""
from __future__ import annotations

import torch


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices: v (..., 3) -> (..., 3, 3) with skew(v) @ x == cross(v, x)."""
    z = torch.zeros_like(v[..., 0])
    x, y, w = v.unbind(-1)
    return torch.stack([z, -w, y, w, z, -x, -y, x, z], -1).reshape(v.shape + (3,))


def aa_to_rotmat(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) radians -> rotation matrices (..., 3, 3) (Rodrigues, smooth at 0)."""
    theta2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    theta = torch.sqrt(theta2.clamp_min(1e-12))
    small = theta2 < 1e-8
    # sin(t)/t and (1-cos t)/t^2 with Taylor series near 0.
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    k = skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def rotmat_to_quat(r: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) as (w, x, y, z) with w >= 0."""
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = (r[..., i, :].unbind(-1) for i in range(3))
    tr = m00 + m11 + m22
    # Shepperd: pick the largest of 4 candidates for numerical stability. The terms two candidates share are
    # computed once (the same values: each is the same operation on the same elements).
    d21, d02, d10 = m21 - m12, m02 - m20, m10 - m01
    s01, s02, s12 = m01 + m10, m02 + m20, m12 + m21
    cands = torch.stack(
        [
            torch.stack([1 + tr, d21, d02, d10], -1),
            torch.stack([d21, 1 + 2 * m00 - tr, s01, s02], -1),
            torch.stack([d02, s01, 1 + 2 * m11 - tr, s12], -1),
            torch.stack([d10, s02, s12, 1 + 2 * m22 - tr], -1),
        ],
        -2,
    )  # (..., 4 candidates, 4)
    diag = torch.stack([tr, m00, m11, m22], -1)
    idx = diag.argmax(-1)
    q = torch.take_along_dim(cands, idx[..., None, None].expand(idx.shape + (1, 4)), -2)[..., 0, :]
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_to_aa(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (..., 4) (w, x, y, z) -> axis-angle (..., 3), angle in [0, pi]."""
    q = torch.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    s = v.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(s, q[..., :1])
    scale = torch.where(s < 1e-7, 2.0 / q[..., :1].clamp_min(1e-7), angle / s.clamp_min(1e-12))
    return v * scale


def rotmat_to_aa(r: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> axis-angle (..., 3) radians."""
    return quat_to_aa(rotmat_to_quat(r))


def rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Minimal rotation taking unit vectors a (..., 3) to unit vectors b (..., 3): (..., 3, 3).

    R = I + [v]x + [v]x^2 / (1 + c), v = a x b, c = a . b (smooth near a == b; a == -b is clamped).
    """
    v = torch.cross(a, b, dim=-1)
    c = (a * b).sum(-1)[..., None, None]
    k = skew(v)
    eye = torch.eye(3, dtype=a.dtype, device=a.device).expand_as(k)
    return eye + k + (k @ k) / (1 + c).clamp_min(1e-6)


def axis_rotation(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation about unit ``axis`` (..., 3) by ``angle`` (...) radians: (..., 3, 3)."""
    return aa_to_rotmat(axis * angle[..., None])


def kabsch(src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted rigid fit dst ~ R src + t. src, dst (B, N, 3); w (B, N) or None -> R (B, 3, 3), t (B, 3)."""
    if w is None:
        w = torch.ones(src.shape[:2], dtype=src.dtype, device=src.device)
    w = (w / w.sum(1, keepdim=True).clamp_min(1e-12))[..., None]
    cs, cd = (w * src).sum(1), (w * dst).sum(1)
    h = ((src - cs[:, None]) * w).transpose(1, 2) @ (dst - cd[:, None])  # (B, 3, 3) = sum w s d^T
    u, _, vt = torch.linalg.svd(h)
    d = torch.det(vt.transpose(1, 2) @ u.transpose(1, 2))
    e = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    r = vt.transpose(1, 2) @ e @ u.transpose(1, 2)
    t = cd - (r @ cs[..., None])[..., 0]
    return r, t


def similarity_fit(src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """The weighted similarity dst ~ scale R (src - cs) + cd that best fits src (B, N, 3) to dst (B, N, 3);
    w (N,) or (B, N) weights >= 0, None for ones. (Umeyama: centre, `kabsch` rotation,
    scale = <R s, d>_w / |s|_w^2.) Returns R (B, 3, 3), scale (B,), cs (B, 1, 3), cd (B, 1, 3)."""
    if w is None:
        w = torch.ones(src.shape[:2], dtype=src.dtype, device=src.device)
    w = w.to(src.dtype).expand(src.shape[:2])
    ww = (w / w.sum(1, keepdim=True).clamp_min(1e-12))[..., None]  # (B, N, 1)
    cs, cd = (ww * src).sum(1, keepdim=True), (ww * dst).sum(1, keepdim=True)
    s, d = src - cs, dst - cd
    r, _ = kabsch(s, d, w)
    rs = s @ r.transpose(1, 2)
    scale = (ww * rs * d).sum((1, 2)) / (ww * s * s).sum((1, 2)).clamp_min(1e-12)
    return r, scale, cs, cd


def similarity_align(src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    """src (B, N, 3) moved by the weighted similarity that best fits it to dst (`similarity_fit`)."""
    r, scale, cs, cd = similarity_fit(src, dst, w)
    return scale[:, None, None] * (src - cs) @ r.transpose(1, 2) + cd
