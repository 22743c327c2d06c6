"""The legacy MediaPipe Hands graph (0.10.21, ``hand_landmark_tracking_cpu``) around the networks (numpy; the
torch networks of `TorchHands` and MediaPipe's own ones in `core.detect.hybrid`).

Reproduced step by step from the graph's calculators (read, not copied):

* palm detection: the whole frame letterboxed to a 192 px square (zeros outside), SSD anchors (4 layers,
  strides 8, 16, 16, 16, two unit-size anchors per cell: 2016), boxes decoded as x, y, w, h and 7
  keypoints scaled by 192 around the anchor centres, scores clipped to +-100 then sigmoid, kept from
  ``min_detection_confidence`` on; weighted non-max suppression (IoU > 0.3 merged, score-weighted mean
  of boxes and keypoints, the best score kept); letterbox removed; the first ``max_hands`` kept;
* palm -> hand ROI: box centre and size, rotation so that keypoint 0 (wrist) -> keypoint 2 (middle
  finger MCP) points up, shifted by -0.5 box heights along the hand, squared on the long side, scaled 2.6;
* landmarks: the ROI cut out by a perspective warp to 224 px (edge pixels replicated), the network, the
  presence score (> ``min_tracking_confidence`` keeps the hand), landmarks / 224 (z / 224 / 0.4),
  projected through the ROI (z times the ROI width), world landmarks rotated by the ROI's rotation,
  handedness = MediaPipe's "Left" probability (a mirrored-selfie label: "Left" is the RIGHT hand of an
  ordinary picture, see `core.detect.mp_hands`);
* tracking: the next frame's ROI from 12 landmarks (wrist, thumb CMC..IP, MCP and PIP of the four
  fingers), rotation from the wrist to the mean of the middle MCP and the index / ring MCPs' mean (the
  calculator's names say PIP; its indices into the 12 points are the MCPs 5, 9, 13), the rotated bounding
  box shifted -0.1, squared, scaled 2; the palm detector runs only while fewer than ``max_hands`` hands
  are tracked, and its ROIs give way to tracked ones that overlap them (axis-aligned IoU > 0.5).

Crops: `crop_cv2` is OpenCV's warpPerspective as MediaPipe calls it (CPU); `crop_torch` is the same
sampling with ``grid_sample`` for batches on any device.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

PALM_SIZE = 192
LANDMARK_SIZE = 224
NUM_BOXES = 2016
PALM_NMS_IOU = 0.3
ASSOCIATION_IOU = 0.5
PARTIAL = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)  # landmarks the tracking ROI is computed from


# ----------------------------------------------------------------------------------------------- anchors

def ssd_anchors(input_size: int = PALM_SIZE, strides=(8, 16, 16, 16), offset: float = 0.5,
                aspect_ratios=(1.0,), interpolated_scale_aspect_ratio: float = 1.0) -> np.ndarray:
    """(N, 2) anchor centres (x, y), normalised, in the SSD anchor generator's order (fixed anchor
    size: every anchor is 1 x 1, so only the centres matter)."""
    centres = []
    layer = 0
    while layer < len(strides):
        n_per_cell = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            n_per_cell += len(aspect_ratios) + (1 if interpolated_scale_aspect_ratio > 0 else 0)
            last += 1
        fm = math.ceil(input_size / strides[layer])
        ys, xs = np.meshgrid(np.arange(fm), np.arange(fm), indexing="ij")
        cx = ((xs + offset) / fm).astype(np.float32).ravel()
        cy = ((ys + offset) / fm).astype(np.float32).ravel()
        centres.append(np.repeat(np.stack([cx, cy], 1), n_per_cell, axis=0))
        layer = last
    return np.concatenate(centres, 0)


ANCHORS = ssd_anchors()


# ------------------------------------------------------------------------------------- palm decoding

@dataclasses.dataclass
class PalmDetection:
    """A palm in normalised image coordinates: box (xmin, ymin, w, h), 7 keypoints (x, y), score."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def decode_palms(raw_boxes: np.ndarray, raw_scores: np.ndarray, min_score: float) -> list[PalmDetection]:
    """Detections of one image from the palm network's outputs (2016, 18) and (2016,) or (2016, 1), in the
    192 px square's normalised coordinates, before non-max suppression (MediaPipe's order: anchor order)."""
    raw = raw_boxes.reshape(NUM_BOXES, 18).astype(np.float32)
    s = np.clip(raw_scores.reshape(NUM_BOXES).astype(np.float32), -100.0, 100.0)
    scores = (1.0 / (1.0 + np.exp(-s))).astype(np.float32)
    keep = np.nonzero(scores >= np.float32(min_score))[0]
    out = []
    for i in keep:
        ax, ay = ANCHORS[i]
        x = raw[i, 0] / np.float32(PALM_SIZE) + ax
        y = raw[i, 1] / np.float32(PALM_SIZE) + ay
        w = raw[i, 2] / np.float32(PALM_SIZE)
        h = raw[i, 3] / np.float32(PALM_SIZE)
        xmin, ymin, xmax, ymax = x - w / 2, y - h / 2, x + w / 2, y + h / 2
        bw, bh = xmax - xmin, ymax - ymin
        if not (bw >= 0 and bh >= 0):  # negative or NaN
            continue
        kp = raw[i, 4:18].reshape(7, 2) / np.float32(PALM_SIZE) + ANCHORS[i]
        out.append(PalmDetection(np.array([xmin, ymin, bw, bh], np.float32), kp.astype(np.float32), float(scores[i])))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (xmin, ymin, w, h) boxes (0 where they do not overlap)."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    if x1 <= x0 or y1 <= y0:
        return 0.0
    inter = (x1 - x0) * (y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def weighted_nms(dets: list[PalmDetection], iou: float = PALM_NMS_IOU) -> list[PalmDetection]:
    """MediaPipe's WEIGHTED non-max suppression: best first; each kept detection is the score-weighted
    mean (box corners, keypoints) of the remaining detections overlapping it by IoU > ``iou``, with the
    best one's score."""
    order = sorted(range(len(dets)), key=lambda i: -dets[i].score)
    out = []
    while order:
        top = dets[order[0]]
        cand, rest = [], []
        for i in order:
            (cand if _iou(dets[i].box, top.box) > iou else rest).append(i)
        if cand:
            wsum = np.float32(0)
            corners = np.zeros(4, np.float32)
            kps = np.zeros((7, 2), np.float32)
            for i in cand:
                d, sc = dets[i], np.float32(dets[i].score)
                wsum += sc
                corners += sc * np.array([d.box[0], d.box[1], d.box[0] + d.box[2], d.box[1] + d.box[3]], np.float32)
                kps += sc * d.keypoints
            c = corners / wsum
            top = PalmDetection(np.array([c[0], c[1], c[2] - c[0], c[3] - c[1]], np.float32), kps / wsum, top.score)
        out.append(top)
        if len(rest) == len(order):
            break
        order = rest
    return out


def letterbox(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(roi, padding) of the whole frame fitted into a square: roi (cx, cy, w, h, rot) in pixels and
    padding (left, top, right, bottom) as fractions of the square (MediaPipe's PadRoi)."""
    roi = np.array([0.5 * width, 0.5 * height, width, height, 0.0], np.float32)
    return pad_roi(roi, 1.0)


def pad_roi(roi: np.ndarray, tensor_aspect: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's PadRoi (keep_aspect_ratio): the roi grown to the tensor's aspect, and the padding."""
    roi = roi.astype(np.float32).copy()
    roi_aspect = np.float32(roi[3] / roi[2])
    v = h = np.float32(0)
    if tensor_aspect > roi_aspect:
        new_w, new_h = roi[2], roi[2] * np.float32(tensor_aspect)
        v = (np.float32(1) - roi_aspect / np.float32(tensor_aspect)) / np.float32(2)
    else:
        new_w, new_h = roi[3] / np.float32(tensor_aspect), roi[3]
        h = (np.float32(1) - np.float32(tensor_aspect) / roi_aspect) / np.float32(2)
    roi[2], roi[3] = new_w, new_h
    return roi, np.array([h, v, h, v], np.float32)


def remove_letterbox(det: PalmDetection, pad: np.ndarray) -> PalmDetection:
    left, top = pad[0], pad[1]
    sx, sy = np.float32(1) - (pad[0] + pad[2]), np.float32(1) - (pad[1] + pad[3])
    box = np.array([(det.box[0] - left) / sx, (det.box[1] - top) / sy, det.box[2] / sx, det.box[3] / sy], np.float32)
    kp = np.stack([(det.keypoints[:, 0] - left) / sx, (det.keypoints[:, 1] - top) / sy], 1).astype(np.float32)
    return PalmDetection(box, kp, det.score)


# ------------------------------------------------------------------------------------------- rects

F32 = np.float32


def _c_float_math():
    """(sinf, cosf, atan2f) of the C library, as MediaPipe's calculators call them (``std::sin`` etc. on floats):
    the rect calculators below then give MediaPipe's ROIs to the bit (numpy's float32 trigonometry differs from
    glibc's in the last bit on about half of them, enough for the tracking loop to part over a clip). numpy's
    where no C library is found."""
    import ctypes
    import ctypes.util

    for name in (ctypes.util.find_library("m"), "ucrtbase", "msvcrt"):
        try:
            lib = ctypes.CDLL(name) if name else None
            fns = [getattr(lib, f) for f in ("sinf", "cosf", "atan2f")] if lib is not None else None
        except (OSError, AttributeError):
            continue
        if fns:
            for f in fns:
                f.restype = ctypes.c_float
            fns[0].argtypes = fns[1].argtypes = [ctypes.c_float]
            fns[2].argtypes = [ctypes.c_float, ctypes.c_float]
            sinf, cosf, atan2f = fns
            return (lambda x: F32(sinf(x)), lambda x: F32(cosf(x)), lambda y, x: F32(atan2f(y, x)))
    return (lambda x: np.sin(F32(x)), lambda x: np.cos(F32(x)), lambda y, x: np.arctan2(F32(y), F32(x)))


_sinf, _cosf, _atan2f = _c_float_math()
_TARGET = F32(math.pi * 0.5)  # both calculators' target angle, a float (90 degrees)


def normalize_radians(a) -> np.float32:
    """NormalizeRadians: a float angle wrapped into [-pi, pi) in double arithmetic, returned as a float."""
    a = float(F32(a))
    return F32(a - 2 * math.pi * math.floor((a - (-math.pi)) / (2 * math.pi)))


def _rotation(x0, y0, x1, y1) -> np.float32:
    """The ROI rotation that turns the vector (x0, y0) -> (x1, y1), pixels, upright."""
    return normalize_radians(_TARGET - _atan2f(-(y1 - y0), x1 - x0))


def transform_rect(rect: np.ndarray, width: int, height: int, scale: float, shift_y: float) -> np.ndarray:
    """RectTransformationCalculator (shift_x 0, square_long) on a normalised rect (cx, cy, w, h, rot), in float
    arithmetic as the calculator does it."""
    cx, cy, w, h, rot = (F32(v) for v in rect)
    fw, fh, shift = F32(width), F32(height), F32(shift_y)
    if rot == 0:
        cy = cy + h * shift
    else:  # its x term, image_width * w * shift_x * cos, is 0 (shift_x 0)
        cx = cx + (F32(0) - fh * h * shift * _sinf(rot)) / fw
        cy = cy + (F32(0) + fh * h * shift * _cosf(rot)) / fh
    long_side = max(w * fw, h * fh)
    return np.array([cx, cy, long_side / fw * F32(scale), long_side / fh * F32(scale), rot], np.float32)


def palm_to_rect(det: PalmDetection, width: int, height: int) -> np.ndarray:
    """PalmDetectionDetectionToRoi: the hand ROI (cx, cy, w, h, rot), normalised, of a palm detection; MediaPipe's
    to the bit (float arithmetic, the C library's trigonometry)."""
    kp, b = det.keypoints.astype(np.float32), det.box.astype(np.float32)
    fw, fh = F32(width), F32(height)
    rot = _rotation(kp[0, 0] * fw, kp[0, 1] * fh, kp[2, 0] * fw, kp[2, 1] * fh)
    rect = np.array([b[0] + b[2] / F32(2), b[1] + b[3] / F32(2), b[2], b[3], rot], np.float32)
    return transform_rect(rect, width, height, 2.6, -0.5)


def landmarks_to_rect(lm: np.ndarray, width: int, height: int) -> np.ndarray:
    """HandLandmarkLandmarksToRoi: the next frame's ROI from (21, 2+) normalised landmarks; MediaPipe's to the bit
    (float arithmetic operation by operation, the C library's trigonometry)."""
    p = lm[list(PARTIAL), :2].astype(np.float32)
    fw, fh, two = F32(width), F32(height), F32(2)
    rot = _rotation(p[0, 0] * fw, p[0, 1] * fh, ((p[4, 0] + p[8, 0]) / two + p[6, 0]) / two * fw,
                    ((p[4, 1] + p[8, 1]) / two + p[6, 1]) / two * fh)
    rev = normalize_radians(-rot)
    tiny = F32(np.finfo(np.float32).tiny)  # the calculator starts its maxima at FLT_MIN

    def centre(v):
        return (max(v.max(), tiny) + v.min()) / two

    acx, acy = centre(p[:, 0]), centre(p[:, 1])
    ox, oy = (p[:, 0] - acx) * fw, (p[:, 1] - acy) * fh
    c, s = _cosf(rev), _sinf(rev)
    px, py = ox * c - oy * s, ox * s + oy * c
    max_x, min_x = max(px.max(), tiny), px.min()
    max_y, min_y = max(py.max(), tiny), py.min()
    pcx, pcy = (max_x + min_x) / two, (max_y + min_y) / two
    c, s = _cosf(rot), _sinf(rot)
    cx = pcx * c - pcy * s + fw * acx
    cy = pcx * s + pcy * c + fh * acy
    rect = np.array([cx / fw, cy / fh, (max_x - min_x) / fw, (max_y - min_y) / fh, rot], np.float32)
    return transform_rect(rect, width, height, 2.0, -0.1)


def associate(palm_rects: list[np.ndarray], prev_rects: list[np.ndarray], iou: float = ASSOCIATION_IOU) -> list[np.ndarray]:
    """AssociationNormRectCalculator: palm ROIs then tracked ROIs; each added ROI removes the earlier ones
    it overlaps (axis-aligned IoU > ``iou``), so tracked ROIs win."""
    out: list[np.ndarray] = []

    def box(r):
        return np.array([r[0] - r[2] / 2, r[1] - r[3] / 2, r[2], r[3]], np.float32)

    for r in list(palm_rects) + list(prev_rects):
        out = [o for o in out if not _iou(box(r), box(o)) > iou]
        out.append(r)
    return out


# ------------------------------------------------------------------------------------------- crops

def roi_pixels(rect: np.ndarray, width: int, height: int) -> np.ndarray:
    """GetRoi: a normalised rect (cx, cy, w, h, rot) in pixels."""
    return np.array([rect[0] * width, rect[1] * height, rect[2] * width, rect[3] * height, rect[4]], np.float32)


def box_points(roi: np.ndarray) -> np.ndarray:
    """(4, 2) corners of a pixel roi as OpenCV's boxPoints orders them (bottom-left, top-left, top-right,
    bottom-right for an unrotated box), float32 arithmetic as OpenCV does it."""
    cx, cy, w, h = (np.float32(v) for v in roi[:4])
    ang = float(roi[4]) * 180.0 / math.pi  # OpenCV gets degrees (float) and converts back
    ang = float(np.float32(ang))
    b = np.float32(math.cos(ang * math.pi / 180.0) * 0.5)
    a = np.float32(math.sin(ang * math.pi / 180.0) * 0.5)
    p0 = (cx - a * h - b * w, cy + b * h - a * w)
    p1 = (cx + a * h - b * w, cy - b * h - a * w)
    p2 = (2 * cx - p0[0], 2 * cy - p0[1])
    p3 = (2 * cx - p1[0], 2 * cy - p1[1])
    return np.array([p0, p1, p2, p3], np.float32)


def crop_matrix(roi: np.ndarray, size: int) -> np.ndarray:
    """(3, 3) float64 matrix from image pixels to crop pixels (OpenCV's pixel-centre convention) that
    MediaPipe's ImageToTensor builds for a pixel roi (boxPoints -> crop corners)."""
    src = box_points(roi)
    dst = np.array([[0, size], [0, 0], [size, 0], [size, size]], np.float32)
    try:  # OpenCV's own solve, as MediaPipe calls it (and ~100x faster than numpy's LAPACK call here)
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        return cv2.getPerspectiveTransform(src, dst)
    src, dst = src.astype(np.float64), dst.astype(np.float64)
    # the perspective solve of 4 point pairs (as cv2.getPerspectiveTransform), here exactly affine
    a = np.zeros((8, 8))
    bvec = np.zeros(8)
    for i in range(4):
        (x, y), (u, v) = src[i], dst[i]
        a[i] = [x, y, 1, 0, 0, 0, -x * u, -y * u]
        a[i + 4] = [0, 0, 0, x, y, 1, -x * v, -y * v]
        bvec[i], bvec[i + 4] = u, v
    m = np.linalg.solve(a, bvec)
    return np.append(m, 1.0).reshape(3, 3)


def crop_cv2(image: np.ndarray, roi: np.ndarray, size: int, border_zero: bool) -> np.ndarray:
    """(size, size, C) uint8 crop of a pixel roi, with OpenCV exactly as MediaPipe's CPU path calls it."""
    import cv2

    m = crop_matrix(roi, size)
    return cv2.warpPerspective(image, m, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT if border_zero else cv2.BORDER_REPLICATE,
                               borderValue=0)


def crop_torch(image: "torch.Tensor", rois: list[np.ndarray] | np.ndarray, size: int, border_zero: bool,
               quantize: bool = True) -> "torch.Tensor":
    """(N, C, size, size) float crops (0..255) of pixel rois from ``image`` (C, H, W) float on any device,
    by bilinear ``grid_sample`` through the inverse of `crop_matrix` (OpenCV's sampling positions, rounded to
    1/32 pixel as OpenCV rounds them);
    ``quantize`` rounds to uint8 levels as OpenCV's uint8 warp does. (torch is imported here: the rest of this module
    is numpy, for `core.detect.hybrid` too.)"""
    import torch
    import torch.nn.functional as F

    c, h, w = image.shape
    inv = np.stack([np.linalg.inv(crop_matrix(r, size)) for r in rois])  # crop px -> image px
    uu, vv = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64))
    pts = np.stack([uu, vv, np.ones_like(uu)], -1).reshape(-1, 3)  # (S*S, 3)
    src = np.einsum("nij,pj->npi", inv, pts)
    src = src[..., :2] / src[..., 2:3]
    src = np.round(src * 32.0) / 32.0  # OpenCV samples at 1/32-pixel positions (INTER_BITS 5)
    grid = np.empty_like(src)
    grid[..., 0] = src[..., 0] * (2.0 / (w - 1)) - 1.0 if w > 1 else 0.0
    grid[..., 1] = src[..., 1] * (2.0 / (h - 1)) - 1.0 if h > 1 else 0.0
    grid_t = torch.as_tensor(grid.reshape(len(rois), size, size, 2), dtype=torch.float32, device=image.device)
    out = F.grid_sample(image[None].expand(len(rois), -1, -1, -1), grid_t, mode="bilinear",
                        padding_mode="zeros" if border_zero else "border", align_corners=True)
    return torch.floor(out + 0.5).clamp_(0, 255) if quantize else out


# --------------------------------------------------------------------------------------- landmarks

@dataclasses.dataclass
class HandResult:
    """One hand of one frame, MediaPipe's raw outputs in its conventions."""

    landmarks: np.ndarray   # (21, 3) normalised x, y (image) and z (x's scale)
    world: np.ndarray       # (21, 3) metres
    presence: float
    p_left: float           # MediaPipe's "Left" probability (mirrored-selfie label)
    rect: np.ndarray        # the ROI the landmarks came from (cx, cy, w, h, rot), normalised


def project_landmarks(raw: np.ndarray, raw_world: np.ndarray, rect: np.ndarray, pad: np.ndarray):
    """(landmarks (21, 3), world (21, 3)) of the landmark network's outputs for one normalised rect."""
    lm = raw.reshape(21, 3).astype(np.float32)
    x, y = lm[:, 0] / LANDMARK_SIZE, lm[:, 1] / LANDMARK_SIZE
    z = lm[:, 2] / LANDMARK_SIZE / np.float32(0.4)
    sx, sy = np.float32(1) - (pad[0] + pad[2]), np.float32(1) - (pad[1] + pad[3])
    x, y, z = (x - pad[0]) / sx, (y - pad[1]) / sy, z / sx
    c, s = np.float32(math.cos(rect[4])), np.float32(math.sin(rect[4]))
    xx, yy = x - np.float32(0.5), y - np.float32(0.5)
    nx = (c * xx - s * yy) * rect[2] + rect[0]
    ny = (s * xx + c * yy) * rect[3] + rect[1]
    out = np.stack([nx, ny, z * rect[2]], 1).astype(np.float32)
    wl = raw_world.reshape(21, 3).astype(np.float32)
    world = np.stack([c * wl[:, 0] - s * wl[:, 1], s * wl[:, 0] + c * wl[:, 1], wl[:, 2]], 1).astype(np.float32)
    return out, world
