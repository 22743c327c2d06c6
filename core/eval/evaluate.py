"""Score a captured clip against 3D ground truth: raw detector vs our MANO output.

Ground truth: an ``.npz`` with ``joints_cam`` metres, MediaPipe order, camera frame, frame ``i`` of the
clip's source matching row ``i`` (``frame_index`` picks rows), either (N, 21, 3) for one hand or
(N, H, 21, 3) with a hand axis named by ``hand_order`` (e.g. InterHand's [right, left]); optional
``valid`` (N, 21) / (N, H, 21) bool marks the labelled joints, optional ``hand_side`` (N,) says which hand
a one-hand file's frame shows (e.g. RHD). Reported on the frames where the hand was detected and has
ground truth, for both the detector's own 3D (``landmarks_world``) and our joints: PA-MPJPE,
wrist-relative MPJPE (no rotation alignment), bone-length variation, jitter, and for ours the
error in the camera frame without any alignment (``camera_mm``; rough where the intrinsics were guessed,
which the table says), the frames more than 5 deg outside the joint limits and with fingers
penetrating > 2 mm (`core.eval.plausibility`), and the image alignment (`core.eval.reproj`): reprojection
median / p95 in hand sizes of our joints projected with the clip's K against the detector's own 2D
(``reproj_med`` / ``reproj_p95``) and, where K is known, against the ground truth projected with it
(``reproj_gt_med`` / ``reproj_gt_p95``); hand size error, % (``size_err_pct``, 3D wrist -> middle MCP).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from . import metrics, plausibility, reproj
from ..io.clip import ClipResult
from ..errors import CaptureError


@dataclasses.dataclass(frozen=True)
class Report:
    """Evaluation figures; ``rows`` maps a method name ("mediapipe", "ours") to its metrics dict."""

    n_frames: int
    n_detected: int
    side: str
    rows: dict
    per_frame: dict = dataclasses.field(default_factory=dict)  # name -> (frame_index (N,), PA (N,), wrist-rel (N,)) mm
    n_gt: int | None = None  # clip frames with ground truth of this hand (None: all of them)
    k_guessed: bool | None = None  # the clip's intrinsics were guessed (camera-frame figures are then rough)

    def plot(self, path: str | Path) -> Path:
        """A PNG of per-frame PA-MPJPE and wrist-relative error, raw detector vs ours."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
        for name, (fi, pa, wr) in self.per_frame.items():
            axes[0].plot(fi, pa, ".-", ms=2, lw=0.6, label=f"{name} (mean {pa.mean():.1f} mm)")
            axes[1].plot(fi, wr, ".-", ms=2, lw=0.6, label=f"{name} (mean {wr.mean():.1f} mm)")
        axes[0].set_ylabel("PA-MPJPE, mm")
        axes[1].set_ylabel("wrist-relative error, mm")
        axes[1].set_xlabel("frame")
        for ax in axes:
            ax.legend(loc="upper right")
            ax.grid(alpha=0.3)
        n_gt = self.n_frames if self.n_gt is None else self.n_gt
        fig.suptitle(f"{self.side} hand, {self.n_detected} of {n_gt} frames detected")
        return save_figure(fig, path)

    def table(self) -> str:
        keys = ["pa_mpjpe_mm", "wrist_rel_mm", "camera_mm", "bone_var_mm", "jitter_mm_f2", "limit_viol_frames",
                "penetration_frames", "reproj_med", "reproj_p95", "reproj_gt_med", "reproj_gt_p95", "size_err_pct"]
        head = f"{'method':<12}" + "".join(f"{k:>19}" for k in keys)
        n_gt = self.n_frames if self.n_gt is None else self.n_gt
        scope = f"frames {self.n_frames}" if n_gt == self.n_frames else \
            f"frames {self.n_frames}, {n_gt} with ground truth of this hand"
        intr = "" if self.k_guessed is None else \
            f"; intrinsics {'GUESSED (camera_mm is rough)' if self.k_guessed else 'known'}"
        lines = [f"{scope}, {self.side} hand detected on {self.n_detected} "
                 f"({100.0 * self.n_detected / max(n_gt, 1):.1f} %){intr}", head]
        for name, row in self.rows.items():
            cells = []
            for k in keys:
                v = row.get(k)
                cells.append(f"{'-':>19}" if v is None else f"{v:>19.2f}" if isinstance(v, float) else f"{v:>19}")
            lines.append(f"{name:<12}" + "".join(cells))
        return "\n".join(lines)


def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write (PNG, 100 dpi; the folder is created) and close a matplotlib figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


MIN_GT_JOINTS = 4  # a frame has ground truth when its wrist and at least this many joints are labelled


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """One hand's ground truth: joints (N, 21, 3) metres, valid (N, 21) bool (unlabelled joints are left
    out of every figure), side: the hand they belong to, when the file says (else None)."""

    joints: np.ndarray
    valid: np.ndarray
    side: str | None = None

    @classmethod
    def of(cls, gt) -> "GroundTruth":
        """``gt`` as is, or an array (N, 21, 3) with every joint labelled."""
        if isinstance(gt, cls):
            return gt
        j = np.asarray(gt, np.float64)
        return cls(j, np.ones(j.shape[:2], bool))

    @property
    def frames(self) -> np.ndarray:
        """(N,) bool: the frames with ground truth (wrist and `MIN_GT_JOINTS` joints labelled)."""
        return self.valid[:, 0] & (self.valid.sum(1) >= MIN_GT_JOINTS)

    def __len__(self) -> int:
        return len(self.joints)


def load_gt(path: str | Path, key: str = "joints_cam", hand: str | None = None) -> GroundTruth:
    """One hand's ground truth from an .npz (see the module docstring); CaptureError naming the file otherwise.

    ``hand`` ("right"/"left") picks the hand axis of an (N, H, 21, 3) array by ``hand_order``, and with a
    per-frame ``hand_side`` keeps only that hand's frames; it must be given for those files unless every
    frame shows the same hand.
    """
    path = Path(path)
    if not path.is_file():
        raise CaptureError(f"ground-truth file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if key not in z.files:
                raise CaptureError(f"{path.name} has no '{key}' array (has: {', '.join(z.files)})")
            gt = np.asarray(z[key], np.float64)
            valid = np.asarray(z["valid"]) if "valid" in z.files else None
            order = [str(x) for x in np.asarray(z["hand_order"]).ravel()] if "hand_order" in z.files else None
            per_frame = np.asarray(z["hand_side"]).astype(str) if "hand_side" in z.files else None
    except CaptureError:
        raise
    except Exception as exc:  # noqa: BLE001 - any read failure is the user's file
        raise CaptureError(f"cannot read ground truth {path.name}: {exc}") from None
    if gt.ndim not in (3, 4) or gt.shape[-2:] != (21, 3):
        raise CaptureError(f"{path.name}: '{key}' has shape {gt.shape}, expected (N, 21, 3) or (N, hands, 21, 3)")
    if valid is None:
        valid = np.ones(gt.shape[:-1], bool)
    elif valid.shape != gt.shape[:-1] or valid.dtype.kind not in "biu":
        raise CaptureError(f"{path.name}: 'valid' is {valid.dtype} {valid.shape}, expected bool {gt.shape[:-1]} "
                           f"like '{key}'")
    valid = valid.astype(bool)
    side = hand
    if gt.ndim == 4:
        if order is None or len(order) != gt.shape[1]:
            raise CaptureError(f"{path.name}: '{key}' holds {gt.shape[1]} hands but no 'hand_order' of "
                               f"{gt.shape[1]} names says which is which")
        if hand is None:
            raise CaptureError(f"{path.name} holds {', '.join(order)} hands: choose one with --gt-hand")
        if hand not in order:
            raise CaptureError(f"{path.name} has no {hand} hand (hand_order: {', '.join(order)})")
        k = order.index(hand)
        gt, valid = gt[:, k], valid[:, k]
    if per_frame is not None:
        if per_frame.shape != (len(gt),):
            raise CaptureError(f"{path.name}: 'hand_side' has shape {per_frame.shape}, expected ({len(gt)},)")
        sides = sorted(set(per_frame.tolist()))
        if hand is None:
            if len(sides) > 1:
                raise CaptureError(f"{path.name} holds {' and '.join(sides)} hands (hand_side): "
                                   "choose one with --gt-hand")
            side = sides[0] if sides else None
        elif hand not in sides:
            raise CaptureError(f"{path.name} has no {hand} hand (hand_side: {', '.join(sides)})")
        valid = valid & (per_frame == side)[:, None]
    return GroundTruth(gt, valid.copy(), side)


def _errors(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PA-MPJPE and wrist-relative MPJPE per frame (N,) mm over each frame's labelled joints."""
    pa, wr = np.zeros(len(pred)), np.zeros(len(pred))
    masks, group = np.unique(valid, axis=0, return_inverse=True)
    for g, m in enumerate(masks):
        f = np.flatnonzero(group.ravel() == g)
        pa[f] = metrics.pa_mpjpe(pred[f][:, m], gt[f][:, m])
        rel_p, rel_g = pred[f] - pred[f, :1], gt[f] - gt[f, :1]
        wr[f] = metrics.mpjpe(rel_p[:, m], rel_g[:, m])
    return pa, wr


def evaluate(clip: ClipResult, gt, side: str | None = None) -> Report:
    """Compare ``clip`` with ground truth indexed by ``clip.frame_index``: a `GroundTruth` or (N, 21, 3).

    ``side``: the clip's hand to score (default: the ground truth's side if known, else the most detected).
    """
    gt = GroundTruth.of(gt)
    if clip.n_hands == 0:
        raise CaptureError("the clip holds no hand to evaluate")
    side = side or gt.side
    if side is None:
        h = int(np.argmax(clip.detected.sum(1)))
    else:
        h = clip.hand(side)
    fi = np.asarray(clip.frame_index)
    if fi.max() >= len(gt):
        raise CaptureError(f"clip frame {fi.max()} has no ground truth (ground truth has {len(gt)} frames)")
    g, gv = gt.joints[fi], gt.valid[fi]
    has_gt = gt.frames[fi]
    if not has_gt.any():
        raise CaptureError(f"the ground truth labels no {gt.side + ' hand' if gt.side else 'hand'} on the clip's "
                           f"{len(fi)} frames")
    det = clip.detected[h] & clip.valid[h] & has_gt
    full = det & gv.all(1)  # every joint labelled: bone lengths and jitter of the ground truth itself
    rows = {}
    per_frame = {}
    raw = clip.landmarks_world[h].astype(np.float64)
    ours = clip.joints[h].astype(np.float64)
    for name, pred in (("mediapipe", raw), ("ours", ours)):
        if det.any():
            pa, wr = _errors(pred[det], g[det], gv[det])
            per_frame[name] = (fi[det], pa, wr)
            rows[name] = {
                "pa_mpjpe_mm": float(pa.mean()),
                "wrist_rel_mm": float(wr.mean()),
                "bone_var_mm": metrics.bone_length_variation(pred, det),
                "jitter_mm_f2": metrics.jitter(pred, det),
            }
        else:
            rows[name] = {}
    if det.any():
        from .plausibility import check_clip

        # Ours in the camera frame, no alignment at all: placement and depth too (MediaPipe's world
        # landmarks have no placement, so only ours gets this figure).
        cam = np.linalg.norm(ours[det] - g[det], axis=-1) * 1000.0
        rows["ours"]["camera_mm"] = float(cam[gv[det]].mean())
        # Image alignment (core.eval.reproj), in hand sizes: our joints projected with the clip's K against the
        # detector's own 2D, and against the true 2D (the ground truth projected with that K) where K is known.
        Kd = np.asarray(clip.K, np.float64)[det]
        r = reproj.reprojection(ours[det], Kd, clip.landmarks_px[h][det].astype(np.float64))
        if r.n_frames:  # frames whose reference has a hand size
            rows["ours"]["reproj_med"], rows["ours"]["reproj_p95"] = r.median, r.p95
        if not clip.K_guessed:
            r = reproj.reprojection(ours[det], Kd, reproj.project(g[det], Kd), gv[det])
            if r.n_frames:
                rows["ours"]["reproj_gt_med"], rows["ours"]["reproj_gt_p95"] = r.median, r.p95
        sized = gv[det][:, [reproj.WRIST, reproj.MIDDLE_MCP]].all(1)
        size_err = reproj.hand_size_error(ours[det][sized], g[det][sized])
        size_err = size_err[np.isfinite(size_err)]
        if size_err.size:
            rows["ours"]["size_err_pct"] = 100.0 * float(np.median(size_err))
        pl = check_clip(clip, h)
        keep = det[pl.frames]  # the scored frames among those holding a pose
        rows["ours"]["limit_viol_frames"] = int((pl.limit_deg[keep] > plausibility.LIMIT_DEG).sum())
        rows["ours"]["penetration_frames"] = int((pl.penetration_mm[keep] > plausibility.PENETRATION_M * 1000).sum())
    rows["gt"] = {"bone_var_mm": metrics.bone_length_variation(g, full), "jitter_mm_f2": metrics.jitter(g, full)}
    return Report(n_frames=len(fi), n_detected=int(det.sum()), side=clip.sides[h], rows=rows, per_frame=per_frame,
                  n_gt=int(has_gt.sum()), k_guessed=bool(clip.K_guessed))
