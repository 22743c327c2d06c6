"""End-to-end capture vs MediaPipe alone on the same video, in one run, alternating A/B/A/B.

Prints both throughputs, their ratio (goal >= 0.8) and the share of MediaPipe-alone detections where
our capture also has the hand (goal >= 90 %). Usage: python -m benchmarks.capture_speed [--video P]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.common import need_data


def mediapipe_alone(video: str) -> tuple[float, np.ndarray]:
    """Decode with OpenCV and run MediaPipe's legacy Hands in tracking mode: (fps, detected (T,))."""
    import cv2
    import mediapipe as mp

    cap = cv2.VideoCapture(video)
    found = []
    t0 = time.perf_counter()
    with mp.solutions.hands.Hands(static_image_mode=False, max_num_hands=2, model_complexity=1,
                                  min_detection_confidence=0.5, min_tracking_confidence=0.5) as hands:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            res = hands.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            found.append(bool(res.multi_hand_landmarks))
    dt = time.perf_counter() - t0
    return len(found) / dt, np.array(found)


def ours(video: str) -> tuple[float, np.ndarray]:
    from core.capture import CaptureOptions, capture

    t0 = time.perf_counter()
    clip, _ = capture(CaptureOptions(input=video))
    dt = time.perf_counter() - t0
    return clip.n_frames / dt, clip.valid.any(0)


def main(argv=None):
    os.environ.setdefault("GLOG_minloglevel", "2")
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=str(need_data("video/single_hand.mp4")))
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args(argv)
    mp_fps, our_fps = [], []
    for _ in range(a.rounds):
        f, mp_found = mediapipe_alone(a.video)
        mp_fps.append(f)
        f, our_found = ours(a.video)
        our_fps.append(f)
    m, o = max(mp_fps), max(our_fps)
    both = (mp_found & our_found).sum() / max(mp_found.sum(), 1)
    print(f"video {os.path.basename(a.video)}: {len(mp_found)} frames, best of {a.rounds} alternating rounds")
    print(f"  MediaPipe alone : {m:6.1f} frames/s, hand on {mp_found.sum()} frames")
    print(f"  our capture     : {o:6.1f} frames/s, hand on {our_found.sum()} frames")
    print(f"  throughput ratio ours / MediaPipe = {o / m:.2f} (goal >= 0.8)")
    print(f"  our hands on {100 * both:.1f} % of MediaPipe-alone detections (goal >= 90 %)")


if __name__ == "__main__":
    main()
