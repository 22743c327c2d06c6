"""Rotation helpers for retargeting, numpy only (Blender's own Python runs them): quaternions in Blender's order
(w, x, y, z), rotation matrices acting on column vectors, Euler angles in Blender's conventions, rigid alignment.

Arrays are float64; batch axes first.
"""
from __future__ import annotations

import numpy as np

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) (w, x, y, z), any norm -> rotation matrices (..., 3, 3)."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(q.shape[:-1] + (3, 3))


def mat_to_quat(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) (w, x, y, z) with w >= 0.

    Shepperd's method: the largest of the four squared components is computed first (stable at 180 degrees).
    """
    m = np.asarray(m, np.float64)
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    sq = np.stack([1 + tr, 1 + 2 * m[..., 0, 0] - tr, 1 + 2 * m[..., 1, 1] - tr, 1 + 2 * m[..., 2, 2] - tr], -1)
    k = np.argmax(sq, -1)
    s = np.sqrt(np.maximum(np.take_along_axis(sq, k[..., None], -1)[..., 0], 1e-300))
    # each row: the four components times 4 * (the chosen one), for each choice of the chosen one
    a = m[..., 2, 1] - m[..., 1, 2]
    b = m[..., 0, 2] - m[..., 2, 0]
    c = m[..., 1, 0] - m[..., 0, 1]
    d = m[..., 0, 1] + m[..., 1, 0]
    e = m[..., 0, 2] + m[..., 2, 0]
    f = m[..., 1, 2] + m[..., 2, 1]
    cand = np.stack([
        np.stack([s * s, a, b, c], -1),
        np.stack([a, s * s, d, e], -1),
        np.stack([b, d, s * s, f], -1),
        np.stack([c, e, f, s * s], -1),
    ], -2)  # (..., 4 choices, 4)
    q = np.take_along_axis(cand, k[..., None, None], -2)[..., 0, :] / (2 * s[..., None])
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return q * np.where(q[..., :1] < 0, -1.0, 1.0)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products (..., 4) of quaternions (..., 4) (w, x, y, z): the rotation b, then a."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, np.float64), -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


def sign_continuous(q: np.ndarray, axis: int = 0) -> np.ndarray:
    """Quaternions (..., 4) flipped along ``axis`` so that neighbours have a non-negative dot product; the first
    along the axis gets w >= 0."""
    q = np.moveaxis(np.array(q, np.float64), axis, 0)
    if len(q):
        q[0] *= np.where(q[0, ..., :1] < 0, -1.0, 1.0)
        dots = np.sum(q[1:] * q[:-1], -1, keepdims=True)
        flips = np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)
        q[1:] *= flips
    return np.moveaxis(q, 0, axis)


def quat_power(q: np.ndarray, s: float) -> np.ndarray:
    """Slerp from the identity towards each quaternion (..., 4) by ``s`` in [0, 1]: the same axis, s times the
    angle (the shorter way round)."""
    q = np.asarray(q, np.float64)
    q = q * np.where(q[..., :1] < 0, -1.0, 1.0)
    w = np.clip(q[..., 0], -1.0, 1.0)
    half = np.arccos(w)
    vn = np.linalg.norm(q[..., 1:], axis=-1)
    axis = np.where(vn[..., None] > 1e-12, q[..., 1:] / np.maximum(vn, 1e-300)[..., None], 0.0)
    return np.concatenate([np.cos(s * half)[..., None], np.sin(s * half)[..., None] * axis], -1)


def axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) by ``angle`` (...) radians about coordinate axis 0, 1 or 2 (right-handed)."""
    angle = np.asarray(angle, np.float64)
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def euler_to_mat(euler: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """Blender Euler angles (..., 3) (X, Y, Z angles, radians) in ``order`` -> matrices (..., 3, 3).

    Blender's ``order`` names the axes in the order they apply: "XYZ" is Rz @ Ry @ Rx.
    """
    euler = np.asarray(euler, np.float64)
    m = np.broadcast_to(np.eye(3), euler.shape[:-1] + (3, 3))
    for ch in order:
        a = "XYZ".index(ch)
        m = axis_rotation(a, euler[..., a]) @ m
    return m


def mat_to_euler(m: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> Blender Euler angles (..., 3) (X, Y, Z angles) in ``order``; the middle
    angle in [-pi/2, pi/2]."""
    m = np.asarray(m, np.float64)
    i, j, k = ("XYZ".index(c) for c in order)
    even = (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1))
    sgn = 1.0 if even else -1.0
    # R = R_k(c) R_j(b) R_i(a): R[k, i] = -sgn sin b; R[k, j] / R[k, k] and R[j, i] / R[i, i] give a and c.
    b = np.arctan2(-sgn * m[..., k, i], np.hypot(m[..., i, i], m[..., j, i]))
    a = np.arctan2(sgn * m[..., k, j], m[..., k, k])
    c = np.arctan2(sgn * m[..., j, i], m[..., i, i])
    out = np.empty(m.shape[:-2] + (3,))
    out[..., i], out[..., j], out[..., k] = a, b, c
    return out


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) -> Blender axis-angle values (..., 4): (angle, x, y, z), angle in [0, pi]."""
    q = np.asarray(q, np.float64)
    q = q * np.where(q[..., :1] < 0, -1.0, 1.0)
    vn = np.linalg.norm(q[..., 1:], axis=-1)
    angle = 2 * np.arctan2(vn, q[..., 0])
    axis = np.where(vn[..., None] > 1e-12, q[..., 1:] / np.maximum(vn, 1e-300)[..., None], [0.0, 1.0, 0.0])
    return np.concatenate([angle[..., None], axis], -1)


def orthonormal(m: np.ndarray) -> np.ndarray:
    """The nearest rotations (..., 3, 3) to matrices (..., 3, 3) (scale and shear removed, by SVD)."""
    u, _, vt = np.linalg.svd(np.asarray(m, np.float64))
    d = np.sign(np.linalg.det(u @ vt))
    u[..., :, 2] *= d[..., None]
    return u @ vt


def kabsch(src: np.ndarray, dst: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """The rotation R (3, 3) that best maps vectors src (K, 3) onto dst (K, 3): minimises sum w |R src - dst|^2."""
    w = np.ones(len(src)) if w is None else np.asarray(w, np.float64)
    h = (np.asarray(src, np.float64) * w[:, None]).T @ np.asarray(dst, np.float64)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angles (...) in degrees between rotation matrices a and b (..., 3, 3)."""
    r = np.swapaxes(np.asarray(a, np.float64), -1, -2) @ np.asarray(b, np.float64)
    v = np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    tr = r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2]
    return np.degrees(np.arctan2(np.linalg.norm(v, axis=-1), tr - 1))  # precise near 0, unlike arccos
