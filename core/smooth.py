"""Temporal clean-up of one hand's MANO pose over a clip (offline, whole clip at once).

Steps of `clean_up`:
1. axis-angles -> unit quaternions, made sign-continuous over T (`quat_continuous`);
2. robust, zero-lag smoothing of the 16 local rotations in their tangent space and of the
   translation (`smooth_rotations`, `smooth_points`): at every frame a weighted quadratic is fitted to
   the neighbouring frames (Savitzky-Golay / LOESS style, Gaussian weights), rotations expressed as
   ``log(ref_t^-1 q_{t+k})`` about the current estimate ``ref_t``. A symmetric window has no lag, and a
   quadratic follows constant-velocity and constant-acceleration motion exactly. The window adapts to
   speed as in the One-Euro filter (Casiez et al. 2012): cutoff = ``min_cutoff + beta * speed`` Hz, so
   fast motion is not smeared. Outliers are down-weighted by LOESS's bisquare robustness iterations;
3. gaps of at most ``max_gap_s`` seconds between valid frames are filled: slerp of the rotations and
   linear translation between the smoothed frames on either side. Longer gaps and clip ends stay invalid.

Everything is batched along T; the only Python loops walk the 2K+1 offsets of the smoothing window
and the robustness iterations, never the frames. torch; dtype and device follow the inputs.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .errors import CaptureError
from .rot import quat_to_aa

# -3 dB point of the local-polynomial smoother's equivalent kernel times its Gaussian sigma
# (cycles; sigma in frames), by degree. Measured from the kernel's frequency response for
# sigma in 1.5..8 frames (constant within 2 %): degree 1 == degree 0 for a symmetric window,
# degree 3 == degree 2.
_FC_SIGMA = {1: 0.134, 2: 0.245, 3: 0.245}
_MIN_SIGMA = 0.3  # frames: neighbours then weigh < 0.4 %, i.e. no smoothing
_RIDGE = 1e-4  # relative ridge on the non-constant terms: windows with too few frames keep the frame's value
_ROT_FLOOR = math.radians(1.0)  # rad: robustness scale floor (noise-free input is not an outlier)
_TRANSL_FLOOR = 0.002  # m


@dataclasses.dataclass(frozen=True)
class SmoothConfig:
    """Settings of `clean_up` (frozen; build with `SmoothConfig.create(**cfg)`, unknown keys are errors).

    min_cutoff: Hz, smoothing cutoff of the rotations at rest (lower = smoother).
    beta: Hz per rad/s: the cutoff rises by ``beta * angular speed`` (One-Euro's beta).
    transl_min_cutoff: Hz, cutoff of the translation at rest.
    transl_beta: Hz per m/s, speed adaptation of the translation cutoff.
    degree: 1..3, degree of the local polynomial (2: no lag and no flattening of peaks).
    robust_iters: bisquare robustness iterations after the first fit (0: plain least squares).
    outlier_scale: a frame whose residual exceeds this many median residuals gets zero weight.
    max_gap_s: seconds; gaps up to this long between valid frames are filled (1/3 s = 10 frames at 30 fps).
    enabled: False returns the input unchanged apart from gap filling.
    """

    min_cutoff: float = 3.0
    beta: float = 0.5
    transl_min_cutoff: float = 3.0
    transl_beta: float = 20.0
    degree: int = 2
    robust_iters: int = 2
    outlier_scale: float = 6.0
    max_gap_s: float = 1.0 / 3.0
    enabled: bool = True

    @classmethod
    def create(cls, **cfg) -> "SmoothConfig":
        """Defaults overridden by ``cfg``; raises CaptureError listing every unknown key and bad value."""
        names = [f.name for f in dataclasses.fields(cls)]
        problems = [f"unknown smoothing setting '{k}'" for k in cfg if k not in names]
        c = cls(**{k: v for k, v in cfg.items() if k in names})
        for key in ("min_cutoff", "transl_min_cutoff", "outlier_scale"):
            if not getattr(c, key) > 0:
                problems.append(f"{key} must be > 0; got {getattr(c, key)}")
        for key in ("beta", "transl_beta", "max_gap_s"):
            if not getattr(c, key) >= 0:
                problems.append(f"{key} must be >= 0; got {getattr(c, key)}")
        if c.degree not in _FC_SIGMA:
            problems.append(f"degree must be 1, 2 or 3; got {c.degree}")
        if int(c.robust_iters) != c.robust_iters or c.robust_iters < 0:
            problems.append(f"robust_iters must be a whole number >= 0; got {c.robust_iters}")
        if problems:
            raise CaptureError("; ".join(problems) + f" (settings: {', '.join(names)})")
        return c


@dataclasses.dataclass(frozen=True)
class Cleaned:
    """One hand over T frames after `clean_up`; numpy in -> numpy out, torch in -> torch out.

    global_orient: (T, 3) axis-angle radians, camera frame (as given).
    hand_pose: (T, 15, 3) axis-angle radians, MANO joints 1..15.
    transl: (T, 3) metres.
    valid: (T,) bool, detected or filled; other frames hold the input's values.
    filled: (T,) bool, frames that were not valid in the input and were filled from their neighbours.
    outliers: (T,) bool, valid input frames where some rotation or the translation got zero weight.
    """

    global_orient: np.ndarray | torch.Tensor
    hand_pose: np.ndarray | torch.Tensor
    transl: np.ndarray | torch.Tensor
    valid: np.ndarray | torch.Tensor
    filled: np.ndarray | torch.Tensor
    outliers: np.ndarray | torch.Tensor


# ---------------------------------------------------------------- quaternions (w, x, y, z)


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a (..., 4) * b (..., 4) -> (..., 4); the rotation ``a`` after ``b``."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz,
                        aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw], -1)


def quat_conj(q: torch.Tensor) -> torch.Tensor:
    """Conjugate (inverse of a unit quaternion) (..., 4)."""
    return q * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=q.dtype, device=q.device)


def aa_to_quat(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) radians -> unit quaternions (..., 4) (w, x, y, z); exp map of aa / 2."""
    theta2 = (aa * aa).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2.clamp_min(1e-12))
    small = theta2 < 1e-8
    s = torch.where(small, 0.5 - theta2 / 48, torch.sin(theta / 2) / theta)  # sin(t/2)/t
    w = torch.where(small, 1 - theta2 / 8, torch.cos(theta / 2))
    return torch.cat([w, aa * s], -1)


def quat_continuous(q: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Flip signs along T so that dot(q_t, q_prev) >= 0, q_prev the previous valid frame.

    q (T, ..., 4) unit quaternions (any number of joint axes); valid (T,) bool or None (all).
    Returns (T, ..., 4), the same rotations; invalid frames are returned as given.
    The sign of frame t is the running product of the signs of the dots so far (a cumprod along T).
    """
    if q.shape[0] < 2:
        return q.clone()
    idx = torch.arange(q.shape[0], device=q.device) if valid is None else torch.nonzero(torch.as_tensor(valid, device=q.device)).flatten()
    if idx.numel() < 2:
        return q.clone()
    qv = q[idx]
    dots = (qv[1:] * qv[:-1]).sum(-1)  # (N-1, ...)
    flips = torch.where(dots < 0, -1.0, 1.0).to(q.dtype)
    sign = torch.cumprod(torch.cat([torch.ones_like(flips[:1]), flips], 0), 0)
    out = q.clone()
    out[idx] = qv * sign[..., None]
    return out


def slerp(q0: torch.Tensor, q1: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Shortest-arc interpolation q0 exp(w log(q0^-1 q1)): q0, q1 (..., 4), w (...) in [0, 1] -> (..., 4)."""
    d = quat_to_aa(quat_mul(quat_conj(q0), q1))  # rotation vector of q0^-1 q1, angle <= pi
    return quat_mul(q0, aa_to_quat(d * w[..., None]))


# ---------------------------------------------------------------- frames, gaps, segments


def gap_bounds(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each frame (T,): index of the latest valid frame at or before it and of the earliest at or
    after it (-1 / T where none). int64 tensors on valid's device."""
    t = valid.shape[0]
    ar = torch.arange(t, device=valid.device)
    prev = torch.cummax(torch.where(valid, ar, torch.full_like(ar, -1)), 0).values
    nxt = torch.flip(torch.cummin(torch.flip(torch.where(valid, ar, torch.full_like(ar, t)), [0]), 0).values, [0])
    return prev, nxt


def fillable(valid: torch.Tensor, max_gap: int) -> torch.Tensor:
    """(T,) bool: invalid frames inside a gap of at most ``max_gap`` frames with valid frames on both sides."""
    prev, nxt = gap_bounds(valid)
    t = valid.shape[0]
    return ~valid & (prev >= 0) & (nxt < t) & (nxt - prev - 1 <= max_gap)


def segment_ids(valid: torch.Tensor, max_gap: int) -> torch.Tensor:
    """(T,) int64: frames joined by gaps of at most ``max_gap`` frames share an id (smoothing windows
    never reach across a longer gap). Ids of invalid frames are meaningless."""
    prev, _ = gap_bounds(valid)
    ar = torch.arange(valid.shape[0], device=valid.device)
    # A valid frame starts a segment when the previous valid frame is missing or too far back.
    prev_strict = torch.cat([prev.new_full((1,), -1), prev[:-1]])
    start = valid & ((prev_strict < 0) | (ar - prev_strict - 1 > max_gap))
    return torch.cumsum(start.long(), 0)


def fill_gaps(q: torch.Tensor, x: torch.Tensor, valid: torch.Tensor, max_gap: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fill short gaps: slerp of rotations and linear points between the valid frames on either side.

    q (T, N, 4) unit quaternions; x (T, M, 3) points (e.g. M=1 translation, metres); valid (T,) bool;
    max_gap: longest gap filled, frames. Returns (q, x, filled (T,) bool); other frames unchanged.
    Exact for rotation at constant angular velocity (about a fixed axis) and for constant velocity.
    """
    filled = fillable(valid, max_gap)
    if not bool(filled.any()):
        return q.clone(), x.clone(), filled
    prev, nxt = gap_bounds(valid)
    p, n = prev[filled], nxt[filled]
    ti = torch.nonzero(filled).flatten()
    w = ((ti - p).to(q.dtype) / (n - p).to(q.dtype))  # (G,)
    q_out, x_out = q.clone(), x.clone()
    q_out[ti] = slerp(q[p], q[n], w[:, None].expand(-1, q.shape[1]))
    x_out[ti] = x[p] + w[:, None, None] * (x[n] - x[p])
    return q_out, x_out, filled


# ---------------------------------------------------------------- robust local polynomial fit


def _local_fit(tangent, retract, ref, weight, seg, sigma, degree, half):
    """One weighted local-polynomial fit at every frame and channel.

    tangent(ref, idx) -> (T, N, 3): frames idx (T,) expressed about ref (T, N, ...);
    retract(ref, c0) -> new estimate from the fitted value c0 (T, N, 3) at k = 0;
    weight (T, N) per-sample weight (0 = unused), seg (T,) segment ids, sigma (T, N) frames, half K.
    Returns (estimate, c0 (T, N, 3), velocity (T, N, 3) per frame).
    1. For each offset k in [-K, K] gather frame t+k, its tangent y_k (T, N, 3) and weight
       w_k = weight[t+k] exp(-u^2/2), u = k / sigma (same segment only);
    2. accumulate the normal equations A = sum_k w_k X_k X_k^T, B = sum_k w_k X_k y_k^T, X_k = [1, u, u^2..];
    3. solve A c = B (small ridge on the non-constant terms); c0 is the fitted value, c1 / sigma the velocity.
    """
    t, n = weight.shape
    d = degree + 1
    dev, dt = weight.device, weight.dtype
    ar = torch.arange(t, device=dev)
    a = torch.zeros(t, n, d, d, dtype=dt, device=dev)
    b = torch.zeros(t, n, d, 3, dtype=dt, device=dev)
    for k in range(-half, half + 1):
        idx = ar + k
        inside = (idx >= 0) & (idx < t)
        idx = idx.clamp(0, t - 1)
        same = inside & (seg[idx] == seg)  # (T,)
        u = k / sigma  # (T, N)
        w = weight[idx] * same[:, None].to(dt) * torch.exp(-0.5 * u * u)  # (T, N)
        x = torch.stack([u**p for p in range(d)], -1)  # (T, N, d)
        y = tangent(ref, idx)  # (T, N, 3)
        a += w[..., None, None] * (x[..., :, None] * x[..., None, :])  # A_tn += w x x^T
        b += w[..., None, None] * (x[..., :, None] * y[..., None, :])  # B_tn += w x y^T
    # Solve in float64: the ridge keeps windows with fewer than d frames (or none) solvable.
    a, b = a.double(), b.double()
    ridge = torch.full((d,), _RIDGE, dtype=torch.float64, device=dev)
    ridge[0] = 0
    a = a + a[..., :1, :1] * torch.diag(ridge) + 1e-12 * torch.eye(d, dtype=torch.float64, device=dev)
    c = torch.linalg.solve(a, b).to(dt)  # (T, N, d, 3)
    c0 = c[..., 0, :]
    vel = c[..., 1, :] / sigma[..., None] if degree >= 1 else torch.zeros_like(c0)
    return retract(ref, c0), c0, vel


def _robust_smooth(tangent, retract, start, weight0, seg, fps, min_cutoff, beta, degree, iters, outlier_scale, floor):
    """Speed-adaptive, robust local fit (see module docstring). Returns (estimate, zero_weight (T, N) bool).

    weight0 (T, N) 1 on usable samples, 0 elsewhere; start: the initial reference (the samples).
    Pass 0 uses the rest cutoff everywhere and gives the speed; later passes use the adapted cutoff and
    bisquare weights of the residuals, scale = outlier_scale x median residual of the channel.
    """
    t, n = weight0.shape
    dt = weight0.dtype
    c_fs = _FC_SIGMA[degree] * fps  # sigma (frames) = c_fs / cutoff (Hz)
    sigma_max = c_fs / min_cutoff
    half = max(1, int(math.ceil(3 * sigma_max)))
    sigma = torch.full((t, n), sigma_max, dtype=dt, device=weight0.device)
    est, _, vel = _local_fit(tangent, retract, start, weight0, seg, sigma, degree, half)
    speed = vel.norm(dim=-1) * fps  # (T, N) units per second
    sigma = (c_fs / (min_cutoff + beta * speed)).clamp(_MIN_SIGMA, sigma_max)
    robust = weight0.clone()
    zero = torch.zeros_like(weight0, dtype=torch.bool)
    for _ in range(int(iters)):
        # Residual of each sample against the current estimate at its own frame.
        res = tangent(est, torch.arange(t, device=weight0.device)).norm(dim=-1)  # (T, N)
        used = weight0 > 0
        med = torch.nanmedian(torch.where(used, res, torch.full_like(res, float("nan"))), 0).values  # (N,)
        med = torch.nan_to_num(med, nan=0.0)
        scale = (outlier_scale * med).clamp_min(floor)
        r = (res / scale).clamp(max=1.0)
        robust = weight0 * (1 - r * r) ** 2
        zero = used & (r >= 1.0)
        est, _, _ = _local_fit(tangent, retract, est, robust, seg, sigma, degree, half)
    if not iters:
        est, _, _ = _local_fit(tangent, retract, start, weight0, seg, sigma, degree, half)
    return est, zero


def smooth_rotations(q: torch.Tensor, valid: torch.Tensor, fps: float, min_cutoff: float = 3.0, beta: float = 0.5,
                     degree: int = 2, robust_iters: int = 2, outlier_scale: float = 6.0,
                     max_gap: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-lag robust smoothing of rotations in their tangent space.

    q (T, N, 4) unit quaternions (w, x, y, z); valid (T,) bool; fps frames per second;
    min_cutoff Hz; beta Hz per rad/s; max_gap frames (windows do not reach across longer gaps).
    Returns (q (T, N, 4) smoothed on valid frames, others as given; outliers (T, N) bool).
    """
    valid = torch.as_tensor(valid, dtype=torch.bool, device=q.device)
    if q.shape[0] < 3 or int(valid.sum()) < 3:
        return q.clone(), torch.zeros(q.shape[:2], dtype=torch.bool, device=q.device)

    def tangent(ref, idx):  # log(ref_t^-1 q_idx): (T, N, 3) radians
        return quat_to_aa(quat_mul(quat_conj(ref), q[idx]))

    def retract(ref, c0):
        out = quat_mul(ref, aa_to_quat(c0))
        return out / out.norm(dim=-1, keepdim=True)

    w0 = valid[:, None].to(q.dtype).expand(q.shape[:2]).contiguous()
    est, zero = _robust_smooth(tangent, retract, q, w0, segment_ids(valid, max_gap), fps, min_cutoff, beta,
                               degree, robust_iters, outlier_scale, _ROT_FLOOR)
    return torch.where(valid[:, None, None], est, q), zero


def smooth_points(x: torch.Tensor, valid: torch.Tensor, fps: float, min_cutoff: float = 3.0, beta: float = 20.0,
                  degree: int = 2, robust_iters: int = 2, outlier_scale: float = 6.0,
                  max_gap: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-lag robust smoothing of points (e.g. the translation).

    x (T, M, 3) metres; valid (T,) bool; fps; min_cutoff Hz; beta Hz per m/s; max_gap frames.
    Returns (x (T, M, 3) smoothed on valid frames, others as given; outliers (T, M) bool).
    """
    valid = torch.as_tensor(valid, dtype=torch.bool, device=x.device)
    if x.shape[0] < 3 or int(valid.sum()) < 3:
        return x.clone(), torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)

    def tangent(ref, idx):
        return x[idx] - ref

    def retract(ref, c0):
        return ref + c0

    w0 = valid[:, None].to(x.dtype).expand(x.shape[:2]).contiguous()
    est, zero = _robust_smooth(tangent, retract, x, w0, segment_ids(valid, max_gap), fps, min_cutoff, beta,
                               degree, robust_iters, outlier_scale, _TRANSL_FLOOR)
    return torch.where(valid[:, None, None], est, x), zero


# ---------------------------------------------------------------- the clip


def clean_up(global_orient, hand_pose, transl, valid, fps: float, **cfg) -> Cleaned:
    """Smooth one hand's pose over a clip and fill its short gaps.

    Args:
        global_orient: (T, 3) axis-angle radians, camera frame.
        hand_pose: (T, 15, 3) axis-angle radians, MANO joints 1..15 (local rotations).
        transl: (T, 3) metres, camera frame.
        valid: (T,) bool, frames where the hand was fitted; other frames are ignored.
        fps: frames per second of the clip (after stride).
        **cfg: `SmoothConfig` settings (unknown keys raise CaptureError).
    Returns:
        Cleaned, numpy when global_orient is numpy (same float dtype), else torch on its device.
        T < 3 (or fewer than 3 valid frames) returns the input unchanged.
    """
    c = SmoothConfig.create(**cfg)
    if not fps > 0:
        raise ValueError(f"fps must be > 0; got {fps}")
    as_numpy = not torch.is_tensor(global_orient)
    if as_numpy:
        dt = np.asarray(global_orient).dtype
        dt = dt if dt in (np.float32, np.float64) else np.dtype(np.float32)
        conv = lambda a: torch.as_tensor(np.asarray(a, dt))  # noqa: E731
        go, hp, tr = conv(global_orient), conv(hand_pose), conv(transl)
    else:
        go, hp, tr = global_orient, hand_pose.to(global_orient), transl.to(global_orient)
    t = go.shape[0]
    if go.shape != (t, 3) or hp.shape != (t, 15, 3) or tr.shape != (t, 3) or len(valid) != t:
        raise ValueError(f"clean_up expects global_orient (T, 3), hand_pose (T, 15, 3), transl (T, 3), valid (T,); "
                         f"got {tuple(go.shape)}, {tuple(hp.shape)}, {tuple(tr.shape)}, ({len(valid)},)")
    ok = torch.as_tensor(np.asarray(valid, bool) if as_numpy else valid, dtype=torch.bool, device=go.device)
    max_gap = int(round(c.max_gap_s * fps))
    none = torch.zeros(t, dtype=torch.bool, device=go.device)
    go_out, hp_out, tr_out, filled, outliers = go.clone(), hp.clone(), tr.clone(), none, none.clone()
    if t >= 3 and int(ok.sum()) >= 1:
        # 1. Quaternions, sign-continuous over the valid frames.
        q = quat_continuous(aa_to_quat(torch.cat([go[:, None], hp], 1)), ok)  # (T, 16, 4)
        x = tr[:, None]  # (T, 1, 3)
        # 2. Smoothing.
        if c.enabled:
            q, zq = smooth_rotations(q, ok, fps, c.min_cutoff, c.beta, c.degree, c.robust_iters, c.outlier_scale, max_gap)
            x, zx = smooth_points(x, ok, fps, c.transl_min_cutoff, c.transl_beta, c.degree, c.robust_iters,
                                  c.outlier_scale, max_gap)
            outliers = zq.any(1) | zx.any(1)
        # 3. Short gaps, between the smoothed frames.
        q, x, filled = fill_gaps(q, x, ok, max_gap)
        done = ok | filled
        aa = quat_to_aa(q)
        go_out = torch.where(done[:, None], aa[:, 0], go)
        hp_out = torch.where(done[:, None, None], aa[:, 1:], hp)
        tr_out = torch.where(done[:, None], x[:, 0], tr)
    res = (go_out, hp_out, tr_out, ok | filled, filled, outliers)
    if as_numpy:
        res = tuple(r.cpu().numpy() for r in res)
    return Cleaned(*res)
