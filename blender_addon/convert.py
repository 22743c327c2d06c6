"""The one place where the camera frame meets Blender: frames, units, rotations, intrinsics, time.

Frames (docs/clip_format.md):
    camera frame (OpenCV): x right, y down, z forward, metres, origin at the camera centre.
    Blender world: Z up. The capture camera object sits at the world origin looking down world +Y
    (rotation X 90 degrees), so a camera-frame point ``p`` is the world point
    ``CAM_TO_WORLD @ p = (p.x, p.z, -p.y)`` (times ``units_per_metre``).
    Blender camera local frame: looks down -Z with +Y up, so it is ``(p.x, -p.y, -p.z)``.

Quaternions are Blender's order (w, x, y, z). Arrays are float64 numpy; batch axes first.
No other module of the add-on converts between these frames.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

# world = CAM_TO_WORLD @ camera ; a proper rotation (det +1).
CAM_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
# OpenCV camera axes -> Blender camera-object local axes.
CV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0])
# World matrix (4, 4) of the capture camera object: rotation CAM_TO_WORLD @ CV_TO_BLENDER_CAMERA
# (= 90 degrees about X), at the origin.
CAMERA_MATRIX_WORLD = np.eye(4)
CAMERA_MATRIX_WORLD[:3, :3] = CAM_TO_WORLD @ CV_TO_BLENDER_CAMERA


def units_per_metre(scale_length: float) -> float:
    """Blender units per metre for a scene's ``unit_settings.scale_length`` (0 or less reads as 1)."""
    return 1.0 / scale_length if scale_length > 0 else 1.0


def points_cam_to_world(points_cam: np.ndarray, units: float = 1.0) -> np.ndarray:
    """points_cam (..., 3) metres, camera frame -> (..., 3) float64 world, scene units."""
    return np.asarray(points_cam, np.float64) @ CAM_TO_WORLD.T * units


def points_world_to_cam(points_world: np.ndarray, units: float = 1.0) -> np.ndarray:
    """points_world (..., 3) scene units, world -> (..., 3) float64 metres, camera frame."""
    return np.asarray(points_world, np.float64) @ CAM_TO_WORLD / units


def matrices_world_to_cam(matrices: np.ndarray, hand_frame: np.ndarray | None = None, units: float = 1.0) -> np.ndarray:
    """Object-to-world matrices (..., 4, 4) -> object-to-camera affine matrices (..., 4, 4): camera frame, metres.

    hand_frame (..., 4, 4): world matrix of the hand armature (None: the world origin). The clip's camera frame
    is the armature's own space (the rig is built at the origin with ``CAM_TO_WORLD``), so an object is
    expressed relative to the armature first: what the animator sees next to the hand is what the core gets,
    also after moving, scaling or parenting the rig. The result keeps the object's scale (not rigid).
    """
    m = np.asarray(matrices, np.float64)
    if hand_frame is not None:
        m = np.linalg.inv(np.asarray(hand_frame, np.float64)) @ m
    g = np.eye(4)
    g[:3, :3] = CAM_TO_WORLD.T / units
    return g @ m


def rotmats_cam_to_world(rotmats_cam: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) acting on camera-frame vectors -> the same rotations on world vectors.

    R_world = C R_cam C^T with C = CAM_TO_WORLD.
    """
    r = np.asarray(rotmats_cam, np.float64)
    return np.einsum("ij,...jk,lk->...il", CAM_TO_WORLD, r, CAM_TO_WORLD)


def aa_cam_to_world(aa_cam: np.ndarray) -> np.ndarray:
    """Axis-angle rotations (..., 3) about camera-frame axes -> the same rotations about world axes.

    A proper rotation C maps a rotation vector like any vector: C R(a) C^T = R(C a).
    """
    return np.asarray(aa_cam, np.float64) @ CAM_TO_WORLD.T


def aa_to_quat(aa: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) radians -> unit quaternions (..., 4), Blender order (w, x, y, z)."""
    aa = np.asarray(aa, np.float64)
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = 0.5 * theta
    # sin(t/2)/t, with its Taylor series near 0
    k = np.where(theta < 1e-6, 0.5 - theta * theta / 48.0, np.sin(half) / np.where(theta < 1e-6, 1.0, theta))
    return np.concatenate([np.cos(half), aa * k], -1)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products a * b of quaternions (..., 4) (w, x, y, z), broadcasting: the rotation b, then a."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, np.float64), -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Conjugates (the inverse rotations) of unit quaternions (..., 4) (w, x, y, z)."""
    return np.asarray(q, np.float64) * np.array([1.0, -1.0, -1.0, -1.0])


def aa_to_rotmat(aa: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) radians -> rotation matrices (..., 3, 3) float64 (Rodrigues, smooth at 0)."""
    aa = np.asarray(aa, np.float64)
    theta2 = np.sum(aa * aa, -1)[..., None, None]
    theta = np.sqrt(theta2)
    small = theta2 < 1e-12
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0 - theta2 / 6.0, np.sin(safe) / safe)  # sin(t)/t
    b = np.where(small, 0.5 - theta2 / 24.0, (1.0 - np.cos(safe)) / np.where(small, 1.0, theta2))  # (1-cos t)/t^2
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    o = np.zeros_like(x)
    k = np.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(aa.shape[:-1] + (3, 3))
    return np.eye(3) + a * k + b * (k @ k)


def rotmat_to_quat(rotmats: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) float64, Blender order (w, x, y, z).

    Shepperd's method: of the four candidate formulas, use the one with the largest pivot.
    """
    m = np.asarray(rotmats, np.float64)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    tr = m00 + m11 + m22
    cands = np.stack(
        [
            np.stack([1 + tr, m21 - m12, m02 - m20, m10 - m01], -1),
            np.stack([m21 - m12, 1 + 2 * m00 - tr, m01 + m10, m02 + m20], -1),
            np.stack([m02 - m20, m01 + m10, 1 + 2 * m11 - tr, m12 + m21], -1),
            np.stack([m10 - m01, m02 + m20, m12 + m21, 1 + 2 * m22 - tr], -1),
        ],
        -2,
    )  # (..., 4 candidates, 4)
    pivot = np.argmax(np.stack([tr, m00, m11, m22], -1), -1)
    q = np.take_along_axis(cands, pivot[..., None, None], -2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) (w, x, y, z) -> rotation matrices (..., 3, 3) float64."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(q.shape[:-1] + (3, 3))


def quats_sign_continuous(quats: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip signs along ``axis`` (frames) so consecutive quaternions (..., 4) have dot >= 0.

    q and -q are the same rotation, but keys that jump between them interpolate the long way round.
    Returns a new array: each frame's sign is the product of the sign changes before it.
    """
    q = np.moveaxis(np.asarray(quats, np.float64), axis, 0)
    if q.shape[0] < 2:
        return np.moveaxis(q.copy(), 0, axis)
    dots = np.sum(q[1:] * q[:-1], -1)  # (N-1, ...)
    flips = np.where(dots < 0, -1.0, 1.0)
    signs = np.concatenate([np.ones_like(flips[:1]), np.cumprod(flips, 0)], 0)
    return np.moveaxis(q * signs[..., None], 0, axis)


@dataclasses.dataclass(frozen=True)
class CameraIntrinsics:
    """A Blender camera and render size equivalent to pixel intrinsics.

    resolution (W, H) pixels; lens_mm focal length on a ``sensor_mm`` wide sensor fitted to the
    longer image side (``sensor_fit`` "HORIZONTAL" or "VERTICAL"); shift_x, shift_y: Blender's lens
    shift, in fractions of the longer side.
    """

    resolution: tuple
    lens_mm: float
    sensor_mm: float
    sensor_fit: str
    shift_x: float
    shift_y: float


def intrinsics_to_camera(K: np.ndarray, image_size, sensor_mm: float = 36.0) -> CameraIntrinsics:
    """Pixel intrinsics K (3, 3) for an image [W, H] -> CameraIntrinsics.

    Pixel coordinates follow OpenCV's pixel-centre convention (docs/clip_format.md: pixel (0, 0)'s
    centre is at 0.0, so the image spans [-0.5, W - 0.5] and its centre is (W - 1) / 2). The focal
    length across the longer side is used (fx for landscape, fy for portrait); square pixels are assumed.
    """
    w, h = int(image_size[0]), int(image_size[1])
    k = np.asarray(K, np.float64)
    longer = max(w, h)
    f_px = k[0, 0] if w >= h else k[1, 1]
    return CameraIntrinsics(
        resolution=(w, h),
        lens_mm=float(f_px * sensor_mm / longer),
        sensor_mm=float(sensor_mm),
        sensor_fit="HORIZONTAL" if w >= h else "VERTICAL",
        shift_x=float(-(k[0, 2] - 0.5 * (w - 1)) / longer),
        shift_y=float((k[1, 2] - 0.5 * (h - 1)) / longer),
    )


def fps_to_scene(fps: float) -> tuple:
    """Frames per second -> Blender's (render.fps int, render.fps_base float); 29.97 -> (30, 1.001)."""
    fps_int = max(1, int(round(fps)))
    return fps_int, fps_int / float(fps)


def source_fps(clip_fps: float, frame_index: np.ndarray) -> float:
    """Frame rate of the source video: the clip's fps times its stride (from ``frame_index`` steps)."""
    fi = np.asarray(frame_index)
    stride = int(np.median(np.diff(fi))) if fi.shape[0] > 1 else 1
    return float(clip_fps) * max(stride, 1)


def clip_to_scene_frames(frame_index: np.ndarray, time_s: np.ndarray, video_fps: float, scene_fps: float) -> np.ndarray:
    """Scene frame (T,) float64 of each clip frame.

    Scene frame 1 shows source frame 0 (a movie clip starting at frame 1). When the scene runs at
    the video's rate a key lands on ``frame_index + 1`` exactly; otherwise the keys keep real time:
    ``1 + time * scene_fps`` (rounded to whole frames within 1e-3).
    """
    if math.isclose(video_fps, scene_fps, rel_tol=1e-4):
        return np.asarray(frame_index, np.float64) + 1.0
    f = 1.0 + np.asarray(time_s, np.float64) * scene_fps
    r = np.round(f)
    return np.where(np.abs(f - r) < 1e-3, r, f)
