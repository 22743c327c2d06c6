"""Image alignment of a capture (issue 15): does the keyed hand sit on the hand in the image?

Batched numpy; joints in **MediaPipe 21 order** (0 wrist, 1-4 thumb CMC..TIP, 5-8 index MCP..TIP, 9-12
middle, 13-16 ring, 17-20 pinky), 3D in the OpenCV camera frame (metres), 2D in pixels with OpenCV pixel
centres (as the clip's ``K`` and ``landmarks_px``). N = frames (any batch), J = joints (21).

Definitions (the figures of BENCHMARKS.md "Image alignment (issue 15)"):

* **hand size** in the image (`hand_size_px`): the 2D distance wrist -> middle-finger MCP (joints 0 -> 9) of
  the *reference* 2D points (the detector's landmarks, or the true 2D), per frame;
* **reprojection** (`reprojection`): |K @ joints - reference 2D| per frame and joint, divided by that
  frame's hand size; summarised over a clip as the median and the 95th percentile of all (frame, joint)
  distances pooled. The reference must be independent of the clip's joints: the detector's own 2D
  (``landmarks_px``; on real footage that is the only reference, and it carries the detector's errors) or
  the true 2D of a render;
* **camera-frame error** (`camera_error_mm`): mean Euclidean distance per joint, mm, no alignment of any kind
  (placement, depth and scale all count);
* **hand size error** (`hand_size_error`): 3D length wrist -> middle MCP of the result over the truth's, minus 1;
* **finger bent against the truth** (`flexion_deg`, `bent_against`): the signed flexion of each hinge joint
  (thumb MCP and IP; MCP, PIP and DIP of the other fingers), positive towards the palm side; a finger is
  bent against the truth on a frame when one of its joints is flexed by at least ``min_deg`` one way in the
  truth and by at least ``min_deg`` the other way in the result (e.g. the truth curls it 30 degrees towards
  the palm, the result bends it 15 degrees backwards: the depth-flip that still projects onto the image).
"""
from __future__ import annotations

import dataclasses

import numpy as np

WRIST, MIDDLE_MCP = 0, 9
BEHIND = 1e6  # the distance (hand sizes) given to a joint at or behind the camera
# Hinge joints checked for flexion (MediaPipe order) per finger, with their parent and child joints.
FLEX_JOINTS = {
    "thumb": (2, 3),
    "index": (5, 6, 7),
    "middle": (9, 10, 11),
    "ring": (13, 14, 15),
    "pinky": (17, 18, 19),
}
FINGER_NAMES = tuple(FLEX_JOINTS)
_PARENT = {2: 1, 3: 2, 5: 0, 6: 5, 7: 6, 9: 0, 10: 9, 11: 10, 13: 0, 14: 13, 15: 14, 17: 0, 18: 17, 19: 18}


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection. points (..., J, 3) camera frame; K (3, 3) or (..., 3, 3) matching points' batch
    dims -> pixels (..., J, 2). Points at or behind the camera (z <= 0) give nan."""
    p = np.asarray(points, np.float64)
    K = np.asarray(K, np.float64)
    z = p[..., 2:3]
    uv1 = p @ K.T if K.ndim == 2 else np.einsum("...ij,...kj->...ki", K, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        uv1 = uv1 / np.where(z > 0, z, np.nan)
    return uv1[..., :2]


def hand_size_px(kp_px: np.ndarray) -> np.ndarray:
    """Hand size in the image: kp_px (..., 21, 2) pixels -> (...,) pixels, wrist to middle-finger MCP."""
    kp = np.asarray(kp_px, np.float64)
    return np.linalg.norm(kp[..., MIDDLE_MCP, :] - kp[..., WRIST, :], axis=-1)


@dataclasses.dataclass(frozen=True)
class Reprojection:
    """Reprojection of a clip's joints onto reference 2D points.

    dist (N, J): distance in hand sizes (nan where not valid); hand_size (N,) pixels of the reference;
    median, p95: over every valid (frame, joint) pair pooled (nan when there is none); n_frames: frames scored.
    """

    dist: np.ndarray
    hand_size: np.ndarray
    median: float
    p95: float
    n_frames: int

    def summary(self) -> dict:
        return {"reproj_med": self.median, "reproj_p95": self.p95, "frames": self.n_frames}


def reprojection(joints_cam: np.ndarray, K: np.ndarray, kp_px: np.ndarray, valid: np.ndarray | None = None,
                 joints: np.ndarray | None = None) -> Reprojection:
    """Distances between the projected joints and reference 2D points, in hand sizes.

    joints_cam (N, 21, 3) metres, camera frame; K (3, 3) or (N, 3, 3); kp_px (N, 21, 2) the reference 2D
    (independent of joints_cam: detector landmarks or true 2D); valid (N,) frames or (N, 21) joints to score
    (default all); joints: optional index array restricting the joints (default all 21).
    A joint at or behind the camera counts as `BEHIND` (1e6) hand sizes off. Hand size is the reference's
    (`hand_size_px`); frames where it is 0 or undefined are left out.
    """
    j = np.asarray(joints_cam, np.float64)
    kp = np.asarray(kp_px, np.float64)
    if j.ndim != 3 or j.shape[-1] != 3 or kp.shape != j.shape[:-1] + (2,):
        raise ValueError(f"joints_cam {j.shape} and kp_px {kp.shape}: expected (N, J, 3) and (N, J, 2)")
    n, nj = j.shape[:2]
    K = np.asarray(K, np.float64)
    K = np.broadcast_to(K, (n, 3, 3)) if K.ndim == 2 else K
    m = np.ones((n, nj), bool) if valid is None else np.asarray(valid, bool)
    m = np.broadcast_to(m[:, None], (n, nj)) if m.ndim == 1 else m
    size = hand_size_px(kp)
    px = project(j, K)
    d = np.linalg.norm(px - kp, axis=-1) / np.where(size > 0, size, np.nan)[:, None]
    behind = np.isnan(px).any(-1) & np.isfinite(kp).all(-1) & np.isfinite(size)[:, None]
    d = np.where(behind, BEHIND, d)
    sel = np.zeros(nj, bool)
    sel[np.arange(nj) if joints is None else np.asarray(joints)] = True
    m = m & sel[None] & (size > 0)[:, None]
    dist = np.where(m, d, np.nan)
    vals = dist[m]
    med = float(np.median(vals)) if vals.size else float("nan")
    p95 = float(np.percentile(vals, 95)) if vals.size else float("nan")
    return Reprojection(dist, size, med, p95, int(m.any(1).sum()))


def hand_size_3d(joints: np.ndarray) -> np.ndarray:
    """joints (..., 21, 3) -> (...,) 3D length wrist to middle MCP (the joints' unit)."""
    j = np.asarray(joints, np.float64)
    return np.linalg.norm(j[..., MIDDLE_MCP, :] - j[..., WRIST, :], axis=-1)


def hand_size_error(joints: np.ndarray, joints_gt: np.ndarray) -> np.ndarray:
    """Relative hand size error per frame: joints, joints_gt (N, 21, 3) -> (N,) = size / true size - 1
    (0.05 = the result is 5 % too large), size = `hand_size_3d`; nan where the truth has no size (wrist on
    the middle MCP: a degenerate label)."""
    size_gt = hand_size_3d(joints_gt)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(size_gt > 0, hand_size_3d(joints) / size_gt - 1.0, np.nan)


def camera_error_mm(joints: np.ndarray, joints_gt: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Camera-frame error without alignment: joints, joints_gt (N, 21, 3) metres -> (N,) mean per-joint
    Euclidean distance, mm, over each frame's valid joints (valid (N, 21) bool, default all)."""
    e = np.linalg.norm(np.asarray(joints, np.float64) - np.asarray(joints_gt, np.float64), axis=-1) * 1000.0
    if valid is None:
        return e.mean(-1)
    v = np.asarray(valid, bool)
    return np.where(v, e, 0.0).sum(-1) / np.maximum(v.sum(-1), 1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def flexion_deg(joints: np.ndarray, side: str) -> np.ndarray:
    """Signed flexion of the hinge joints, degrees: joints (N, 21, 3), side "right"/"left" -> (N, 14) in the
    order of FLEX_JOINTS (thumb MCP, IP; index MCP, PIP, DIP; middle ...; pinky ...).

    At joint j with parent p and child c: the rotation from the bone p -> j to the bone j -> c about the
    finger's flexion axis (the component about other axes, abduction and twist, is ignored), positive
    when the finger curls towards the palm side. The axis comes from the palm, not from the finger's own
    bend, so a finger bent backwards reads negative: axis = u x n, with u the direction wrist -> the
    finger's MCP (thumb: CMC -> MCP) and n the palm side, the volar normal of the triangle wrist / index
    MCP / pinky MCP (right: (index - wrist) x (pinky - wrist), left: its opposite); for the thumb n is the
    direction from its MCP to the palm centre (mean of the wrist and the four MCPs), where a thumb curls
    (the open model's thumb, bent at rest, reads about +10 degrees at MCP and IP when open).
    Computed from the joints alone, so the result and the truth are measured by the same rule.
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    j = np.asarray(joints, np.float64)
    volar = _unit(np.cross(j[..., 5, :] - j[..., 0, :], j[..., 17, :] - j[..., 0, :]))
    if side == "left":
        volar = -volar
    centre = j[..., [0, 5, 9, 13, 17], :].mean(-2)
    out = []
    for name, chain in FLEX_JOINTS.items():
        base = chain[0]
        if name == "thumb":
            n = _unit(centre - j[..., base, :])
            u = _unit(j[..., base, :] - j[..., 1, :])
        else:
            n = volar
            u = _unit(j[..., base, :] - j[..., 0, :])
        axis = _unit(np.cross(u, n))
        for k in chain:
            u_in = _unit(j[..., k, :] - j[..., _PARENT[k], :])
            u_out = _unit(j[..., k + 1, :] - j[..., k, :])
            out.append(np.degrees(np.arctan2((np.cross(u_in, u_out) * axis).sum(-1), (u_in * u_out).sum(-1))))
    return np.stack(out, -1)


def bent_against(joints: np.ndarray, joints_gt: np.ndarray, side: str, min_deg: float = 10.0) -> np.ndarray:
    """Fingers bent against the truth: joints, joints_gt (N, 21, 3), side -> (N, 5) bool, fingers in
    FINGER_NAMES order: some hinge joint of the finger is flexed >= min_deg one way in the truth and
    >= min_deg the other way in the result (`flexion_deg`)."""
    f, g = flexion_deg(joints, side), flexion_deg(joints_gt, side)
    bad = ((g >= min_deg) & (f <= -min_deg)) | ((g <= -min_deg) & (f >= min_deg))  # (N, 14)
    out, k = [], 0
    for chain in FLEX_JOINTS.values():
        out.append(bad[..., k:k + len(chain)].any(-1))
        k += len(chain)
    return np.stack(out, -1)
