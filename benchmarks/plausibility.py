"""Plausibility of the final output on every shared clip and image set (issue 5's must-show):
frames more than 5 deg outside a joint's range, and frames where two fingers penetrate > 2 mm, between
the capsules the penetration fix uses and, since issue 10, on the mesh (fingers into fingers or the palm,
`core.contact.hands.self_penetration`; "fingers" = fingers into fingers only).

Captures each input twice in one run, with the default pipeline and with ``--no-collide`` (the
penetration fix off, the ablation), videos in tracking mode, image sets in static mode with their own
intrinsics, and reads the stored poses back (`core.eval.plausibility.check_clip`). The InterHand images
differ in size, so each is captured on its own (as `benchmarks.samples_eval` does); images where
MediaPipe finds no hand have nothing to check. Then the dev crops' accuracy with and without the fix.
Usage: python -m benchmarks.plausibility [--out out/plausibility]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import DATA, ROOT

DEV_K = ["--intrinsics", "{data}/real_world_testset_dev/labels.npz:K_crop"]
INPUTS = [  # (name, path under the data folder, extra capture arguments, one capture per image)
    ("single_hand.mp4", "video/single_hand.mp4", [], False),
    ("two_hands.mp4", "video/two_hands.mp4", [], False),
    ("hand_object.mp4", "video/hand_object.mp4", [], False),
    ("real_world_testset_dev", "real_world_testset_dev/images", ["--static", "--hands", "1", *DEV_K], False),
    ("interhand_samples", "interhand_samples/images", ["--static", "--intrinsics", "{data}/interhand_samples/labels.npz:K"], True),
    ("rhd_samples (synthetic)", "rhd_samples/images", ["--static", "--intrinsics", "{data}/rhd_samples/labels.npz:K"], False),
]
VARIANTS = (("fix on", []), ("fix off", ["--no-collide"]))


def capture(src: Path, out: Path, extra: list[str]) -> bool:
    """Run the capture CLI; False when it found no hand (exit 2), CalledProcessError on other failures."""
    args = [a.format(data=DATA) for a in extra]
    r = subprocess.run([sys.executable, "-m", "core", "capture", str(src), "--out", str(out), "--quiet", *args],
                       cwd=ROOT, capture_output=True, text=True)
    if r.returncode == 2 and "no hand found" in r.stderr:
        return False
    if r.returncode:
        raise subprocess.CalledProcessError(r.returncode, r.args, r.stdout, r.stderr)
    return True


def clips_of(name: str, src: Path, extra: list[str], per_image: bool, out: Path) -> list[Path]:
    stem = name.split()[0].replace(".mp4", "")
    if not per_image:
        return [out / f"{stem}.npz"] if capture(src, out / f"{stem}.npz", extra) else []
    paths = []
    for i in range(len(sorted(p for p in src.iterdir() if p.is_file()))):
        p = out / f"{stem}_{i}.npz"
        if capture(src, p, [*extra, "--start", str(i), "--end", str(i + 1)]):
            paths.append(p)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "out" / "plausibility"))
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from core.io.clip import load_clip
    from core.eval.plausibility import check_clip

    head = (f"{'input':<26}{'hand':>6}{'frames':>8}{'>5deg':>7}{'max deg':>9}{'>2mm':>6}{'max mm':>8}"
            f"{'>2mm off':>10}{'max mm off':>12}{'mesh>2':>8}{'mesh max':>10}{'fingers':>9}{'mesh>2 off':>12}"
            f"{'mesh max off':>14}")
    rows, missing = [head], []
    totals = {v: [0, 0, 0] for v, _ in VARIANTS}
    t_mesh, n_mesh = 0.0, 0
    for name, rel, extra, per_image in INPUTS:
        src = DATA / rel
        if not src.exists():
            missing.append(name)
            continue
        figs = {}
        for variant, flags in VARIANTS:
            out = Path(a.out) / variant.replace(" ", "_")
            out.mkdir(parents=True, exist_ok=True)
            for path in clips_of(name, src, [*extra, *flags], per_image, out):
                clip = load_clip(path)
                for h in range(clip.n_hands):
                    t0 = time.perf_counter()
                    s = check_clip(clip, h).summary()
                    t_mesh, n_mesh = t_mesh + time.perf_counter() - t0, n_mesh + s["frames"]
                    acc = figs.setdefault((variant, clip.sides[h]), [0, 0, 0.0, 0, 0.0, 0, 0.0, 0])
                    acc[0] += s["frames"]
                    acc[1] += s["limit_viol_frames"]
                    acc[2] = max(acc[2], s["max_limit_deg"])
                    acc[3] += s["penetration_frames"]
                    acc[4] = max(acc[4], s["max_penetration_mm"])
                    acc[5] += s["mesh_penetration_frames"]
                    acc[6] = max(acc[6], s["max_mesh_penetration_mm"])
                    acc[7] += s["mesh_finger_frames"]
                    totals[variant][0] += s["limit_viol_frames"]
                    totals[variant][1] += s["penetration_frames"]
                    totals[variant][2] += s["mesh_penetration_frames"]
        for side in ("right", "left"):
            on, off = figs.get(("fix on", side)), figs.get(("fix off", side))
            if on is None:
                continue
            off = off or [0, 0, 0.0, 0, 0.0, 0, 0.0, 0]
            rows.append(f"{name:<26}{side:>6}{on[0]:>8}{on[1]:>7}{on[2]:>9.2f}{on[3]:>6}{on[4]:>8.2f}"
                        f"{off[3]:>10}{off[4]:>12.2f}{on[5]:>8}{on[6]:>10.2f}{on[7]:>9}{off[5]:>12}{off[6]:>14.2f}")
    print("\n".join(rows))
    print("frames: frames holding a pose (detected or gap-filled); >5deg / >2mm: frames more than 5 deg outside "
          "a joint's range / with two fingers' capsules overlapping deeper than 2 mm; 'off': --no-collide; mesh: "
          "a finger's vertex inside another finger or the palm (or the palm's inside a finger) deeper than 2 mm on "
          "the mesh; fingers: the mesh frames from fingers into fingers only")
    for variant, (lim, pen, mesh) in totals.items():
        print(f"total, {variant}: {lim} frames > 5 deg outside the limits, {pen} frames with fingers penetrating > 2 mm "
              f"(capsules), {mesh} on the mesh")
    print(f"plausibility check with the mesh: {t_mesh:.1f} s for {n_mesh} frames ({1000 * t_mesh / max(n_mesh, 1):.1f} ms a frame)")
    if missing:
        print(f"not found under {DATA}: {', '.join(missing)}")
    dev_accuracy(Path(a.out))


def dev_accuracy(out: Path) -> None:
    """Dev crops, the captures above: accuracy with and without the penetration fix."""
    from core.eval import metrics
    from core.io.clip import load_clip

    labels = DATA / "real_world_testset_dev" / "labels.npz"
    if not labels.exists():
        return
    with np.load(labels, allow_pickle=False) as z:
        gt_all = np.asarray(z["joints_cam"], np.float64)
    print(f"\n{'dev crops (known K)':<22}{'PA-MPJPE':>10}{'wrist-rel':>11}")
    for variant, _ in VARIANTS:
        clip = load_clip(out / variant.replace(" ", "_") / "real_world_testset_dev.npz")
        h = int(np.argmax(clip.detected.sum(1)))
        det = clip.detected[h] & clip.valid[h]
        pred, gt = clip.joints[h][det].astype(np.float64), gt_all[clip.frame_index][det]
        print(f"{'penetration ' + variant:<22}{metrics.pa_mpjpe(pred, gt).mean():>10.2f}"
              f"{metrics.mpjpe(pred, gt, root=0).mean():>11.2f}")


if __name__ == "__main__":
    main()
