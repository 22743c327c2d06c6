"""The torch detector's palm schedule (`core.detect.schedule.palm_due`, ``palm_every``).

MediaPipe's legacy graph runs the palm detector on every frame while fewer hands are tracked than asked for;
`TorchHands` runs it every frame only while nothing is tracked and for ``palm_grace`` frames after the start and
after a tracked hand is lost, else every ``palm_every``-th frame. Checked on the real networks with a real frame of two_hands.mp4: a second
hand entering is picked up within ``palm_every`` frames, a lost hand is looked for again at once, and with both
hands tracked the palm detector does not run. Skips only where mediapipe (the models' source) or the shared
video is missing.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from core.detect import make_config  # noqa: E402
from core.detect.schedule import PALM_EVERY, PALM_GRACE, palm_due  # noqa: E402
from core.detect.torch_hands.detector import TorchHands  # noqa: E402

needs_mp = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                              reason="the mediapipe package (the models' source) is not installed")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_palm_due():
    # nothing tracked: every frame, whatever the period
    assert all(palm_due(0, lost, since, 2, 5, 0) for lost in (1, 50) for since in (1, 2, 3))
    # as many hands tracked as asked: never (MediaPipe's gate)
    assert not any(palm_due(2, lost, since, 2, 1, 10) for lost in (1, 50) for since in (1, 5, 50))
    assert not palm_due(1, 1, 9, 1, 5, 10)
    # some tracked, fewer than asked, long after the start or a loss: every 5th frame ...
    assert [palm_due(1, 50, since, 2, 5, 10) for since in range(1, 7)] == [False] * 4 + [True] * 2
    # ... but on every frame of the grace after the start or a loss
    assert all(palm_due(1, lost, 1, 2, 5, 10) for lost in range(1, 11)) and not palm_due(1, 11, 1, 2, 5, 10)
    assert palm_due(1, 1, 1, 2, 5, 0) is False  # no grace: the period alone
    # period 1 is MediaPipe's schedule: every frame while fewer than asked
    assert all(palm_due(1, 50, 1, 2, 1, 0) for _ in range(3))


@pytest.fixture(scope="module")
def two_hand_frame(data_dir):
    """Frame 100 of two_hands.mp4 (both hands in view, each found by the palm detector) and the two hands'
    landmark boxes (x0, y0, x1, y1) in pixels, found in static mode."""
    from core.io.video import open_video

    path = data_dir / "video" / "two_hands.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    if importlib.util.find_spec("mediapipe") is None:
        pytest.skip("the mediapipe package (the models' source) is not installed")
    frame = [f for _, f in open_video(path, start=100, end=101)][0]
    with TorchHands(make_config(name="torch", static=True, max_hands=2)) as det:
        hands = det.detect(frame)
    assert len(hands) == 2 and {h.side for h in hands} == {"left", "right"}
    return frame, [np.r_[h.landmarks_px.min(0), h.landmarks_px.max(0)] for h in hands]


def _hide(frame, box, margin=0.6):
    """``frame`` with the hand in ``box`` painted over in grey (the box grown by ``margin`` of its size)."""
    out = frame.copy()
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    h, w = frame.shape[:2]
    out[max(0, int(y0 - my)):min(h, int(y1 + my)), max(0, int(x0 - mx)):min(w, int(x1 + mx))] = 128
    return out


@needs_mp
def test_second_hand_is_picked_up_within_the_period(two_hand_frame):
    frame, boxes = two_hand_frame
    one = _hide(frame, boxes[1])
    k = 4
    with TorchHands(make_config(name="torch", static=False, max_hands=2), palm_every=k, palm_grace=2) as det:
        counts, runs = [], []
        for f in [one] * 7 + [frame] * (k + 2):
            before = det.palm_runs
            counts.append(len(det.detect(f)))
            runs.append(det.palm_runs - before)
    # one hand in view: the palm detector on the first frame (nothing tracked yet) and the grace after the start
    # (frames 1, 2: since_lost 2, 3 > 2 ends it on frame 2), then every k-th frame (frame 5)
    assert counts[:7] == [1] * 7
    assert runs[:7] == [1, 1, 0, 0, 0, 1, 0]
    # the second hand enters on frame 7: found on the next palm frame (frame 9, k frames after frame 5), kept
    assert counts[7:] == [1, 1, 2, 2, 2, 2]
    assert runs[7:] == [0, 0, 1, 0, 0, 0]  # both hands tracked: no palm detector
    # the schedule of MediaPipe (period 1) finds it on the frame it enters
    with TorchHands(make_config(name="torch", static=False, max_hands=2), palm_every=1) as det:
        counts = [len(det.detect(f)) for f in [one] * 2 + [frame] * 2]
        assert counts == [1, 1, 2, 2] and det.palm_runs == 3


@needs_mp
def test_lost_tracking_redetects_at_once(two_hand_frame):
    frame, boxes = two_hand_frame
    blank = np.full_like(frame, 128)
    one = _hide(frame, boxes[1])
    assert PALM_EVERY > 1 and PALM_GRACE >= 1
    with TorchHands(make_config(name="torch", static=False, max_hands=2), palm_every=5, palm_grace=3) as det:
        counts, runs = [], []
        for f in [frame, frame] + [one] * 9 + [blank, blank, frame]:
            before = det.palm_runs
            counts.append(len(det.detect(f)))
            runs.append(det.palm_runs - before)
    # both tracked (no palm run on frame 1); one hand hidden: lost on frame 2, the palm detector on the 3 frames
    # after at once (the grace), then every 5th frame (frame 10); the last hand lost on frame 11 (a blank
    # frame, no palm run due): nothing tracked, the palm detector on every frame; the hands back: found on the
    # frame they return
    assert counts == [2, 2] + [1] * 9 + [0, 0, 2]
    assert runs == [1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1]
