"""A long, large clip captured at two or more lengths: memory flat in clip length (issue 12: "a 2-minute 4K clip
captured with flat memory").

The clip is a shared video upscaled to ``--size`` and looped to the whole number of loops nearest each of
``--seconds`` (one loop encoded once, mp4v, and concatenated without re-encoding by ffmpeg where it is installed;
else each length re-encoded by OpenCV). Each length is captured by a whole ``python -m core capture`` process
(``--detector``, ``--device``; default settings otherwise) and reported with its wall seconds, frames/s, the peak
resident memory of its largest process (the kernel's ru_maxrss; segment workers included) and, where ``nvidia-smi``
is present, the peak GPU memory in use while it ran above what was in use before it started (polled every 0.2 s).
Ratios are to the shortest length.

Usage: python -m benchmarks.long_clip [--video single_hand.mp4] [--size 3840x2160] [--seconds 30,120]
                                      [--detector auto] [--device auto] [--keep DIR]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import need_data, peak_rss_mb


def make_clip(src: Path, dst: Path, size: tuple[int, int], frames: int) -> float:
    """Write ``frames`` frames of ``src`` (looped), resized to ``size`` (w, h), to ``dst`` (mp4v); returns its fps."""
    import cv2

    out, fps, n = None, 30.0, 0
    while n < frames:
        cap = cv2.VideoCapture(str(src))
        fps = cap.get(cv2.CAP_PROP_FPS) or fps
        got = False
        while n < frames:
            ok, f = cap.read()
            if not ok:
                break
            got = True
            if out is None:
                out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
            out.write(cv2.resize(f, size, interpolation=cv2.INTER_LINEAR))
            n += 1
        cap.release()
        if not got:
            raise SystemExit(f"cannot read {src}")
    out.release()
    return fps


def concat(part: Path, times: int, dst: Path) -> bool:
    """``part`` repeated ``times`` into ``dst`` by ffmpeg's concat demuxer without re-encoding; False without ffmpeg."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return False
    lst = dst.with_suffix(".txt")
    lst.write_text("".join(f"file '{part}'\n" for _ in range(times)))
    r = subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(lst), "-c", "copy",
                        str(dst)], capture_output=True, text=True)
    return r.returncode == 0 and dst.is_file()


def gpu_used_mb() -> float | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    r = subprocess.run([smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits"], capture_output=True,
                       text=True)
    try:
        return float(r.stdout.split()[0])
    except (IndexError, ValueError):
        return None


def run_capture(clip: Path, out: Path, detector: str, device: str) -> tuple[float, float, float | None]:
    """(wall s, peak RSS MB of the largest process, peak GPU MB above the level before, or None)."""
    base = gpu_used_mb()
    peak = [base]
    done = threading.Event()

    def poll():
        while not done.wait(0.2):
            v = gpu_used_mb()
            if v is not None and (peak[0] is None or v > peak[0]):
                peak[0] = v

    t = threading.Thread(target=poll, daemon=True)
    if base is not None:
        t.start()
    t0 = time.perf_counter()
    try:
        rss = peak_rss_mb([sys.executable, "-m", "core", "capture", str(clip), "--out", str(out), "--quiet",
                           "--detector", detector, "--device", device])
    finally:
        done.set()
    return time.perf_counter() - t0, rss, (None if base is None else peak[0] - base)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", default="single_hand.mp4", help="a video of the shared data's video/ folder")
    ap.add_argument("--size", default="3840x2160")
    ap.add_argument("--seconds", default="30,120", help="comma-separated clip lengths")
    ap.add_argument("--detector", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--keep", default=None, help="write the clips here (default: a temp folder, removed)")
    a = ap.parse_args(argv)
    src = need_data(f"video/{a.video}")
    w, h = (int(x) for x in a.size.lower().split("x"))
    lengths = sorted(float(s) for s in a.seconds.split(","))
    with tempfile.TemporaryDirectory(prefix="long_clip_") as tmp:
        folder = Path(a.keep) if a.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        import cv2

        cap = cv2.VideoCapture(str(src))
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        n_src = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        t0 = time.perf_counter()
        part = folder / "part.mp4"
        make_clip(src, part, (w, h), n_src)  # one pass of the source, upscaled: the unit the lengths repeat
        clips = []
        for sec in lengths:  # whole loops of the source, the nearest to the length asked
            loops = max(1, round(sec * fps / n_src))
            frames = loops * n_src
            dst = folder / f"clip_{loops}x.mp4"
            if not concat(part, loops, dst):
                make_clip(src, dst, (w, h), frames)
            clips.append((frames / fps, frames, dst))
        print(f"{a.video} upscaled to {w}x{h} at {fps:.2f} fps, {len(clips)} lengths written in "
              f"{time.perf_counter() - t0:.0f} s; capture --detector {a.detector} --device {a.device}")
        rows = []
        for sec, frames, clip in clips:
            wall, rss, gpu = run_capture(clip, clip.with_suffix(".npz"), a.detector, a.device)
            rows.append((sec, frames, wall, rss, gpu))
            print(f"  {sec:6.0f} s ({frames} frames): {wall:7.1f} s wall, {frames / wall:6.1f} frames/s, peak RSS "
                  f"{rss:7.0f} MB" + ("" if gpu is None else f", peak GPU memory +{gpu:.0f} MB"), flush=True)
        first = rows[0]
        for sec, frames, wall, rss, gpu in rows[1:]:
            print(f"  {sec:.0f} s vs {first[0]:.0f} s: {frames / first[1]:.1f}x the frames, peak RSS "
                  f"{rss / first[3]:.2f}x" + ("" if gpu is None or not first[4] else f", peak GPU memory "
                                                                                   f"{gpu / first[4]:.2f}x"))


if __name__ == "__main__":
    main()
