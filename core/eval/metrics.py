"""Accuracy and plausibility metrics (numpy, batched over frames). Joints are (N, 21, 3) metres
in MediaPipe order unless stated; errors are returned in millimetres."""
from __future__ import annotations

import numpy as np

from ..hand.model import MP_PARENTS


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity-align each pred (N, J, 3) to gt (N, J, 3) (rotation, translation and scale; float64
    `core.rot.similarity_align`)."""
    import torch

    from ..rot import similarity_align

    out = similarity_align(torch.as_tensor(pred, dtype=torch.float64), torch.as_tensor(gt, dtype=torch.float64))
    return out.numpy()


def mpjpe(pred: np.ndarray, gt: np.ndarray, root: int | None = None) -> np.ndarray:
    """Mean joint error per frame (N,) mm; with ``root`` both are first translated so that joint
    ``root`` is at the origin (no rotation alignment: what an animator sees)."""
    if root is not None:
        pred = pred - pred[:, root : root + 1]
        gt = gt - gt[:, root : root + 1]
    return np.linalg.norm(pred - gt, axis=-1).mean(-1) * 1000.0


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean joint error per frame (N,) mm after Procrustes alignment with scale."""
    return mpjpe(procrustes_align(pred, gt), gt)


def detection_rate(detected: np.ndarray) -> float:
    """Fraction of frames (T,) bool where the hand was found."""
    d = np.asarray(detected, bool)
    return float(d.mean()) if d.size else 0.0


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """Bone lengths (N, 20) metres for joints (N, 21, 3) in MediaPipe order (bone k ends at joint k+1)."""
    return np.linalg.norm(joints[:, 1:] - joints[:, MP_PARENTS[1:]], axis=-1)


def bone_length_variation(joints: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Largest per-bone standard deviation over the valid frames, mm (0 for a rigid skeleton)."""
    if valid is not None:
        joints = joints[np.asarray(valid, bool)]
    if len(joints) < 2:
        return 0.0
    return float(bone_lengths(joints).std(0).max() * 1000.0)


def jitter(joints: np.ndarray, valid: np.ndarray | None = None, root_relative: bool = True) -> float:
    """Mean joint acceleration magnitude, mm/frame^2, over runs of three consecutive valid frames.

    joints (T, 21, 3); root_relative: subtract the wrist first (finger jitter, not hand travel).
    """
    j = joints - joints[:, :1] if root_relative else joints
    t = len(j)
    if t < 3:
        return 0.0
    ok = np.ones(t, bool) if valid is None else np.asarray(valid, bool)
    trip = ok[:-2] & ok[1:-1] & ok[2:]
    if not trip.any():
        return 0.0
    acc = j[2:] - 2 * j[1:-1] + j[:-2]
    return float(np.linalg.norm(acc[trip], axis=-1).mean() * 1000.0)


def summary(values: np.ndarray) -> dict:
    """Mean / median / 90th percentile of a 1-D array (NaNs dropped)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "p90": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "p90": float(np.percentile(v, 90)), "n": int(v.size)}
