"""Accuracy on the real dev crops (static images, per-crop intrinsics): raw MediaPipe vs ours.

Runs `python -m core capture IMAGES --static --hands 1 --intrinsics labels.npz:K_crop` then `eval`, then
reports PA-MPJPE and wrist-relative error on two halves of the clip: the 292 crops are consecutive
frames of one video, so the fit's settings (`core.fit.FitConfig`) were tuned on frames 0-145 only and
frames 146-291 are the held-out check (``--split`` moves the boundary).
Usage: python -m benchmarks.dev_eval [--out out/dev_clip.npz] [--split 146]
"""
from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
import sys

import numpy as np

from benchmarks.common import ROOT, need_data


def split_table(clip_path: str, labels_path: str, split: int) -> str:
    """PA-MPJPE and wrist-relative MPJPE (mm) of MediaPipe's world landmarks and our joints, on the
    detected frames before and from ``split``, and the ratio ours / MediaPipe."""
    sys.path.insert(0, str(ROOT))
    from core import metrics
    from core.clip import load_clip

    clip = load_clip(clip_path)
    with np.load(labels_path, allow_pickle=False) as z:
        gt = np.asarray(z["joints_cam"], np.float64)[clip.frame_index]
    h = int(np.argmax(clip.detected.sum(1)))
    ok = clip.detected[h] & clip.valid[h]
    idx = np.asarray(clip.frame_index)
    rows = [f"{'frames':<16}{'n':>5}{'method':>11}{'PA-MPJPE':>10}{'wrist-rel':>11}"]
    for name, mask in ((f"tune 0-{split - 1}", idx < split), (f"held {split}-{idx.max()}", idx >= split)):
        m = ok & mask
        if not m.any():
            continue
        vals = {}
        for method, pred in (("mediapipe", clip.landmarks_world[h]), ("ours", clip.joints[h])):
            p = pred.astype(np.float64)[m]
            vals[method] = (float(metrics.pa_mpjpe(p, gt[m]).mean()), float(metrics.mpjpe(p, gt[m], root=0).mean()))
            rows.append(f"{name:<16}{int(m.sum()):>5}{method:>11}{vals[method][0]:>10.2f}{vals[method][1]:>11.2f}")
        ratio = [vals["ours"][k] / vals["mediapipe"][k] for k in range(2)]
        rows.append(f"{name:<16}{int(m.sum()):>5}{'ratio':>11}{ratio[0]:>10.3f}{ratio[1]:>11.3f}")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "out" / "dev_clip.npz"))
    ap.add_argument("--split", type=int, default=146, help="first held-out frame (tuning used the frames before)")
    a = ap.parse_args(argv)
    dev = need_data("real_world_testset_dev")
    labels = dev / "labels.npz"
    subprocess.run([sys.executable, "-m", "core", "capture", str(dev / "images"), "--static", "--hands", "1",
                    "--intrinsics", f"{labels}:K_crop", "--out", a.out, "--quiet"], check=True, cwd=ROOT)
    subprocess.run([sys.executable, "-m", "core", "eval", a.out, "--gt", str(labels),
                    "--plot", str(Path(a.out).with_suffix(".png"))], check=True, cwd=ROOT)
    print()
    print(split_table(a.out, str(labels), a.split))


if __name__ == "__main__":
    main()
