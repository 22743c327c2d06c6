"""Batch throughput: 4 clips with the local engine (one after another in one process) vs the Ray engine (a local
Ray, one task per clip, each captured in a Ray worker process), measured in one run.

Each engine is timed as the command a user runs, ``python -m core batch m.json --out DIR [--engine ray ...]``, in a
fresh process (its interpreter start, imports and model set-up included; for Ray, starting and stopping Ray). The
clips are cut from the shared single-hand video with the project's reader (``--frames`` frames each, full 720p).

Rows: ``local``; ``local, 1 torch thread`` (``OMP_NUM_THREADS=1``: the local engine's capture with as many torch
threads as a Ray task has, to tell the engines apart from torch's threading); ``ray, N CPUs`` per ``--num-cpus``;
``ray --isolate, N CPUs`` with ``--isolate`` (each capture in a child process: the capture CLI's start-up per clip).
``--reverse`` runs the rows in the opposite order (alternate it between runs: the machine's load drifts). Per row:
the wall time, the time until the first clip started (for Ray: Ray's start and its workers' imports), and each
clip's capture seconds (from the sidecars). The script checks that every row wrote byte-identical clip arrays.

``python -m benchmarks.batch [--frames 30] [--num-cpus 2 [1]] [--isolate] [--reverse]``
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import ROOT, need_data

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


def timed(manifest: Path, out: Path, extra: list, env: dict) -> dict:
    """Run the batch CLI; wall seconds, seconds until the first clip started, each clip's capture seconds."""
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "core", "batch", str(manifest), "--out", str(out), "--quiet", *extra],
                          cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"batch {' '.join(extra)} failed: {proc.stderr.strip()[-2000:]}")
    sides = [json.loads((out / f"s{s}" / "clip.json").read_text()) for s in STARTS]
    assert {x["outcome"] for x in sides} == {"ok"}, [(x["clip"], x["outcome"], x["message"]) for x in sides]
    first = min(datetime.datetime.fromisoformat(x["timings"]["started"]).timestamp() for x in sides)
    return {"wall": wall, "first": first - t0, "capture": [x["timings"]["capture_s"] for x in sides]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--num-cpus", type=int, nargs="+", default=[os.cpu_count() or 2],
                    help="CPUs of the local Ray (several: one Ray row each)")
    ap.add_argument("--isolate", action="store_true", help="also the Ray engine with the capture CLI per clip")
    ap.add_argument("--reverse", action="store_true", help="run the rows in the opposite order")
    args = ap.parse_args(argv)
    os.environ.setdefault("HANDCAP_CACHE", str(ROOT / "build" / "cache"))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([os.environ["PYTHONPATH"]]
                                                                if os.environ.get("PYTHONPATH") else []))

    src = need_data("video/single_hand.mp4")
    rows = {"local": ([], {}), "local, 1 torch thread": ([], {"OMP_NUM_THREADS": "1"})}
    for n in args.num_cpus:
        rows[f"ray, {n} CPUs"] = (["--engine", "ray", "--num-cpus", str(n)], {})
        if args.isolate:
            rows[f"ray --isolate, {n} CPUs"] = (["--engine", "ray", "--num-cpus", str(n), "--isolate"], {})
    order = list(rows)[::-1] if args.reverse else list(rows)
    with tempfile.TemporaryDirectory(prefix="handcap-bench-batch-") as tmp:
        d = Path(tmp)
        for s in STARTS:
            cut(src, d / f"s{s}.mp4", s, args.frames)
        (d / "m.json").write_text('{"clips": [' + ", ".join(f'"s{s}.mp4"' for s in STARTS) + "]}")
        load0 = os.getloadavg()[0]
        times = {name: timed(d / "m.json", d / f"out{i}", *rows[name]) for i, name in enumerate(order)}
        load1 = os.getloadavg()[0]
        outs = {name: d / f"out{i}" for i, name in enumerate(order)}
        ref = {s: dict(np.load(outs["local"] / f"s{s}" / "clip.npz")) for s in STARTS}
        same = all(np.load(outs[name] / f"s{s}" / "clip.npz")[k].tobytes() == a.tobytes()
                   for name in rows for s in STARTS for k, a in ref[s].items())
    n = len(STARTS)
    print(f"4 clips x {args.frames} frames (720p), python -m core batch per row; order: {'; '.join(order)}; "
          f"load average {load0:.1f} -> {load1:.1f}")
    for name in rows:
        t = times[name]
        print(f"{name + ':':26s} {t['wall']:6.1f} s  {n / t['wall']:.3f} clips/s  first clip started after "
              f"{t['first']:4.1f} s  capture s per clip: {' '.join(f'{c:.1f}' for c in t['capture'])}")
    for name in rows:
        if name != "local":
            print(f"{name} / local time: {times[name]['wall'] / times['local']['wall']:.2f}x"
                  + (" (goal <= 1.5x)" if name.startswith("ray") else ""))
    print(f"clip arrays byte-identical across rows: {same}")


if __name__ == "__main__":
    main()
