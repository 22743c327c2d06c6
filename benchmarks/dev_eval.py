"""Accuracy on the real dev crops (static images, per-crop intrinsics): raw MediaPipe vs ours.

Runs `python -m core capture IMAGES --static --intrinsics labels.npz:K_crop` then `eval`.
Usage: python -m benchmarks.dev_eval [--out out/dev_clip.npz]
"""
from __future__ import annotations

import argparse
import subprocess
import sys

from benchmarks.common import ROOT, need_data


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "out" / "dev_clip.npz"))
    a = ap.parse_args(argv)
    dev = need_data("real_world_testset_dev")
    labels = dev / "labels.npz"
    subprocess.run([sys.executable, "-m", "core", "capture", str(dev / "images"), "--static", "--hands", "1",
                    "--intrinsics", f"{labels}:K_crop", "--out", a.out, "--quiet"], check=True, cwd=ROOT)
    subprocess.run([sys.executable, "-m", "core", "eval", a.out, "--gt", str(labels)], check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
