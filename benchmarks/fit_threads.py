"""The capture's fit (`core.solve.pose.fit_hand`, everything after detection) on one clip's detections, with torch on
one thread (the capture's `core.capture.FIT_THREADS`) vs torch's default, alternating in one process.

The clip is captured once (`--workers 1`, default settings) with `fit_hand` wrapped to record its inputs; then every
round runs the fit of every hand once per thread count, the order alternating between rounds, and prints the
process's CPU seconds (user + system, all threads) and wall seconds of each, their ratio to one thread in the same
round, and the largest joint difference between the thread counts' results.

Usage: python -m benchmarks.fit_threads [--video P] [--rounds 3] [--threads 1,0]   (0 = torch's default count)
"""
from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from benchmarks.common import need_data


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def record_fit_calls(video: str) -> list[tuple]:
    """Capture ``video`` once; returns the (layer, args, kwargs) of each `fit_hand` call."""
    import core.solve.pose as pose
    from core.capture import CaptureOptions, capture

    calls, real = [], pose.fit_hand

    def spy(layer, *a, **kw):
        calls.append((layer, a, kw))
        return real(layer, *a, **kw)

    pose.fit_hand = spy
    try:
        capture(CaptureOptions(input=video, workers=1))
    finally:
        pose.fit_hand = real
    return calls


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=None, help="default: the shared single_hand.mp4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,0", help="comma-separated torch thread counts; 0 = torch's default")
    a = ap.parse_args(argv)
    video = a.video or str(need_data("video/single_hand.mp4"))
    import torch

    from core.solve.pose import fit_hand

    default = torch.get_num_threads()
    counts = [int(x) or default for x in a.threads.split(",")]
    calls = record_fit_calls(video)
    frames = sum(len(c[1][2]) for c in calls)
    print(f"{os.path.basename(video)}: {len(calls)} hand(s), {frames} frames; torch's default {default} threads; "
          f"{a.rounds} rounds, order alternating")
    rows = {k: [] for k in counts}
    joints = {}
    for r in range(a.rounds):
        for k in (counts if r % 2 == 0 else counts[::-1]):
            torch.set_num_threads(k)
            load = os.getloadavg()[0]
            c0, w0 = _cpu(), time.perf_counter()
            joints[k] = [fit_hand(layer, *args, **kw).joints for layer, args, kw in calls]
            cpu, wall = _cpu() - c0, time.perf_counter() - w0
            rows[k].append((cpu, wall))
            print(f"  round {r + 1} {k} thread(s): {cpu:6.2f} s CPU {wall:6.2f} s wall  load {load:5.2f}", flush=True)
    torch.set_num_threads(default)
    base = counts[0]
    for k in counts[1:]:
        ratios = [rows[k][r][0] / rows[base][r][0] for r in range(a.rounds)]
        diff = max(float(np.abs(x - y).max()) for x, y in zip(joints[k], joints[base])) * 1000.0
        print(f"{k} vs {base} thread(s): CPU ratio per round {', '.join(f'{x:.2f}' for x in ratios)} (median "
              f"{np.median(ratios):.2f}x); CPU s median {np.median([x[0] for x in rows[k]]):.2f} vs "
              f"{np.median([x[0] for x in rows[base]]):.2f}; largest joint difference {diff:.4f} mm")


if __name__ == "__main__":
    main()
