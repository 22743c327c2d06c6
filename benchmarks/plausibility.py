"""Plausibility of the final output on every shared clip and image set (issue 5's must-show):
frames more than 5 deg outside a joint's range, and frames where two fingers penetrate > 2 mm.

Captures each input with the default pipeline (videos in tracking mode, image sets in static mode
with their own intrinsics) and reads the stored poses back (`core.plausibility.check_clip`).
Usage: python -m benchmarks.plausibility [--out out/plausibility]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from benchmarks.common import DATA, ROOT

INPUTS = [  # (name, path under the data folder, extra capture arguments)
    ("single_hand.mp4", "video/single_hand.mp4", []),
    ("two_hands.mp4", "video/two_hands.mp4", []),
    ("hand_object.mp4", "video/hand_object.mp4", []),
    ("real_world_testset_dev", "real_world_testset_dev/images",
     ["--static", "--hands", "1", "--intrinsics", "{data}/real_world_testset_dev/labels.npz:K_crop"]),
    ("interhand_samples", "interhand_samples/images",
     ["--static", "--intrinsics", "{data}/interhand_samples/labels.npz:K"]),
    ("rhd_samples (synthetic)", "rhd_samples/images", ["--static", "--intrinsics", "{data}/rhd_samples/labels.npz:K"]),
]


def capture(src: Path, out: Path, extra: list[str]) -> None:
    args = [a.format(data=DATA) for a in extra]
    subprocess.run([sys.executable, "-m", "core", "capture", str(src), "--out", str(out), "--quiet", *args],
                   check=True, cwd=ROOT)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "out" / "plausibility"))
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from core.clip import load_clip
    from core.plausibility import check_clip

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    head = f"{'input':<26}{'hand':>6}{'frames':>8}{'>5deg':>7}{'max deg':>9}{'>2mm':>6}{'max mm':>8}"
    rows, missing, failed = [head], [], []
    total_lim = total_pen = 0
    for name, rel, extra in INPUTS:
        src = DATA / rel
        if not src.exists():
            missing.append(name)
            continue
        clip_path = out / (name.split()[0].replace(".mp4", "") + ".npz")
        try:
            capture(src, clip_path, extra)
        except subprocess.CalledProcessError:
            rows.append(f"{name:<26} capture failed (its error is printed above)")
            failed.append(name)
            continue
        clip = load_clip(clip_path)
        for h in range(clip.n_hands):
            s = check_clip(clip, h).summary()
            total_lim += s["limit_viol_frames"]
            total_pen += s["penetration_frames"]
            rows.append(f"{name:<26}{clip.sides[h]:>6}{s['frames']:>8}{s['limit_viol_frames']:>7}"
                        f"{s['max_limit_deg']:>9.2f}{s['penetration_frames']:>6}{s['max_penetration_mm']:>8.2f}")
    print("\n".join(rows))
    print(f"total: {total_lim} frames > 5 deg outside the limits, {total_pen} frames with fingers penetrating > 2 mm")
    if missing:
        print(f"not found under {DATA}: {', '.join(missing)}")
    if failed:
        raise SystemExit(f"capture failed on {', '.join(failed)}")


if __name__ == "__main__":
    main()
