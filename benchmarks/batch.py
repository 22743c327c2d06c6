"""Batch throughput: 4 clips with the local engine (one after another in one process) vs the Ray engine (a local
Ray, one task per clip, captured in the Ray worker processes), measured in one run.

The clips are cut from the shared single-hand video with the project's reader (``--frames`` frames each, full
720p). The Ray run includes starting Ray; the local run includes the capture's imports (paid once). ``--isolate``
also times the Ray engine with each capture in a child process (the capture CLI; its start-up paid per clip).
``--ray-first`` runs the Ray engine first (alternate the order between runs: the machine's load drifts). Per
engine it prints the wall time, the time until the first clip started (Ray's start and its workers' start-up for
the Ray engine), and the clips' own capture seconds (from their sidecars, imports and model set-up included). The
script also checks that the engines wrote byte-identical clip arrays.

``python -m benchmarks.batch [--frames 30] [--num-cpus 2] [--isolate] [--ray-first]``
"""
from __future__ import annotations

import argparse
import datetime
import json
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


def timed(manifest, out: Path, settings) -> dict:
    """Run the batch; wall seconds, seconds until the first clip started, and each clip's capture seconds."""
    from core.batch.run import run_batch

    t0 = time.time()
    results = run_batch(manifest, out, settings)
    wall = time.time() - t0
    assert {r["outcome"] for r in results} == {"ok"}, [(r["clip"], r["outcome"], r["message"]) for r in results]
    sides = [json.loads((out / f"s{s}" / "clip.json").read_text()) for s in STARTS]
    first = min(datetime.datetime.fromisoformat(x["timings"]["started"]).timestamp() for x in sides)
    return {"wall": wall, "first": first - t0, "capture": [x["timings"]["capture_s"] for x in sides]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--isolate", action="store_true", help="also the Ray engine with the capture CLI per clip")
    ap.add_argument("--ray-first", action="store_true", help="run the Ray engine(s) before the local engine")
    args = ap.parse_args(argv)
    os.environ.setdefault("HANDCAP_CACHE", str(Path(__file__).resolve().parent.parent / "build" / "cache"))
    from core.batch.manifest import load_manifest
    from core.batch.run import BatchSettings

    src = need_data("video/single_hand.mp4")
    runs = {"local": BatchSettings(progress=False),
            "ray": BatchSettings(engine="ray", num_cpus=args.num_cpus, progress=False)}
    if args.isolate:
        runs["ray --isolate"] = BatchSettings(engine="ray", num_cpus=args.num_cpus, isolate=True, progress=False)
    order = list(runs)[1:] + ["local"] if args.ray_first else list(runs)
    with tempfile.TemporaryDirectory(prefix="handcap-bench-batch-") as tmp:
        d = Path(tmp)
        for s in STARTS:
            cut(src, d / f"s{s}.mp4", s, args.frames)
        (d / "m.json").write_text('{"clips": [' + ", ".join(f'"s{s}.mp4"' for s in STARTS) + "]}")
        manifest = load_manifest(d / "m.json")
        load0 = os.getloadavg()[0]
        times = {name: timed(manifest, d / name.replace(" ", ""), runs[name]) for name in order}
        load1 = os.getloadavg()[0]
        ref = {s: dict(np.load(d / "local" / f"s{s}" / "clip.npz")) for s in STARTS}
        same = all(np.load(d / name.replace(" ", "") / f"s{s}" / "clip.npz")[k].tobytes() == a.tobytes()
                   for name in runs for s in STARTS for k, a in ref[s].items())
    n = len(STARTS)
    print(f"4 clips x {args.frames} frames (720p), local Ray with {args.num_cpus} CPUs; order: {', '.join(order)}; "
          f"load average {load0:.1f} -> {load1:.1f}")
    for name in runs:
        t = times[name]
        print(f"{name + ' engine:':22s} {t['wall']:6.1f} s  {n / t['wall']:.3f} clips/s  first clip started after "
              f"{t['first']:4.1f} s  capture s per clip: {' '.join(f'{c:.1f}' for c in t['capture'])}")
    for name in runs:
        if name != "local":
            print(f"{name} / local time: {times[name]['wall'] / times['local']['wall']:.2f}x (goal <= 1.5x)")
    print(f"clip arrays byte-identical across engines: {same}")


if __name__ == "__main__":
    main()
