"""Score a captured clip against 3D ground truth: raw detector vs our MANO output.

Ground truth: an ``.npz`` with ``joints_cam`` (N, 21, 3) metres, MediaPipe order, camera frame, frame
``i`` of the clip's source matching row ``i`` (``frame_index`` picks rows). Reported on the frames where
the hand was detected, for both the detector's own 3D (``landmarks_world``) and our joints:
PA-MPJPE, wrist-relative MPJPE (no rotation alignment), bone-length variation, jitter, and for ours the
joint-limit violations.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from . import limits, metrics
from .clip import ClipResult
from .errors import CaptureError


@dataclasses.dataclass(frozen=True)
class Report:
    """Evaluation figures; ``rows`` maps a method name ("mediapipe", "ours") to its metrics dict."""

    n_frames: int
    n_detected: int
    side: str
    rows: dict
    per_frame: dict = dataclasses.field(default_factory=dict)  # name -> (frame_index (N,), PA (N,), wrist-rel (N,)) mm

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
        fig.suptitle(f"{self.side} hand, {self.n_detected} of {self.n_frames} frames detected")
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def table(self) -> str:
        keys = ["pa_mpjpe_mm", "wrist_rel_mm", "bone_var_mm", "jitter_mm_f2", "limit_viol_frames"]
        head = f"{'method':<12}" + "".join(f"{k:>19}" for k in keys)
        lines = [f"frames {self.n_frames}, {self.side} hand detected on {self.n_detected} "
                 f"({100.0 * self.n_detected / max(self.n_frames, 1):.1f} %)", head]
        for name, row in self.rows.items():
            cells = []
            for k in keys:
                v = row.get(k)
                cells.append(f"{'-':>19}" if v is None else f"{v:>19.2f}" if isinstance(v, float) else f"{v:>19}")
            lines.append(f"{name:<12}" + "".join(cells))
        return "\n".join(lines)


def load_gt(path: str | Path, key: str = "joints_cam") -> np.ndarray:
    """Ground-truth joints (N, 21, 3) from an .npz; CaptureError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CaptureError(f"ground-truth file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if key not in z.files:
                raise CaptureError(f"{path.name} has no '{key}' array (has: {', '.join(z.files)})")
            gt = np.asarray(z[key], np.float64)
    except CaptureError:
        raise
    except Exception as exc:  # noqa: BLE001 - any read failure is the user's file
        raise CaptureError(f"cannot read ground truth {path.name}: {exc}") from None
    if gt.ndim != 3 or gt.shape[1:] != (21, 3):
        raise CaptureError(f"{path.name}: '{key}' has shape {gt.shape}, expected (N, 21, 3)")
    return gt


def evaluate(clip: ClipResult, gt: np.ndarray, side: str | None = None) -> Report:
    """Compare ``clip`` with ground truth ``gt`` (N, 21, 3) indexed by ``clip.frame_index``."""
    if clip.n_hands == 0:
        raise CaptureError("the clip holds no hand to evaluate")
    if side is None:
        h = int(np.argmax(clip.detected.sum(1)))
    else:
        h = clip.hand(side)
    fi = np.asarray(clip.frame_index)
    if fi.max() >= len(gt):
        raise CaptureError(f"clip frame {fi.max()} has no ground truth (ground truth has {len(gt)} frames)")
    g = gt[fi]
    det = clip.detected[h] & clip.valid[h]
    rows = {}
    per_frame = {}
    raw = clip.landmarks_world[h].astype(np.float64)
    ours = clip.joints[h].astype(np.float64)
    for name, pred in (("mediapipe", raw), ("ours", ours)):
        if det.any():
            pa, wr = metrics.pa_mpjpe(pred[det], g[det]), metrics.mpjpe(pred[det], g[det], root=0)
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
        from .hand_model import load_model
        from .mano import ManoLayer
        from .rot import aa_to_rotmat

        model = load_model(clip.sides[h], clip.model_path(h))
        layer = ManoLayer(model)
        aa = np.concatenate([clip.global_orient[h][:, None], clip.hand_pose[h]], 1)[det]
        rot = aa_to_rotmat(torch.as_tensor(aa, dtype=torch.float32))
        betas = torch.as_tensor(clip.betas[h], dtype=torch.float32)[None].expand(len(aa), -1)
        viol = limits.violations_deg(limits.joint_angles(layer, rot, betas))
        rows["ours"]["limit_viol_frames"] = int((viol.max((1, 2)) > 5.0).sum())
    rows["gt"] = {"bone_var_mm": metrics.bone_length_variation(g, det), "jitter_mm_f2": metrics.jitter(g, det)}
    return Report(n_frames=len(fi), n_detected=int(det.sum()), side=clip.sides[h], rows=rows, per_frame=per_frame)
