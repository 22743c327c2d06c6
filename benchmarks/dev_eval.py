"""Accuracy on the real dev crops (static images): raw MediaPipe vs three MANO outputs, known vs guessed K.

Captures the 292 crops four times (`python -m core capture IMAGES --static --hands 1 ...`):
* known intrinsics (``--intrinsics labels.npz:K_crop``): the full pipeline (no flags), without the VAE
  refinement (``--no-vae``), and the analytic IK output (``--no-vae --no-fit``: twist-swing IK of
  MediaPipe's 3D landmarks, no VAE, no 2D-aware fit);
* guessed intrinsics (no ``--intrinsics``: the default field-of-view guess): the full pipeline;
then runs ``eval`` on the full known-K clip (its table and per-frame plot) and prints one table of every
capture: detection rate, PA-MPJPE, wrist-relative MPJPE, camera-frame MPJPE of the MANO joints (no
alignment: placement and depth, where the intrinsics matter), bone-length variation, jitter and frames
more than 5 deg outside the joint limits (for raw MediaPipe: of the IK of its landmarks before any limit
projection, `benchmarks.samples_eval.raw_ik_excess_deg`). Then the same errors on two halves: the crops
are consecutive frames of one video, so the fit's settings (`core.solve.fit.FitConfig`) were tuned on frames
0-145 only and frames 146-291 are the held-out check (``--split`` moves the boundary).
Usage: python -m benchmarks.dev_eval [--out out/dev_clip.npz] [--split 146]
"""
from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
import sys

import numpy as np

from benchmarks.common import ROOT, need_data

# (intrinsics, method, capture flags, suffix of the clip file after --out's stem)
RUNS = (("known", "full", (), ""), ("known", "no VAE", ("--no-vae",), "_novae"),
        ("known", "IK", ("--no-vae", "--no-fit"), "_ik"), ("guessed", "full", (), "_guessed"))


def _clip_path(out: str, suffix: str) -> Path:
    p = Path(out)
    return p.with_name(p.stem + suffix + p.suffix)


def _rows(clips: dict, labels_path: str) -> list[tuple]:
    """(intrinsics, method, clip, hand slot, report) per row: raw MediaPipe of each intrinsics' full
    capture, then each capture's MANO output."""
    sys.path.insert(0, str(ROOT))
    from core.eval.evaluate import evaluate, load_gt

    gt = load_gt(labels_path)
    out = []
    for (kind, method, _, _), clip in clips.items():
        rep = evaluate(clip, gt)
        h = clip.hand(rep.side)
        if method == "full":
            out.append((kind, "mediapipe", clip, h, rep))
        out.append((kind, method, clip, h, rep))
    order = {"mediapipe": 0, "full": 1, "no VAE": 2, "IK": 3}
    return sorted(out, key=lambda r: (r[0] != "known", order[r[1]]))


def summary_table(clips: dict, labels_path: str) -> str:
    """One line per (intrinsics, method): figures on the detected frames, mm."""
    from benchmarks.samples_eval import raw_ik_excess_deg

    with np.load(labels_path, allow_pickle=False) as z:
        gt = np.asarray(z["joints_cam"], np.float64)
    head = (f"{'intrinsics':<11}{'method':<11}{'detected':>14}{'PA-MPJPE':>10}{'wrist-rel':>10}{'camera':>8}"
            f"{'bone var':>9}{'jitter':>8}{'>5 deg':>8}")
    lines = [head]
    for kind, method, clip, h, rep in _rows(clips, labels_path):
        name = "mediapipe" if method == "mediapipe" else "ours"
        row = rep.rows[name]
        det = clip.detected[h] & clip.valid[h]
        if name == "ours":
            cam = np.linalg.norm(clip.joints[h][det] - gt[clip.frame_index][det], axis=-1).mean() * 1000.0
            cam_s = f"{cam:>8.2f}"
            viol = f"{row['limit_viol_frames']:>8}"
        else:
            cam_s = f"{'-':>8}"
            viol = f"{int((raw_ik_excess_deg(clip.landmarks_world[h][det], clip.sides[h]) > 5.0).sum()):>7}*"
        detected = f"{rep.n_detected}/{rep.n_frames} ({100.0 * rep.n_detected / rep.n_frames:.1f}%)"
        lines.append(f"{kind:<11}{method:<11}{detected:>14}{row['pa_mpjpe_mm']:>10.2f}{row['wrist_rel_mm']:>10.2f}"
                     f"{cam_s}{row['bone_var_mm']:>9.2f}{row['jitter_mm_f2']:>8.2f}{viol}")
    lines.append("mm on the detected frames; camera: MANO joints in the camera frame, no alignment; bone var: "
                 "largest per-bone std; jitter: mm/frame^2; >5 deg: frames outside the joint limits (* raw "
                 "MediaPipe: of the IK of its landmarks, before the limit projection every MANO output gets)")
    return "\n".join(lines)


def split_table(clips: dict, labels_path: str, split: int) -> str:
    """PA-MPJPE and wrist-relative MPJPE (mm) of every row of `summary_table` on the detected frames
    before and from ``split``, and each output's ratio to raw MediaPipe of the same capture."""
    from core.eval import metrics

    with np.load(labels_path, allow_pickle=False) as z:
        gt_all = np.asarray(z["joints_cam"], np.float64)
    rows = [f"{'frames':<16}{'n':>5}  {'intrinsics':<11}{'method':<11}{'PA-MPJPE':>10}{'wrist-rel':>11}"
            f"{'PA ratio':>10}{'wr ratio':>10}"]
    table = _rows(clips, labels_path)
    idx_any = np.asarray(next(iter(clips.values())).frame_index)
    for name, lo, hi in ((f"tune 0-{split - 1}", 0, split), (f"held {split}-{idx_any.max()}", split, None)):
        raw = {}
        for kind, method, clip, h, _ in table:
            idx = np.asarray(clip.frame_index)
            m = clip.detected[h] & clip.valid[h] & (idx >= lo) & (idx < (hi if hi is not None else idx.max() + 1))
            if not m.any():
                continue
            pred = (clip.landmarks_world if method == "mediapipe" else clip.joints)[h].astype(np.float64)[m]
            g = gt_all[idx][m]
            v = (float(metrics.pa_mpjpe(pred, g).mean()), float(metrics.mpjpe(pred, g, root=0).mean()))
            if method == "mediapipe":
                raw[kind] = v
            ratio = "".join(f"{v[k] / raw[kind][k]:>10.3f}" for k in range(2)) if method != "mediapipe" else ""
            rows.append(f"{name:<16}{int(m.sum()):>5}  {kind:<11}{method:<11}{v[0]:>10.2f}{v[1]:>11.2f}{ratio}")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "out" / "dev_clip.npz"), help="the full known-K clip; the "
                    "others get _novae, _ik, _guessed after its stem")
    ap.add_argument("--split", type=int, default=146, help="first held-out frame (tuning used the frames before)")
    a = ap.parse_args(argv)
    dev = need_data("real_world_testset_dev")
    labels = dev / "labels.npz"
    sys.path.insert(0, str(ROOT))
    from core.io.clip import load_clip

    clips = {}
    for run in RUNS:
        kind, method, flags, suffix = run
        path = _clip_path(a.out, suffix)
        k_args = ["--intrinsics", f"{labels}:K_crop"] if kind == "known" else []
        cmd = [sys.executable, "-m", "core", "capture", str(dev / "images"), "--static", "--hands", "1", *k_args,
               *flags, "--out", str(path), "--quiet"]
        print(f"{kind} intrinsics, {method}: python -m core capture IMAGES --static --hands 1 "
              f"{' '.join(k_args[:1] + ['labels.npz:K_crop'] if k_args else [])} {' '.join(flags)}".rstrip(),
              flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        clips[run] = load_clip(path)
    print()
    print("full pipeline, known intrinsics (python -m core eval):", flush=True)
    subprocess.run([sys.executable, "-m", "core", "eval", a.out, "--gt", str(labels),
                    "--plot", str(Path(a.out).with_suffix(".png"))], check=True, cwd=ROOT)
    print()
    print(summary_table(clips, str(labels)))
    print()
    print(split_table(clips, str(labels), a.split))


if __name__ == "__main__":
    main()
