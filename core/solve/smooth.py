"""Temporal clean-up of one hand's MANO pose over a clip (offline, whole clip at once).

Steps of `clean_up`:
1. axis-angles -> unit quaternions, made sign-continuous over T (`quat_continuous`);
2. robust, zero-lag smoothing of the 16 local rotations in their tangent space and of the
   translation (`smooth_rotations`, `smooth_points`): at every frame a weighted quadratic is fitted to
   the neighbouring frames (Savitzky-Golay / LOESS style, Gaussian weights), rotations expressed as
   ``log(ref_t^-1 q_{t+k})`` about the current estimate ``ref_t``. A symmetric window has no lag, and a
   quadratic follows constant-velocity and constant-acceleration motion exactly. The window adapts to
   speed as in the One-Euro filter (Casiez et al. 2012): cutoff = ``min_cutoff + beta * speed`` Hz, so
   fast motion is not smeared. Before that, outliers (one- or two-frame glitches) are found per joint
   as frames far from what their neighbours predict (a leave-one-out quadratic through the two frames on
   each side) and get zero weight, so the fit replaces them; a fast but smooth motion is predicted well
   by its neighbours and is kept;
3. gaps of at most ``max_gap_s`` seconds between valid frames are filled: slerp of the rotations and
   linear translation between the smoothed frames on either side. Longer gaps and clip ends stay invalid.

Everything is batched along T (and over the window's offsets); the only Python loops are the few
passes (outlier search, speed, final fit) and blocks of 2048 frames, never single frames.
torch; dtype and device follow torch inputs, numpy inputs become float32.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np
import torch

from ..settings import build
from ..rot import quat_to_aa

# -3 dB point of the local-polynomial smoother's equivalent kernel times its Gaussian sigma
# (cycles; sigma in frames), by degree. Measured from the kernel's frequency response for
# sigma in 1.5..8 frames (constant within 2 %): degree 1 == degree 0 for a symmetric window,
# degree 3 == degree 2.
_FC_SIGMA = {1: 0.134, 2: 0.245, 3: 0.245}
_MIN_SIGMA = 0.3  # frames: neighbours then weigh < 0.4 %, i.e. no smoothing
_RIDGE = 1e-9  # relative ridge of the normal equations (numerical only)
_BLOCK = 2048  # frames per block of the local fit
_ROT_FLOOR = math.radians(2.0)  # rad: smallest outlier threshold (noise-free input has no outliers)
_TRANSL_FLOOR = 0.005  # m
_MOTION_SHARE = 0.5  # outlier threshold >= this share of the neighbours' own step (fast motion is no glitch)
_LOO_SIGMA, _LOO_HALF = 1.5, 2  # frames: the leave-one-out predictor (two frames each side)


@dataclasses.dataclass(frozen=True)
class SmoothConfig:
    """Settings of `clean_up` (frozen; build with `SmoothConfig.create(**cfg)`, unknown keys are errors).

    min_cutoff: Hz, smoothing cutoff of the rotations at rest (lower = smoother).
    beta: Hz per rad/s: the cutoff rises by ``beta * angular speed`` (One-Euro's beta).
    transl_min_cutoff: Hz, cutoff of the translation at rest.
    transl_beta: Hz per m/s, speed adaptation of the translation cutoff.
    degree: 1..3, degree of the local polynomial (2: no lag and no flattening of peaks).
    outlier_iters: passes of the outlier search (0: none); each pass flags the worst frame of each
        cluster, so a glitch of n consecutive frames needs n passes.
    outlier_scale: a sample farther from its neighbours' prediction than this many times the channel's
        median distance (and than 2 deg / 5 mm) is an outlier.
    max_gap_s: seconds; gaps up to this long between valid frames are filled (1/3 s = 10 frames at 30 fps).
    enabled: False returns the input unchanged apart from gap filling.
    """

    min_cutoff: float = 3.0
    beta: float = 0.5
    transl_min_cutoff: float = 1.0
    transl_beta: float = 10.0
    degree: int = 2
    outlier_iters: int = 3
    outlier_scale: float = 6.0
    max_gap_s: float = 1.0 / 3.0
    enabled: bool = True

    @classmethod
    def create(cls, **cfg) -> "SmoothConfig":
        """Defaults overridden by ``cfg``; raises CaptureError listing every unknown key and bad value."""
        return build(cls, "smoothing", cfg, _check)


def _check(c: SmoothConfig) -> list[str]:
    problems = []
    for key in ("min_cutoff", "transl_min_cutoff", "outlier_scale"):
        if not getattr(c, key) > 0:
            problems.append(f"{key} must be > 0; got {getattr(c, key)}")
    for key in ("beta", "transl_beta", "max_gap_s"):
        if not getattr(c, key) >= 0:
            problems.append(f"{key} must be >= 0; got {getattr(c, key)}")
    if c.degree not in _FC_SIGMA:
        problems.append(f"degree must be 1, 2 or 3; got {c.degree}")
    if int(c.outlier_iters) != c.outlier_iters or c.outlier_iters < 0:
        problems.append(f"outlier_iters must be a whole number >= 0; got {c.outlier_iters}")
    return problems


@dataclasses.dataclass(frozen=True)
class Cleaned:
    """One hand over T frames after `clean_up`; numpy in -> numpy out, torch in -> torch out.

    global_orient: (T, 3) axis-angle radians, camera frame (as given).
    hand_pose: (T, 15, 3) axis-angle radians, MANO joints 1..15.
    transl: (T, 3) metres.
    valid: (T,) bool, detected or filled; other frames hold the input's values.
    filled: (T,) bool, frames that were not valid in the input and were filled from their neighbours.
    outliers: (T,) bool, valid input frames where some rotation or the translation was an outlier
        (replaced by its neighbours' fit).
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
    if valid is None:
        idx = torch.arange(q.shape[0], device=q.device)
    else:
        idx = torch.nonzero(torch.as_tensor(valid, dtype=torch.bool, device=q.device)).flatten()
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


def fill_gaps(q: torch.Tensor, x: torch.Tensor, valid: torch.Tensor,
              max_gap: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


@dataclasses.dataclass(frozen=True)
class _Space:
    """How samples become local coordinates: rotations (quaternions, log map) or points (differences).

    tangent(ref, idx) -> idx.shape + (N, 3): samples of frames idx about ref (broadcast against
        idx.shape + (N, D)): idx (T,) with ref (T, N, D), or idx (C, W) with ref (C, 1, N, D);
    retract(ref, c) -> (T, N, D): the point at local coordinates c (T, N, 3) about ref.
    """

    tangent: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    retract: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _rotation_space(q: torch.Tensor) -> _Space:
    def tangent(ref, idx):  # log(ref_t^-1 q_idx), radians
        return quat_to_aa(quat_mul(quat_conj(ref), q[idx]))

    def retract(ref, c):
        out = quat_mul(ref, aa_to_quat(c))
        return out / out.norm(dim=-1, keepdim=True)

    return _Space(tangent, retract)


def _point_space(x: torch.Tensor) -> _Space:
    return _Space(lambda ref, idx: x[idx] - ref, lambda ref, c: ref + c)


def _local_fit(space: _Space, ref, weight, seg, sigma, degree: int, half: int, leave_out: bool = False):
    """One weighted local-polynomial fit at every frame and channel.

    ref (T, N, D) the expansion points; weight (T, N) per-sample weight (0 = unused); seg (T,) segment
    ids; sigma (T, N) Gaussian width, frames; half K: window t-K..t+K; leave_out: skip the frame itself
    (predict each frame from its neighbours). Returns (estimate (T, N, D), velocity (T, N, 3) per frame).
    All W = 2K+1 offsets at once, in blocks of _BLOCK frames (memory ~ block x W x N x 16 floats):
    1. gather frames t+k (C, W), their local coordinates y (C, W, N, 3) about ref_t and weights
       w = weight[t+k] exp(-u^2 / 2), u = k / sigma_t (zero outside t's segment);
    2. normal equations A_tn = sum_k w x x^T, B_tn = sum_k w x y^T with x = [1, u, u^2, ..];
    3. solve A c = B, with the degree lowered where fewer than degree + 1 frames lie within 3 sigma
       (two frames give a line, one a constant); c0 is the value at k = 0, c1 / sigma the velocity.
    """
    t, n = weight.shape
    d = degree + 1
    dev, dt = weight.device, weight.dtype
    ks = torch.arange(-half, half + 1, device=dev)
    if leave_out:
        ks = ks[ks != 0]
    c0 = torch.zeros(t, n, 3, dtype=torch.float64, device=dev)
    c1 = torch.zeros_like(c0)
    for s in range(0, t, _BLOCK):
        tt = torch.arange(s, min(t, s + _BLOCK), device=dev)  # (C,)
        idx = tt[:, None] + ks[None]  # (C, W)
        inside = (idx >= 0) & (idx < t)
        idx = idx.clamp(0, t - 1)
        same = inside & (seg[idx] == seg[tt, None])  # (C, W)
        u = ks[None, :, None].to(dt) / sigma[tt, None, :]  # (C, W, N)
        u2 = (u * u).clamp(max=50.0)  # exp(-25) ~ 1e-11: no float underflow (its slow path)
        w = weight[idx] * same[..., None].to(dt) * torch.exp(-0.5 * u2)  # (C, W, N)
        count = ((w > 0) & (u2 <= 9.0)).sum(1)  # (C, N)
        x = torch.stack([u**p for p in range(d)], -1)  # (C, W, N, d)
        y = space.tangent(ref[tt, None], idx)  # (C, W, N, 3)
        wx = w[..., None] * x
        # Float64 for the solve: float32 normal equations of a quadratic lose too many digits.
        a = torch.einsum("cwnp,cwnq->cnpq", wx, x).double()  # A_cn = sum_w w x x^T
        b = torch.einsum("cwnp,cwnj->cnpj", wx, y).double()  # B_cn = sum_w w x y^T
        # The tiny ridge only keeps the systems that go unused (too few frames) solvable.
        a = a + (_RIDGE * a[..., :1, :1] + 1e-30) * torch.eye(d, dtype=torch.float64, device=dev)
        use = (count - 1).clamp(0, degree)  # (C, N) degree each window supports
        for p in range(degree + 1):
            m = use == p
            if bool(m.any()):
                c = torch.linalg.solve(a[m][:, : p + 1, : p + 1], b[m][:, : p + 1])  # (M, p+1, 3)
                rows = torch.nonzero(m)
                c0[tt[rows[:, 0]], rows[:, 1]] = c[:, 0]
                if p >= 1:
                    c1[tt[rows[:, 0]], rows[:, 1]] = c[:, 1]
    return space.retract(ref, c0.to(dt)), c1.to(dt) / sigma[..., None]


def _find_outliers(space: _Space, start, used, seg, iters: int, scale: float, floor: float) -> torch.Tensor:
    """(T, N) bool samples far from their neighbours' leave-one-out prediction.

    Each pass: residual r = |sample - prediction| of every sample still in use; a sample is flagged when
    r > max(scale x median r of its channel, floor, half the largest step among its neighbours
    t-2, t-1, t+1, t+2) and r is the largest within +-2 frames (a glitch also spoils its neighbours'
    predictions); flagged samples leave the next pass's predictions.
    """
    t, n = used.shape
    ar = torch.arange(t, device=used.device)
    out = torch.zeros_like(used)
    # Motion among each frame's neighbours (t itself left out): a fast but smooth movement between them
    # raises the threshold; a glitch at rest does not.
    at = lambda i: i.clamp(0, t - 1)  # noqa: E731
    step = space.tangent(start[at(ar - 1)], at(ar + 1)).norm(dim=-1)  # (T, N) |x_{t+1} - x_{t-1}|
    cons = space.tangent(start, at(ar + 1)).norm(dim=-1)  # (T, N) |x_{t+1} - x_t|
    motion = torch.maximum(step, torch.maximum(cons[at(ar + 1)], cons[at(ar - 2)]))
    sigma = torch.full((t, n), _LOO_SIGMA, dtype=start.dtype, device=used.device)
    for _ in range(int(iters)):
        keep = used & ~out
        pred, _ = _local_fit(space, start, keep.to(start.dtype), seg, sigma, 2, _LOO_HALF, leave_out=True)
        res = space.tangent(pred, ar).norm(dim=-1)  # (T, N)
        res = torch.where(keep, res, torch.zeros_like(res))
        med = torch.nanmedian(torch.where(keep, res, torch.full_like(res, float("nan"))), 0).values  # (N,)
        thr = torch.maximum((scale * torch.nan_to_num(med, nan=0.0)).clamp_min(floor), _MOTION_SHARE * motion)
        peak = torch.nn.functional.max_pool1d(res.T[:, None], 5, 1, 2)[:, 0].T  # (T, N) max over t-2..t+2
        new = keep & (res > thr) & (res >= peak)
        if not bool(new.any()):
            break
        out |= new
    return out


def _smooth(space: _Space, start, valid, max_gap: int, fps: float, min_cutoff: float, beta: float, degree: int,
            outlier_iters: int, outlier_scale: float, floor: float):
    """Outlier search, then the speed-adaptive local fit (module docstring). start (T, N, D) samples.
    Returns (estimate (T, N, D), outliers (T, N) bool).
    1. outliers get weight 0; 2. fit at the rest cutoff everywhere, giving each sample's speed (the
    largest within +-sigma); 3. fit again with sigma from the cutoff min_cutoff + beta * speed (Hz)."""
    t, n = start.shape[:2]
    seg = segment_ids(valid, max_gap)
    used = valid[:, None].expand(t, n)
    outliers = _find_outliers(space, start, used, seg, outlier_iters, outlier_scale, floor)
    weight = (used & ~outliers).to(start.dtype)
    c_fs = _FC_SIGMA[degree] * fps  # sigma (frames) = c_fs / cutoff (Hz)
    sigma_max = c_fs / min_cutoff
    half = max(1, int(math.ceil(3 * sigma_max)))
    sigma = torch.full((t, n), sigma_max, dtype=start.dtype, device=start.device)
    est, vel = _local_fit(space, start, weight, seg, sigma, degree, half)
    speed = torch.where(used, vel.norm(dim=-1) * fps, torch.zeros_like(weight))  # (T, N) units per second
    # The fastest speed within +-sigma: a turning point (speed 0) inside a quick motion is part of it.
    h = max(1, int(round(sigma_max)))
    speed = torch.nn.functional.max_pool1d(speed.T[:, None], 2 * h + 1, 1, h)[:, 0].T
    sigma = (c_fs / (min_cutoff + beta * speed)).clamp(_MIN_SIGMA, sigma_max)
    est, _ = _local_fit(space, est, weight, seg, sigma, degree, half)
    return est, outliers


def _smooth_valid(space, x: torch.Tensor, valid, max_gap: int, *args) -> tuple[torch.Tensor, torch.Tensor]:
    """`_smooth` of series x (T, N, D) in ``space(x)`` on its valid frames; clips with fewer than 3 (valid)
    frames come back unchanged. Returns (x smoothed on valid frames, others as given; outliers (T, N))."""
    valid = torch.as_tensor(valid, dtype=torch.bool, device=x.device)
    if x.shape[0] < 3 or int(valid.sum()) < 3:
        return x.clone(), torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
    est, out = _smooth(space(x), x, valid, max_gap, *args)
    return torch.where(valid[:, None, None], est, x), out


def smooth_rotations(q: torch.Tensor, valid: torch.Tensor, fps: float, min_cutoff: float = 3.0, beta: float = 0.5,
                     degree: int = 2, outlier_iters: int = 3, outlier_scale: float = 6.0,
                     max_gap: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-lag robust smoothing of rotations in their tangent space.

    q (T, N, 4) unit quaternions (w, x, y, z); valid (T,) bool; fps frames per second;
    min_cutoff Hz; beta Hz per rad/s; max_gap frames (windows do not reach across longer gaps).
    Returns (q (T, N, 4) smoothed on valid frames, others as given; outliers (T, N) bool).
    """
    return _smooth_valid(_rotation_space, q, valid, max_gap, fps, min_cutoff, beta, degree, outlier_iters,
                         outlier_scale, _ROT_FLOOR)


def smooth_points(x: torch.Tensor, valid: torch.Tensor, fps: float, min_cutoff: float = 1.0, beta: float = 10.0,
                  degree: int = 2, outlier_iters: int = 3, outlier_scale: float = 6.0,
                  max_gap: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-lag robust smoothing of points (e.g. the translation).

    x (T, M, 3) metres; valid (T,) bool; fps; min_cutoff Hz; beta Hz per m/s; max_gap frames.
    Returns (x (T, M, 3) smoothed on valid frames, others as given; outliers (T, M) bool).
    """
    return _smooth_valid(_point_space, x, valid, max_gap, fps, min_cutoff, beta, degree, outlier_iters,
                         outlier_scale, _TRANSL_FLOOR)


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
        Cleaned: numpy float32 when global_orient is numpy, else torch with global_orient's dtype and
        device. T < 3 returns the input unchanged; with fewer than 3 valid frames nothing is smoothed
        (a short gap between two valid frames is still filled).
    """
    c = SmoothConfig.create(**cfg)
    if not fps > 0:
        raise ValueError(f"fps must be > 0; got {fps}")
    as_numpy = not torch.is_tensor(global_orient)
    if as_numpy:
        go, hp, tr = (torch.as_tensor(np.array(a, np.float32)) for a in (global_orient, hand_pose, transl))
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
        smoothed = c.enabled and int(ok.sum()) >= 3
        if smoothed:
            q, zq = smooth_rotations(q, ok, fps, c.min_cutoff, c.beta, c.degree, c.outlier_iters, c.outlier_scale,
                                     max_gap)
            x, zx = smooth_points(x, ok, fps, c.transl_min_cutoff, c.transl_beta, c.degree, c.outlier_iters,
                                  c.outlier_scale, max_gap)
            outliers = zq.any(1) | zx.any(1)
        # 3. Short gaps, between the smoothed frames.
        q, x, filled = fill_gaps(q, x, ok, max_gap)
        done = (ok if smoothed else none) | filled  # frames that get new values
        aa = quat_to_aa(q)
        go_out = torch.where(done[:, None], aa[:, 0], go)
        hp_out = torch.where(done[:, None, None], aa[:, 1:], hp)
        tr_out = torch.where(done[:, None], x[:, 0], tr)
    res = (go_out, hp_out, tr_out, ok | filled, filled, outliers)
    if as_numpy:
        res = tuple(r.cpu().numpy() for r in res)
    return Cleaned(*res)
