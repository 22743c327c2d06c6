"""core.solve.track: identity over synthetic clips (flicker, crossing, leaving) and a real two-hand clip."""
from __future__ import annotations

import numpy as np
import pytest

from core.detect import Detections, HandDet
from core.errors import CaptureError
from core.solve.track import HandTrack, Tracker, TrackResult, track_hands

# A rough open hand, 21 MediaPipe joints, about 100 px tall, centred on the origin.
_ANGLES = np.deg2rad([-60, -25, 0, 20, 40])
TEMPLATE = np.zeros((21, 2), np.float32)
TEMPLATE[0] = (0.0, 50.0)  # wrist; then 4 joints per finger, thumb to pinky, fanned out upwards
TEMPLATE[1:] = [(np.sin(a) * r, 50 - np.cos(a) * r) for a in _ANGLES for r in (25, 50, 70, 90)]
TEMPLATE -= TEMPLATE.mean(0)


def hand(centre, side, score=0.95, tag=0.0) -> HandDet:
    """Synthetic hand at ``centre``; ``tag`` goes into world[:, 0] so tests can tell hands apart."""
    px = TEMPLATE + np.asarray(centre, np.float32)
    world = np.zeros((21, 3), np.float32)
    world[:, 0] = tag
    return HandDet(side, float(score), px.astype(np.float32), np.full(21, tag, np.float32), world)


def other(side: str) -> str:
    return "left" if side == "right" else "right"


def flicker(rng, side: str, p_wrong: float) -> tuple[str, float]:
    wrong = rng.random() < p_wrong
    return (other(side) if wrong else side), float(rng.uniform(0.55, 0.99))


def tags(track: HandTrack) -> np.ndarray:
    """Per-frame tag of the hand in the track (NaN where absent)."""
    return np.where(track.detected, track.world[:, 0, 0], np.nan)


# -- contracts -----------------------------------------------------------------------------------
def test_shapes_and_dtypes_one_frame():
    res = track_hands([[hand((100, 100), "right")]])
    assert isinstance(res, TrackResult) and res.sides == ("right",) and res.n_frames == 1
    h = res.hand("right")
    assert h.detected.shape == (1,) and h.detected.dtype == bool
    assert h.score.shape == (1,) and h.score.dtype == np.float32
    assert h.landmarks_px.shape == (1, 21, 2) and h.landmarks_z.shape == (1, 21) and h.world.shape == (1, 21, 3)
    assert {a.dtype for a in (h.landmarks_px, h.landmarks_z, h.world)} == {np.dtype(np.float32)}
    with pytest.raises(CaptureError, match="no left hand was detected in this clip \\(hands: right\\)"):
        res.hand("left")
    # mapping view: side -> HandTrack
    assert len(res) == 1 and "right" in res and "left" not in res and list(res) == ["right"]
    assert res["right"] is h and res.values() == (h,) and res.items() == (("right", h),)
    with pytest.raises(KeyError):
        res["left"]


def test_empty_clips():
    assert track_hands([]).n_frames == 0 and track_hands([]).hands == ()
    res = track_hands([[], [], []])
    assert res.n_frames == 3 and res.hands == () and not res
    np.testing.assert_array_equal(res.frame_index, [0, 1, 2])


def test_detections_input_keeps_frame_index_and_streams():
    frames = [Detections(10 + 3 * t, t / 10, (640, 480), (hand((100 + t, 200), "left", tag=1),)) for t in range(5)]
    tracker = Tracker()
    for f in frames[:3]:
        tracker.update(f)
    partial = tracker.finish()
    for f in frames[3:]:
        tracker.update(f)
    res = tracker.finish()
    assert partial.n_frames == 3 and res.n_frames == 5
    np.testing.assert_array_equal(res.frame_index, [10, 13, 16, 19, 22])
    assert res.sides == ("left",) and res.hand("left").detected.all()
    np.testing.assert_array_equal(res.hand("left").landmarks_px[4], frames[4].hands[0].landmarks_px)
    assert res.hand("left").score[0] == pytest.approx(0.95) and res.hand("left").label_agreement == 1.0


def test_duplicate_detection_is_one_hand():
    frames = [[hand((300, 200), "right", 0.9, tag=1), hand((302, 203), "left", 0.6, tag=2)] for _ in range(10)]
    res = track_hands(frames)
    assert res.sides == ("right",)
    assert (tags(res.hand("right")) == 1).all()


# -- identity ------------------------------------------------------------------------------------
def test_label_flicker_does_not_swap():
    rng = np.random.default_rng(0)
    frames = []
    for t in range(120):
        r_side, r_score = flicker(rng, "right", 0.3)
        l_side, l_score = flicker(rng, "left", 0.3)
        wob = 10 * np.sin(t / 7)
        dets = [hand((400 + wob, 300), r_side, r_score, tag=1), hand((560 - wob, 300 + wob), l_side, l_score, tag=2)]
        frames.append(dets[::-1] if t % 2 else dets)  # backend order carries no meaning
    res = track_hands(frames)
    assert res.sides == ("right", "left")
    assert (tags(res.hand("right")) == 1).all() and (tags(res.hand("left")) == 2).all()
    assert 0.6 < res.hand("right").label_agreement < 0.8


def test_hands_crossing_keep_identity():
    """Hands pass each other fast (25 px/frame, 50 px apart vertically, about 0.3 hand sizes) and both
    labels are swapped while they cross: motion continuity must win over the labels."""
    rng = np.random.default_rng(1)
    frames = []
    for t in range(41):
        x = 0 + 25 * t
        crossing = 16 <= t <= 24  # x = 400..600, crossing at t = 20
        r = hand((x, 300), "left" if crossing else flicker(rng, "right", 0.1)[0], tag=1)
        l_ = hand((1000 - x, 350), "right" if crossing else flicker(rng, "left", 0.1)[0], tag=2)
        frames.append([l_, r] if t % 3 else [r, l_])
    res = track_hands(frames)
    assert (tags(res.hand("right")) == 1).all() and (tags(res.hand("left")) == 2).all()


def test_hand_leaves_and_returns_elsewhere():
    rng = np.random.default_rng(2)
    frames = []
    for t in range(100):
        dets = [hand((300 + t, 300), flicker(rng, "right", 0.15)[0], tag=1)]
        if t < 30:
            dets.append(hand((700, 300), flicker(rng, "left", 0.15)[0], tag=2))
        elif t >= 60:  # back, far from where it left, with a new tag
            dets.append(hand((900, 150), flicker(rng, "left", 0.15)[0], tag=3))
        frames.append(dets)
    res = track_hands(frames)
    right, left = res.hand("right"), res.hand("left")
    assert right.detected.all() and (tags(right) == 1).all()
    np.testing.assert_array_equal(left.detected, [t < 30 or t >= 60 for t in range(100)])
    assert (tags(left)[:30] == 2).all() and (tags(left)[60:] == 3).all()


def test_single_hand_majority_over_the_clip():
    """One hand only: a short, mostly mislabelled return still belongs to the clip's majority side."""
    rng = np.random.default_rng(3)
    frames = []
    for t in range(70):
        if t < 40:
            frames.append([hand((300, 300 + t), flicker(rng, "left", 0.1)[0], tag=1)])
        elif t < 60:
            frames.append([])
        else:
            frames.append([hand((800, 100), "right" if t % 4 else "left", tag=1)])  # 75 % "right"
    res = track_hands(frames)
    assert res.sides == ("left",)
    assert res.hand("left").detected.sum() == 50


def test_two_hands_one_at_a_time_keep_their_own_sides():
    """Clearly labelled hands that are never seen together are not merged into one."""
    frames = [[hand((300, 300), "right", tag=1)] for _ in range(30)] + [[hand((700, 300), "left", tag=2)] for _ in range(30)]
    res = track_hands(frames)
    assert res.sides == ("right", "left")
    assert res.hand("right").detected[:30].all() and res.hand("left").detected[30:].all()



def test_third_detection_does_not_push_out_a_tracked_hand():
    """MediaPipe's tracking mode can return three hands: a second, smaller copy of the right hand (labelled
    "left", score 1.0, beyond the duplicate distance) beside the true left hand (score 0.73). The kept
    pair is chosen by continuity, not by label score (two_hands.mp4 frames 463-464: the left track took
    the copy on the right hand, then jumped back)."""
    frames = []
    for t in range(40):
        dets = [hand((300 + 2 * t, 300), "right", 0.99, tag=1)]
        if t < 20 or t >= 26:  # the left hand is lost for frames 20-25, then returns where it was
            dets.append(hand((520, 330), "left", 0.73 if t >= 26 else 0.95, tag=2))
        if 26 <= t < 28:  # a smaller copy over the right hand's fingers
            copy = (TEMPLATE * 0.6 + (300 + 2 * t, 255)).astype(np.float32)  # 0.29 hand sizes off
            dets.insert(1, HandDet("left", 1.0, copy, np.full(21, 3.0, np.float32), np.full((21, 3), 3.0, np.float32)))
        frames.append(dets)
    res = track_hands(frames)
    right, left = res.hand("right"), res.hand("left")
    assert right.detected.all() and (tags(right) == 1).all()
    np.testing.assert_array_equal(left.detected, [t < 20 or t >= 26 for t in range(40)])
    assert (tags(left)[left.detected] == 2).all(), np.nonzero(tags(left) == 3)[0]

# -- real video ----------------------------------------------------------------------------------
def _run(path, start, end):
    from core.detect import create_detector, detect_frames
    from core.io.video import open_video

    src = open_video(path, start=start, end=end)
    with create_detector(static=False) as det:
        dets = list(detect_frames(src, det, src.fps))
    return dets, track_hands(dets)


def _centre(track: HandTrack, t: int) -> np.ndarray:
    return track.landmarks_px[t].mean(0)


def _no_jumps(track: HandTrack) -> None:
    """A slot's hand moves under 0.6 hand sizes per frame (a swap would jump to the other hand).

    Per frame of gap: the right hand of two_hands.mp4 is lost for 5 frames while it flies over the head.
    """
    t = np.nonzero(track.detected)[0]
    c = track.landmarks_px[t].mean(1)
    size = np.linalg.norm(track.landmarks_px[t].max(1) - track.landmarks_px[t].min(1), axis=1)
    jumps = np.linalg.norm(np.diff(c, axis=0), axis=1) / size[1:] / np.diff(t)
    assert jumps.max() < 0.6, (t[1:][jumps >= 0.6], jumps.max())


def test_real_two_hands_side_by_side(data_dir):
    """two_hands.mp4 0-59: the person faces the camera, hands side by side: the right hand is on image-left."""
    dets, res = _run(data_dir / "video" / "two_hands.mp4", 0, 60)
    assert res.sides == ("right", "left")
    right, left = res.hand("right"), res.hand("left")
    assert right.detected.sum() >= 55 and left.detected.sum() >= 55
    both = np.nonzero(right.detected & left.detected)[0]
    assert (right.landmarks_px[both, :, 0].mean(1) < left.landmarks_px[both, :, 0].mean(1)).all()
    _no_jumps(right)
    _no_jumps(left)


def test_real_two_hands_crossing(data_dir):
    """two_hands.mp4 170-239: arms cross over and under each other (checked by eye on frames 175, 206, 235):
    175 right hand below (thumbs up), 206 right hand below-left, 235 right hand above (raw labels there
    were "left, left" at 206 and "right, right" at 235 in a whole-clip run)."""
    dets, res = _run(data_dir / "video" / "two_hands.mp4", 170, 240)
    right, left = res.hand("right"), res.hand("left")
    for frame, right_is_lower in ((175, True), (206, True), (235, False)):
        t = frame - 170
        assert right.detected[t] and left.detected[t], frame
        assert (_centre(right, t)[1] > _centre(left, t)[1]) == right_is_lower, frame
    _no_jumps(right)
    _no_jumps(left)
    assert min(right.label_agreement, left.label_agreement) > 0.95


def test_real_two_hands_third_detection(data_dir):
    """two_hands.mp4 440-469: hands make a frame gesture, the right hand above. On 463-465 MediaPipe returns
    three hands, one a smaller copy of the right hand labelled "left" with score 1.0; the left track must
    stay on the left hand, below (it took the copy on 463-464 and jumped back on 465 before the fix)."""
    dets, res = _run(data_dir / "video" / "two_hands.mp4", 440, 470)
    right, left = res.hand("right"), res.hand("left")
    for frame in (463, 464, 465):
        t = frame - 440
        assert right.detected[t] and left.detected[t], frame
        size = np.linalg.norm(np.ptp(right.landmarks_px[t], axis=0))
        assert _centre(left, t)[1] - _centre(right, t)[1] > 0.4 * size, frame
    _no_jumps(right)
    _no_jumps(left)


def test_real_two_hands_whole_clip_identity(data_dir):
    """All 500 frames of two_hands.mp4 (~20 s): no identity swap anywhere (`benchmarks.identity`, whose
    contact sheets were checked by eye: right hand on image-left when the arms are uncrossed, the crossings
    at 175-250 and the frame gesture at 450-470 followed). Measured: detected 495 / 435 frames, largest jump
    0.27 / 0.24 hand sizes per frame, own / crossed assignment distance at most 0.21, labels agree 99.8 %."""
    from benchmarks.identity import measure

    dets, res = _run(data_dir / "video" / "two_hands.mp4", 0, None)
    m = measure(dets, res)
    assert res.sides == ("right", "left")
    assert res.hand("right").detected.sum() >= 480 and res.hand("left").detected.sum() >= 420
    for side in res.sides:
        _no_jumps(res.hand(side))
        assert res.hand(side).label_agreement > 0.98, side
    assert len(m["same_hand"]) == 0, m["same_hand"]  # both tracks never sit on one hand
    assert m["swap_ratio"].max() < 0.5, m["swap_steps"][m["swap_ratio"].argmax()]
