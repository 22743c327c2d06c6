"""Accuracy on the InterHand2.6M and RHD samples (a few labelled images, 3D ground truth), three outputs.

Every image is captured on its own (the InterHand images differ in size; each shows its own person,
so each gets its own hand shape) with the labels' own intrinsics, once per method:

    python -m core capture IMAGES --static --hands 2 --start I --end I+1 --intrinsics labels.npz:K [FLAGS]

* full: the whole pipeline (VAE refinement, 2D-aware fit, limits), no flags;
* no VAE: ``--no-vae``;
* IK: ``--no-vae --no-fit``, the twist-swing IK of MediaPipe's 3D landmarks (placed by the 2D solve);
* paper: ``--model paper``, the paper's network (the shipped weights) on the detector's crops, placed by the fit;
and the raw detector (MediaPipe's world landmarks, from the full capture; detection ignores the flags).

Each labelled hand of each image (InterHand: the hand axis with ``valid``; RHD: ``hand_side``) is matched
to a detected hand by its 2D landmarks against the labels projected through K (mean distance under
`MATCH_FRACTION` of the labelled hand's box diagonal), whatever side MediaPipe gave it: "found as" says
which side that was, and a hand found with the wrong side is scored (as that side's fit) but left out
of the per-side means. Figures, mm: PA-MPJPE, wrist-relative MPJPE (no rotation alignment), and for
the MANO outputs the camera-frame MPJPE (no alignment: placement and depth, known K) and the frames
more than 5 deg outside the joint limits (`core.eval.evaluate`); for the raw detector that column holds the
frames where the IK of its landmarks, before any limit projection, is more than 5 deg outside them.
Bone-length variation is left out: one image per capture, and every MANO output is rigid by construction.
Usage: python -m benchmarks.samples_eval [--out out/samples]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, need_data

METHODS = (("full", ()), ("no VAE", ("--no-vae",)), ("IK", ("--no-vae", "--no-fit")), ("paper", ("--model", "paper")))
SETS = (("interhand_samples", "InterHand2.6M samples: real photos (CC BY-NC 4.0)"),
        ("rhd_samples", "RHD samples: SYNTHETIC renders (exact labels; not evidence of real-world accuracy)"))
MATCH_FRACTION = 0.35


def raw_ik_excess_deg(world: np.ndarray, side: str) -> np.ndarray:
    """Largest angle (N,) degrees outside `core.solve.limits` of the IK of detector landmarks (N, 21, 3)
    (MediaPipe order) before any limit projection (`core.net.ablation.ik_joints`; left hands mirrored)."""
    sys.path.insert(0, str(ROOT))
    import torch

    from core.hand.model import MANO21_FROM_MP

    from core.hand.load import load_model
    from core.hand.mano import ManoLayer
    from core.net.ablation import ik_joints

    mirror = np.array([-1.0, 1.0, 1.0], np.float32) if side == "left" else np.ones(3, np.float32)
    j21 = torch.as_tensor(np.asarray(world, np.float32)[:, MANO21_FROM_MP] * mirror)
    _, viol = ik_joints(ManoLayer(load_model("right")), j21)
    return viol.max((1, 2))


def _capture(images: Path, i: int, labels: Path, flags: tuple, out: Path):
    """The clip of image ``i`` (None when no hand was found) and the command line it stands for."""
    from core.capture import CaptureOptions, capture_to_file
    from core.cli import build_parser
    from core.io.clip import load_clip
    from core.errors import CaptureError
    from core.progress import Reporter

    argv = ["capture", str(images), "--static", "--hands", "2", "--start", str(i), "--end", str(i + 1),
            "--intrinsics", f"{labels}:K", "--out", str(out), "--quiet", *flags]
    try:
        capture_to_file(CaptureOptions.from_args(build_parser().parse_args(argv)), out, Reporter("quiet"))
    except CaptureError as exc:
        return None, str(exc)
    return load_clip(out), ""


def _project(K: np.ndarray, x: np.ndarray) -> np.ndarray:
    p = x @ K.T
    return p[..., :2] / p[..., 2:]


def match(clip, gts: dict, K: np.ndarray) -> dict:
    """Labelled side -> (detected side or None, mean 2D distance px) for one-frame ``clip``; ``gts``: side ->
    (joints (21, 3), valid (21,)). Greedy on the smallest distance, each hand used once."""
    cands = []
    for gs, (x, v) in gts.items():
        uv = _project(K, x[v])
        diag = float(np.linalg.norm(uv.max(0) - uv.min(0)))
        for h, cs in enumerate(clip.sides if clip is not None else ()):
            if clip.detected[h, 0]:
                d = float(np.linalg.norm(clip.landmarks_px[h, 0][v] - uv, axis=-1).mean())
                if d < MATCH_FRACTION * diag:
                    cands.append((d, gs, cs))
    out = {gs: (None, float("nan")) for gs in gts}
    used = set()
    for d, gs, cs in sorted(cands):
        if out[gs][0] is None and cs not in used:
            out[gs] = (cs, d)
            used.add(cs)
    return out


def _scores(clip, gt, gs: str, found: str) -> dict:
    """PA, wrist-relative, camera-frame MPJPE (mm) and the limit figure, per method name, of one hand."""
    from core.eval.evaluate import evaluate

    rep = evaluate(clip, gt, side=found)
    h = clip.hand(found)
    fi = int(clip.frame_index[0])
    v = gt.valid[fi]
    out = {}
    for name in ("mediapipe", "ours"):
        row = rep.rows[name]
        out[name] = {"pa": row["pa_mpjpe_mm"], "wr": row["wrist_rel_mm"]}
    cam = clip.joints[h, 0][v].astype(np.float64) - gt.joints[fi][v]
    out["ours"]["cam"] = float(np.linalg.norm(cam, axis=-1).mean() * 1000.0)
    out["ours"]["viol"] = rep.rows["ours"]["limit_viol_frames"]
    out["mediapipe"]["ik_excess"] = float(raw_ik_excess_deg(clip.landmarks_world[h, :1], found)[0])
    return out


def eval_set(name: str, title: str, out_dir: Path) -> str:
    from core.eval.evaluate import load_gt

    root = need_data(name)
    labels = root / "labels.npz"
    with np.load(labels, allow_pickle=False) as z:
        files = [str(f) for f in z["image_files"]]
        Ks = np.asarray(z["K"], np.float64)
    n = len(files)
    sides = ("right", "left")
    gts = {}
    for s in sides:
        try:
            gts[s] = load_gt(labels, hand=s)
        except Exception:  # noqa: BLE001 - the set has no such hand
            pass
    clips = {}
    notes = []
    for i in range(n):
        for m, flags in METHODS:
            clip, err = _capture(root / "images", i, labels, flags, out_dir / f"{name}_{i}_{m.replace(' ', '_')}.npz")
            clips[i, m] = clip
            if clip is None and m == "full":
                notes.append(f"{files[i]}: {err}")
    lines = [f"{title}", f"{n} images, each captured alone: --static --hands 2 --intrinsics labels.npz:K "
             "(known intrinsics); methods: full (default), no VAE (--no-vae), IK (--no-vae --no-fit), paper "
             "(--model paper)",
             f"{'image':<16}{'GT':<7}{'found as':<10}{'2D px':>7}  {'method':<11}{'PA-MPJPE':>9}{'wrist-rel':>10}"
             f"{'camera':>8}{'>5 deg':>8}"]
    summary = {}  # (side, method) -> list of score dicts of hands found with the right side
    counts = {s: [0, 0, 0] for s in sides}  # labelled, found, found with the right side
    for i in range(n):
        labelled = {s: (gts[s].joints[i], gts[s].valid[i]) for s in gts if gts[s].frames[i]}
        found_full = match(clips[i, "full"], labelled, Ks[i])
        for gs in sides:
            if gs not in labelled:
                continue
            found, d = found_full[gs]
            counts[gs][0] += 1
            head = f"{files[i]:<16}{gs:<7}"
            if found is None:
                lines.append(head + f"{'missed':<10}")
                continue
            counts[gs][1] += 1
            counts[gs][2] += found == gs
            tag = found if found == gs else f"{found}(!)"
            rows = []
            for m, _ in METHODS:
                clip = clips[i, m]
                if clip is None or match(clip, labelled, Ks[i])[gs][0] != found:
                    notes.append(f"{files[i]} {gs}: the {m} capture detected differently from the full one")
                    continue
                sc = _scores(clip, gts[gs], gs, found)
                if m == "full":
                    rows.append(("mediapipe", sc["mediapipe"]))
                rows.append((m, sc["ours"]))
                if found == gs:
                    summary.setdefault((gs, m), []).append(sc["ours"])
                    if m == "full":
                        summary.setdefault((gs, "mediapipe"), []).append(sc["mediapipe"])
            for k, (m, r) in enumerate(rows):
                pre = (head + f"{tag:<10}{d:>7.1f}") if k == 0 else " " * 40
                cam = f"{r['cam']:>8.1f}" if "cam" in r else f"{'-':>8}"
                viol = f"{r['viol']:>8}" if "viol" in r else f"{int(r['ik_excess'] > 5.0):>7}*"
                lines.append(pre + f"  {m:<11}{r['pa']:>9.1f}{r['wr']:>10.1f}{cam}{viol}")
    lines.append("")
    lines.append(f"{'side':<7}{'GT hands':>9}{'found':>7}{'right side':>11}  {'method':<11}{'PA-MPJPE':>9}"
                 f"{'wrist-rel':>10}{'camera':>8}{'>5 deg':>8}")
    for s in sides:
        if not counts[s][0]:
            continue
        first = True
        for m in ("mediapipe",) + tuple(m for m, _ in METHODS):
            rs = summary.get((s, m), [])
            pre = f"{s:<7}{counts[s][0]:>9}{counts[s][1]:>7}{counts[s][2]:>11}" if first else " " * 34
            first = False
            if not rs:
                lines.append(pre + f"  {m:<11}{'-':>9}{'-':>10}{'-':>8}{'-':>8}")
                continue
            mean = lambda k: float(np.mean([r[k] for r in rs]))  # noqa: E731
            cam = f"{mean('cam'):>8.1f}" if "cam" in rs[0] else f"{'-':>8}"
            viol = (f"{sum(r['viol'] for r in rs):>8}" if "viol" in rs[0]
                    else f"{sum(int(r['ik_excess'] > 5.0) for r in rs):>7}*")
            lines.append(pre + f"  {m:<11}{mean('pa'):>9.1f}{mean('wr'):>10.1f}{cam}{viol}")
    lines.append("mm; means over the hands found with the right side; camera: MANO joints in the camera frame, no "
                 "alignment; >5 deg: frames outside the joint limits (* raw: of the IK of its landmarks, before "
                 "the limit projection every MANO output gets)")
    lines += [f"note: {t}" for t in notes]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "out" / "samples"), help="folder for the clips")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for k, (name, title) in enumerate(SETS):
        if k:
            print()
        print(eval_set(name, title, out), flush=True)


if __name__ == "__main__":
    main()
