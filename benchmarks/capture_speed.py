"""End-to-end capture vs MediaPipe alone on the same video, each a whole process, side by side in one run.

Every measurement is a fresh process timed from its start to its exit (interpreter start, imports, model
set-up, decode, detection and, for ours, the whole pipeline and the clip file):

* ``mediapipe``: MediaPipe alone -- a Python script that imports ``mediapipe`` as its users do, decodes the video
  with OpenCV and runs the legacy Hands graph in tracking mode (up to 2 hands, as our capture asks);
* ``ours-wN``: ``python -m core capture VIDEO --out ... --workers N`` (default settings otherwise), for each
  N of ``--workers`` (default ``1,auto``; auto is one worker per core for a clip this long); with ``--detector``
  a comma-separated list of detector backends (default ``auto``), each N of each backend (``ours-wN-torch``: the
  capture with ``--detector torch``).

The runs alternate: each round runs every configuration once, odd rounds in reverse order, so that a load
that changes during the run (the machine is shared) falls on all of them. Prints per round each run's
frames/s, CPU seconds (user + system of the process and its children), the 1-minute load average at its
start, and each configuration's throughput ratio to MediaPipe alone of the same round; then the median
ratio over the rounds, and the share of MediaPipe-alone detections where our clip has the hand.

``--first-frame``: instead, the time from a capture process's start to its first detected frame (the JSON
progress event of frame 1), alternating between this checkout and the checkouts given with ``--tree`` (e.g. an
earlier commit's ``git archive``), ``--rounds`` times each.

``--tree DIR`` (repeatable) also runs our capture in another checkout (configurations ending ``@1``, ``@2``, ...) in
the same rounds: before / after a change, side by side.

Usage: python -m benchmarks.capture_speed [--video P] [--rounds 3] [--workers 1,2,auto] [--detector auto,torch]
                                          [--tree /tmp/before]
       python -m benchmarks.capture_speed --first-frame [--tree /tmp/before] [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import need_data

ROOT = Path(__file__).resolve().parent.parent

MEDIAPIPE_ALONE = r"""
import json, sys
import cv2
import mediapipe as mp

cap = cv2.VideoCapture(sys.argv[1])
found = []
with mp.solutions.hands.Hands(static_image_mode=False, max_num_hands=2, model_complexity=1,
                              min_detection_confidence=0.5, min_tracking_confidence=0.5) as hands:
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        res = hands.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        found.append(bool(res.multi_hand_landmarks))
with open(sys.argv[2], "w") as f:
    json.dump(found, f)
"""


def _timed(cmd: list, env: dict, cwd: Path = ROOT) -> tuple[float, float, float]:
    """Run ``cmd`` to its end: (wall seconds, CPU seconds of it and its children, load average at its start)."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, load


def run_mediapipe(video: str, tmp: Path, env: dict) -> tuple[float, float, float, np.ndarray]:
    out = tmp / "mediapipe.json"
    wall, cpu, load = _timed([sys.executable, "-c", MEDIAPIPE_ALONE, video, str(out)], env)
    return wall, cpu, load, np.array(json.loads(out.read_text()), bool)


def run_ours(video: str, workers: str, tmp: Path, env: dict, detector: str = "auto",
             tree: Path = ROOT) -> tuple[float, float, float, object]:
    """Our capture as a whole process (run in the checkout ``tree``): (wall s, CPU s, load, its `ClipResult`)."""
    from core.io.clip import load_clip

    out = tmp / f"ours_{workers}_{detector}_{abs(hash(str(tree)))}.npz"
    wall, cpu, load = _timed([sys.executable, "-m", "core", "capture", video, "--out", str(out), "--workers", workers,
                              "--detector", detector,
                              "--quiet"], env, tree)
    return wall, cpu, load, load_clip(out)


def seam_report(one, many) -> list[str]:
    """One pass (``--workers 1``) vs a segment-parallel clip of the same video: sides, detections, and per hand the
    first frame that differs (the join) and the step there vs one pass's (landmark pixels, fitted joints mm)
    against the clip's own jitter (median frame-to-frame step of one pass)."""
    lines = [f"  sides {one.sides} vs {many.sides}; frames with a hand per slot {one.detected.sum(1).tolist()} vs "
             f"{many.detected.sum(1).tolist()}; detected on the same frames: "
             f"{bool(np.array_equal(one.detected, many.detected))}"]
    for h in range(min(len(one.sides), len(many.sides))):
        same = np.all(one.landmarks_px[h] == many.landmarks_px[h], axis=(1, 2))
        if same.all():
            lines.append(f"  hand {h}: identical landmarks on every frame")
            continue
        join = int(np.argmin(same))
        parts = []
        for key, scale, unit in (("landmarks_px", 1.0, "px"), ("joints", 1000.0, "mm")):
            a, b = getattr(one, key)[h] * scale, getattr(many, key)[h] * scale
            sa = np.linalg.norm(np.diff(a, axis=0), axis=-1).mean(-1)
            sb = np.linalg.norm(np.diff(b, axis=0), axis=-1).mean(-1)
            after = np.linalg.norm(a[join:] - b[join:], axis=-1).mean(-1)
            parts.append(f"{key} step at the join {sb[join - 1]:.2f} vs one pass {sa[join - 1]:.2f} {unit} (excess "
                         f"{abs(sb[join - 1] - sa[join - 1]):.2f}; clip jitter, median step, {np.median(sa):.2f}); "
                         f"after it apart by median {np.median(after):.2f} / max {after.max():.2f} {unit}")
        lines.append(f"  hand {h} ({one.sides[h]}): one pass's landmarks exactly up to frame {join}; "
                     + "; ".join(parts))
    return lines


def first_frame_s(tree: Path, video: str, env: dict) -> float:
    """Seconds from the start of ``python -m core capture`` (run in ``tree``) to its first detected frame."""
    with tempfile.TemporaryDirectory(prefix="first_frame_") as tmp:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "core", "capture", video, "--out", str(Path(tmp) / "c.npz"),
                                 "--end", "2", "--json-progress"], cwd=tree, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        took = None
        for line in proc.stdout:
            e = json.loads(line)
            if took is None and e.get("event") == "progress" and e.get("stage") == "detect" and e.get("done", 0) >= 1:
                took = time.perf_counter() - t0
        if proc.wait() != 0 or took is None:
            raise SystemExit(f"the capture in {tree} failed")
        return took


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=None, help="default: the shared single_hand.mp4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", default="1,auto", help="comma-separated --workers values of our capture")
    ap.add_argument("--detector", default="auto", help="comma-separated --detector values of our capture")
    ap.add_argument("--first-frame", action="store_true", help="time to the first detected frame instead")
    ap.add_argument("--tree", action="append", default=[],
                    help="another checkout to compare (e.g. an earlier commit's `git archive`): with --first-frame its "
                         "time to the first frame, else its captures too (configurations ending @N, the N-th --tree)")
    a = ap.parse_args(argv)
    video = a.video or str(need_data("video/single_hand.mp4"))
    env = {**os.environ, "GLOG_minloglevel": "2", "PYTHONDONTWRITEBYTECODE": "1",
           "HANDCAP_CACHE": os.environ.get("HANDCAP_CACHE", str(ROOT / "build" / "cache"))}
    if a.first_frame:
        trees = [ROOT] + [Path(t).resolve() for t in a.tree]
        times = {t: [] for t in trees}
        for r in range(a.rounds):
            for t in (trees if r % 2 == 0 else trees[::-1]):
                times[t].append(first_frame_s(t, video, env))
        for t in trees:
            print(f"  {str(t):40s} first frame after {np.median(times[t]):5.2f} s (median of {a.rounds}; "
                  f"{', '.join(f'{x:.2f}' for x in times[t])}), load average {os.getloadavg()[0]:.2f} at the end")
        return
    dets = [d.strip() for d in a.detector.split(",") if d.strip()]
    configs = ["mediapipe"] + [f"ours-w{w.strip()}" + ("" if d == "auto" else f"-{d}") + ("" if k == 0 else f"@{k}")
                               for k in range(len(a.tree) + 1) for d in dets for w in a.workers.split(",") if w.strip()]
    trees = [ROOT] + [Path(t).resolve() for t in a.tree]
    for k, t in enumerate(trees[1:], 1):
        print(f"@{k} = {t}")
    rows, found, clips = {c: [] for c in configs}, {}, {}
    print(f"video {os.path.basename(video)}; {os.cpu_count()} CPUs; {a.rounds} rounds, order alternating")
    with tempfile.TemporaryDirectory(prefix="capture_speed_") as tmp:
        tmp = Path(tmp)
        for r in range(a.rounds):
            order = configs if r % 2 == 0 else configs[::-1]
            for c in order:
                if c == "mediapipe":
                    wall, cpu, load, det = run_mediapipe(video, tmp, env)
                else:
                    name, _, k = c.partition("@")
                    w, _, d = name.removeprefix("ours-w").partition("-")
                    wall, cpu, load, clips[c] = run_ours(video, w, tmp, env, d or "auto", trees[int(k or 0)])
                    det = clips[c].valid.any(0)
                found[c] = det
                rows[c].append((len(det) / wall, wall, cpu, load))
                print(f"  round {r + 1} {c:12s} {len(det) / wall:6.1f} frames/s  {wall:6.1f} s wall  {cpu:6.1f} s CPU  "
                      f"load {load:5.2f}", flush=True)
    n = len(found["mediapipe"])
    print(f"\n{n} frames. Throughput ratio to MediaPipe alone (whole processes, same round):")
    for c in configs[1:]:
        ratios = [rows[c][r][0] / rows["mediapipe"][r][0] for r in range(a.rounds)]
        mp_found = found["mediapipe"]
        share = (mp_found & found[c]).sum() / max(mp_found.sum(), 1)
        print(f"  {c:12s} ratios per round {', '.join(f'{x:.2f}' for x in ratios)}; median {np.median(ratios):.2f}x; "
              f"CPU s median {np.median([x[2] for x in rows[c]]):.1f} (MediaPipe alone "
              f"{np.median([x[2] for x in rows['mediapipe']]):.1f}); hand on {100 * share:.1f} % of MediaPipe's "
              f"{mp_found.sum()} detections")
        name, at, k = c.partition("@")
        one = "ours-w1" + name.partition("-w")[2].partition("-")[1] + name.partition("-w")[2].partition("-")[2] + at + k
        if c != one and one in configs:
            print("\n".join(seam_report(clips[one], clips[c])))


if __name__ == "__main__":
    main()
