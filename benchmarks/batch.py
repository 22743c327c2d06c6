"""Batch throughput: 4 clips with the local engine (one after another in one process) vs the Ray engine (a local
Ray, one task per clip, each running the capture CLI as a child process), measured in one run.

The clips are cut from the shared single-hand video with the project's reader (``--frames`` frames each, full
720p). The Ray run includes starting Ray; the local run includes the capture's imports (paid once). The script
also checks that the two engines wrote byte-identical clip arrays.

``python -m benchmarks.batch [--frames 30] [--num-cpus 2]``
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import need_data

STARTS = (40, 180, 320, 460)


def cut(src: Path, out: Path, start: int, n: int) -> None:
    import cv2

    from core.io.video import open_video

    writer = None
    for _, f in open_video(src, start=start, end=start + n):
        if writer is None:
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (f.shape[1], f.shape[0]))
        writer.write(f)
    writer.release()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args(argv)
    os.environ.setdefault("HANDCAP_CACHE", str(Path(__file__).resolve().parent.parent / "build" / "cache"))
    from core.batch.manifest import load_manifest
    from core.batch.run import BatchSettings, run_batch

    src = need_data("video/single_hand.mp4")
    with tempfile.TemporaryDirectory(prefix="handcap-bench-batch-") as tmp:
        d = Path(tmp)
        for s in STARTS:
            cut(src, d / f"s{s}.mp4", s, args.frames)
        (d / "m.json").write_text('{"clips": [' + ", ".join(f'"s{s}.mp4"' for s in STARTS) + "]}")
        manifest = load_manifest(d / "m.json")
        t0 = time.perf_counter()
        local = run_batch(manifest, d / "local", BatchSettings(progress=False))
        t_local = time.perf_counter() - t0
        t0 = time.perf_counter()
        ray = run_batch(manifest, d / "ray", BatchSettings(engine="ray", num_cpus=args.num_cpus, progress=False))
        t_ray = time.perf_counter() - t0
        assert {r["outcome"] for r in local + ray} == {"ok"}, [(r["clip"], r["outcome"], r["message"]) for r in local + ray]
        same = all(np.load(d / "local" / f"s{s}" / "clip.npz")[k].tobytes()
                   == np.load(d / "ray" / f"s{s}" / "clip.npz")[k].tobytes()
                   for s in STARTS for k in np.load(d / "local" / f"s{s}" / "clip.npz").files)
    n = len(STARTS)
    print(f"4 clips x {args.frames} frames (720p), local Ray with {args.num_cpus} CPUs")
    print(f"local engine: {t_local:6.1f} s  {n / t_local:.3f} clips/s")
    print(f"ray engine:   {t_ray:6.1f} s  {n / t_ray:.3f} clips/s")
    print(f"ray / local time: {t_ray / t_local:.2f}x (goal <= 1.5x); clip arrays byte-identical: {same}")


if __name__ == "__main__":
    main()
