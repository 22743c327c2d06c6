"""The "hybrid" detector (core.detect.hybrid): MediaPipe's own palm and landmark subgraphs in the project's port of
the legacy tracking graph, with the palm schedule of core.detect.schedule.

Against MediaPipe itself on the shared videos and the dev crops: each step exact where it is given MediaPipe's own
ROIs, the whole tracking pipeline within the tracking loop's own noise, the same frames and sides; the schedule
runs the palm network on far fewer frames. Skips where the mediapipe package or the shared data is missing.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.detect import create_detector, make_config

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                                reason="the mediapipe package is not installed")


def _clip(data_dir, name: str, n: int) -> list[np.ndarray]:
    from core.io.video import open_video

    return [f for _, (_, f) in zip(range(n), open_video(data_dir / "video" / name))]


def _paired(a, b) -> tuple[np.ndarray, int, int]:
    """Per-landmark distances (px) of the hands of frames where both found as many, nearest hand paired; the
    number of those hands and of pairs with the same side."""
    from core.detect.base import nearest_hands

    pairs = [p for x, y in zip(a, b) if len(x) == len(y) for p in nearest_hands(x, y)]
    d = np.concatenate([e for _, _, e in pairs]) if pairs else np.zeros(0)
    return d, len(pairs), sum(hx.side == hy.side for hx, hy, _ in pairs)


def test_each_step_is_mediapipes_own(data_dir):
    """Given the ROIs MediaPipe's legacy graph used on a frame, the hybrid's landmarks are MediaPipe's to the
    bit; and the port's tracking ROI from MediaPipe's landmarks is MediaPipe's to the bit (float arithmetic and the
    C library's trigonometry, as its calculators)."""
    import cv2

    from core.detect.hybrid import HybridHands
    from core.detect.torch_hands import pipeline as P
    from core.detect.torch_hands.reference import ReferenceTracker

    ref, hy = ReferenceTracker(), HybridHands(make_config(name="hybrid"))
    prev, checked = [], 0
    try:
        for f in _clip(data_dir, "two_hands.mp4", 12):
            h, w = f.shape[:2]
            r = ref.process(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
            got = hy.hands_in(f, P.associate(r["palm_rects"], prev))
            assert len(got) == len(r["landmarks"])
            for g, want in zip(got, r["landmarks"]):
                np.testing.assert_array_equal(g.landmarks, want)
                checked += 1
            mine = [P.landmarks_to_rect(lm, w, h) for lm in r["landmarks"]]
            np.testing.assert_array_equal(np.array(mine), np.array(r["next_rects"]))
            prev = r["next_rects"]
    finally:
        ref.close()
        hy.close()
    assert checked >= 20  # both hands on (nearly) every frame


@pytest.mark.parametrize("video, n", [("single_hand.mp4", 90), ("two_hands.mp4", 60)])
def test_tracking_matches_mediapipe(data_dir, video, n):
    """The whole tracking pipeline against mediapipe.solutions.hands (tracking mode, two hands asked): the same
    frames with a hand and hand counts, the same sides, landmarks within 1 px median (the tracking loop
    amplifies float rounding in the ROIs: MediaPipe against itself with one pixel changed parts as far,
    BENCHMARKS.md); with one hand in view the palm network runs on a third of the frames or fewer."""
    frames = _clip(data_dir, video, n)
    with create_detector("mediapipe", static=False, max_hands=2) as det:
        want = [det.detect(f) for f in frames]
    with create_detector("hybrid", static=False, max_hands=2) as det:
        got = [det.detect(f) for f in frames]
        palm_runs = det.palm_runs
    assert [len(x) for x in got] == [len(x) for x in want]
    d, n_hands, same = _paired(want, got)
    assert n_hands >= len(frames) and same == n_hands
    assert np.median(d) < 1.0, np.median(d)
    if video == "single_hand.mp4":
        assert palm_runs <= len(frames) // 3 + 30, palm_runs  # the grace (30 frames), then every 5th
    else:
        assert palm_runs < 10  # both hands tracked: MediaPipe's graph does not run it either


@pytest.mark.parametrize("video, n", [("single_hand.mp4", 20), ("two_hands.mp4", 30)])
def test_palm_every_one_is_mediapipe_itself(data_dir, video, n):
    """``palm_every`` 1 (the palm network on every frame with fewer hands tracked than asked, MediaPipe's schedule):
    free-running, the hybrid's detections are mediapipe.solutions.hands' own to the bit, frame after frame (every
    ROI is MediaPipe's exactly, so the tracking loop has nothing to amplify)."""
    from core.detect.hybrid import HybridHands

    frames = _clip(data_dir, video, n)
    with create_detector("mediapipe", static=False, max_hands=2) as det:
        want = [det.detect(f) for f in frames]
    det = HybridHands(make_config(name="hybrid"), palm_every=1)
    try:
        got = [det.detect(f) for f in frames]
    finally:
        det.close()
    assert sum(len(h) for h in got) >= n
    for g, w in zip(got, want):
        assert [h.side for h in g] == [h.side for h in w]
        for a, b in zip(g, w):
            assert np.array_equal(a.landmarks_px, b.landmarks_px) and np.array_equal(a.world, b.world)
            assert a.score == b.score
    if video == "single_hand.mp4":
        assert det.palm_runs == len(frames)


def test_static_photos_match_mediapipe(data_dir):
    """Static mode (image folders) on real crops: the same hands found, landmarks within float noise."""
    import cv2

    paths = sorted((data_dir / "real_world_testset_dev" / "images").iterdir())[:24]
    images = [cv2.imread(str(p)) for p in paths]
    with create_detector("mediapipe", static=True, max_hands=1) as det:
        want = [det.detect(im) for im in images]
    with create_detector("hybrid", static=True, max_hands=1) as det:
        got = [det.detect(im) for im in images]
    assert [len(x) for x in got] == [len(x) for x in want]
    d, n_hands, same = _paired(want, got)
    assert n_hands >= 20 and same == n_hands
    assert np.median(d) < 0.05 and d.max() < 1.0, (np.median(d), d.max())


def test_no_torch_and_a_quiet_stderr(tmp_path):
    """A segment worker with the hybrid detector imports no torch, and the graphs' start-up logs stay off stderr."""
    code = (
        "import json, sys, numpy as np\n"
        "from core.detect import create_detector\n"
        "with create_detector('hybrid', static=False, max_hands=2) as det:\n"
        "    out = [det.detect(np.full((120, 160, 3), 90, np.uint8)) for _ in range(3)]\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'hands': [len(o) for o in out]}))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"torch": False, "hands": [0, 0, 0]}
    assert r.stderr == "", r.stderr
