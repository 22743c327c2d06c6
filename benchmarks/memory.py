"""Peak RSS of `python -m core capture` on a clip and on the same clip looped 4x (goal <= 1.2x),
and on 1080p input (goal < 1.5 GB). Both short and long clips are re-encoded the same way (mp4v)
into a temp folder so only their length differs. Usage: python -m benchmarks.memory
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from benchmarks.common import need_data, peak_rss_mb


def loop_video(src: Path, dst: Path, times: int) -> int:
    import cv2

    n = 0
    out = None
    for _ in range(times):
        cap = cv2.VideoCapture(str(src))
        fps = cap.get(cv2.CAP_PROP_FPS)
        while True:
            ok, f = cap.read()
            if not ok:
                break
            if out is None:
                out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (f.shape[1], f.shape[0]))
            out.write(f)
            n += 1
    out.release()
    return n


def main():
    single = need_data("video/single_hand.mp4")
    hd = need_data("video/hand_object.mp4")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n1 = loop_video(single, tmp / "x1.mp4", 1)
        n4 = loop_video(single, tmp / "x4.mp4", 4)
        cap = [sys.executable, "-m", "core", "capture", "--quiet"]
        r1 = peak_rss_mb(cap + [str(tmp / "x1.mp4"), "--out", str(tmp / "a.npz")])
        r4 = peak_rss_mb(cap + [str(tmp / "x4.mp4"), "--out", str(tmp / "b.npz")])
        rhd = peak_rss_mb(cap + [str(hd), "--out", str(tmp / "c.npz")])
    print(f"peak RSS of capture (kernel ru_maxrss):")
    print(f"  single_hand x1 ({n1} frames, 720p): {r1:7.0f} MB")
    print(f"  single_hand x4 ({n4} frames, 720p): {r4:7.0f} MB   ratio x4/x1 = {r4 / r1:.2f} (goal <= 1.2)")
    print(f"  hand_object (1080p, 121 frames):   {rhd:7.0f} MB   (goal < 1536 MB)")


if __name__ == "__main__":
    main()
