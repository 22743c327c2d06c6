"""Labels of a synthetic image: projection, the detector's hand ROI, joint visibility (numpy only).

ROI (`landmark_roi`): the square, rotated crop MediaPipe's hand tracker takes from the previous frame's
landmarks (its ``HandLandmarksToRectCalculator`` + ``RectTransformationCalculator``, as in the
``hand_landmark_landmarks_to_roi`` graph): the rotation points the wrist at the mean of the middle MCP
and the midpoint of the index and ring MCPs (image up = 0); the bounding box of the palm-and-base
landmarks (wrist, thumb CMC/MCP/IP, the four MCPs and PIPs) taken in that rotated frame, shifted by
0.1 of its height towards the fingers, made square on its long side and scaled by ``scale`` (2.0).
The palm detector's first crop (box scale 2.6, shift 0.5) needs the palm detector's box, which a
render does not have; the landmark crop is what the tracker feeds the landmark model on every later
frame (the same rect as the tracker port `core.detect.torch_hands.pipeline.landmarks_to_rect`, tested).
An ROI is (cx, cy, size, angle): centre and side in pixels, angle in radians (the crop's up
vector is (sin a, -cos a) in image coordinates, x right, y down).
"""
from __future__ import annotations

import numpy as np

# MediaPipe-21 indices of the landmarks the tracker's ROI is built from (wrist, thumb CMC/MCP/IP,
# index/middle/ring/pinky MCP and PIP).
ROI_LANDMARKS = np.array([0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18])
ROI_SCALE = 2.0
ROI_SHIFT_Y = -0.1


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixel coordinates (..., 2) of camera-frame points (..., 3) by K (..., 3, 3) (OpenCV, pixel centres)."""
    p = np.einsum("...ij,...kj->...ki", K, points) if K.ndim > 2 else points @ K.T
    return p[..., :2] / p[..., 2:3]


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def landmark_roi(j2d_mp: np.ndarray, scale: float = ROI_SCALE, shift_y: float = ROI_SHIFT_Y) -> np.ndarray:
    """MediaPipe's tracking ROI (..., 4) = (cx, cy, size, angle) from 2D landmarks (..., 21, 2), MediaPipe order."""
    p = j2d_mp[..., ROI_LANDMARKS, :]
    w, idx, mid, ring = (j2d_mp[..., k, :] for k in (0, 5, 9, 13))
    t = ((idx + ring) / 2 + mid) / 2
    angle = _wrap(np.pi / 2 - np.arctan2(-(t[..., 1] - w[..., 1]), t[..., 0] - w[..., 0]))
    lo, hi = p.min(-2), p.max(-2)
    c0 = (lo + hi) / 2
    cos, sin = np.cos(-angle)[..., None], np.sin(-angle)[..., None]
    q = p - c0[..., None, :]
    rx = q[..., 0] * cos - q[..., 1] * sin
    ry = q[..., 0] * sin + q[..., 1] * cos
    pc = np.stack([(rx.min(-1) + rx.max(-1)) / 2, (ry.min(-1) + ry.max(-1)) / 2], -1)
    width, height = rx.max(-1) - rx.min(-1), ry.max(-1) - ry.min(-1)
    ca, sa = np.cos(angle), np.sin(angle)
    cx = pc[..., 0] * ca - pc[..., 1] * sa + c0[..., 0]
    cy = pc[..., 0] * sa + pc[..., 1] * ca + c0[..., 1]
    # RectTransformationCalculator: shift along the rect's own y axis by shift_y of its height, square_long, scale.
    cx = cx - height * shift_y * sa
    cy = cy + height * shift_y * ca
    size = np.maximum(width, height) * scale
    return np.stack([cx, cy, size, angle], -1)


def roi_local(points: np.ndarray, roi: np.ndarray) -> np.ndarray:
    """Points (..., K, 2) in the ROI's own frame (..., K, 2): origin at its centre, y towards its bottom,
    in pixels (inside when both |coordinates| <= size / 2)."""
    d = points - roi[..., None, :2]
    ca, sa = np.cos(roi[..., 3])[..., None], np.sin(roi[..., 3])[..., None]
    return np.stack([d[..., 0] * ca + d[..., 1] * sa, -d[..., 0] * sa + d[..., 1] * ca], -1)


def roi_corners(roi: np.ndarray) -> np.ndarray:
    """Corners (..., 4, 2) of ROIs (..., 4): top-left, top-right, bottom-right, bottom-left of the crop."""
    h = roi[..., 2:3, None] / 2
    local = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]) * h
    ca, sa = np.cos(roi[..., 3])[..., None], np.sin(roi[..., 3])[..., None]
    x = local[..., 0] * ca - local[..., 1] * sa
    y = local[..., 0] * sa + local[..., 1] * ca
    return np.stack([x, y], -1) + roi[..., None, :2]


def cover_joints(roi: np.ndarray, points: np.ndarray, margin: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """ROIs grown (about their centre) until every point (..., K, 2) lies inside with ``margin`` of the
    side to spare; (rois, grown bool (...)). Extreme poses (a finger straight out sideways) can leave the
    tracker's crop; a training crop must hold the whole hand."""
    need = 2 * np.abs(roi_local(points, roi)).max(-1).max(-1) / (1 - 2 * margin)
    grown = need > roi[..., 2]
    out = roi.copy()
    out[..., 2] = np.maximum(roi[..., 2], need)
    return out, grown


def visibility(j2d: np.ndarray, mask: np.ndarray, classes) -> np.ndarray:
    """Per joint (K,) whether the mask's pixel under the 2D joint (K, 2) is one of ``classes`` (the hand's own
    hand / arm classes): False where another object, the other hand or the image border hides it."""
    h, w = mask.shape
    px = np.rint(j2d).astype(np.int64)
    inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    vis = np.zeros(len(j2d), bool)
    vis[inside] = np.isin(mask[px[inside, 1], px[inside, 0]], list(classes))
    return vis
