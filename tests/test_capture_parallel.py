"""Segment-parallel capture (`core.detect.segments`, ``--workers``) and the light start of a capture.

The planning, the join and the stitching are checked on made-up detections; on the shared two-hand video
(a 72-frame subset, two workers) the segment-parallel capture is compared with one pass: the same form, the
same sides and slots, one pass's detections exactly up to the join, and a step at the join no larger than
the clip's own frame-to-frame jitter.
"""
from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core import cli
from core.detect.base import HandDet
from core.detect.segments import (AGREE, EXTEND, OVERLAP, WARM, Joins, Segment, disagreement, plan_segments,
                                  plan_workers, stitch)
from core.errors import CaptureError

ROOT = Path(__file__).resolve().parent.parent


def _hand(side="right", x=100.0, size=100.0):
    grid = np.stack(np.meshgrid(np.linspace(0, size, 7), np.linspace(0, size, 3)), -1).reshape(21, 2)
    return HandDet(side, 0.9, (grid + x).astype(np.float32), np.zeros(21, np.float32), np.zeros((21, 3), np.float32))


# -- planning ---------------------------------------------------------------------------------------------
def test_plan_workers_auto_and_explicit():
    assert plan_workers(None, 621, "mediapipe", cores=2) == 2
    assert plan_workers(None, 199, "mediapipe", cores=2) == 1  # too short: one pass
    assert plan_workers(None, 5000, "mediapipe", cores=8) == 8
    assert plan_workers(None, 621, "mediapipe", cores=1) == 1
    assert plan_workers(None, 5000, "torch", "cuda", cores=8) == 1  # one process batches on the GPU
    assert plan_workers(None, 5000, "torch", "cpu", cores=4) == 4
    import torch  # device auto: a GPU only where torch sees one (it was taken for a GPU everywhere before)

    assert plan_workers(None, 5000, "torch", "auto", cores=4) == (1 if torch.cuda.is_available() else 4)
    assert plan_workers(1, 5000, "mediapipe", cores=8) == 1
    assert plan_workers(3, 5000, "mediapipe", cores=2) == 3  # asked for: kept
    assert plan_workers(4, 2 * OVERLAP, "mediapipe", cores=8) == 2  # never a segment shorter than its lead-in
    with pytest.raises(CaptureError):
        plan_workers(0, 100, "mediapipe")


def test_available_cores_follows_omp(monkeypatch):
    from core.detect.segments import available_cores

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a scheduler's (Ray's) share of the machine
    assert available_cores() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert available_cores() >= 1


def test_plan_segments_cover_the_clip():
    segs = plan_segments(621, 2)
    assert segs == [Segment(0, 0, 310, 310 + EXTEND), Segment(310 - OVERLAP, 310, 621, 621)]
    for n, w in ((100, 3), (621, 4), (25, 2)):
        segs = plan_segments(n, w)
        assert [s.own for s in segs] == sorted({s.own for s in segs}) and segs[0].own == 0 and segs[-1].end == n
        assert all(a.end == b.own for a, b in zip(segs, segs[1:]))
        assert all(s.lead == max(0, s.own - OVERLAP) and s.end <= s.reach <= min(n, s.end + EXTEND) for s in segs)


# -- the join ---------------------------------------------------------------------------------------------
def test_disagreement():
    a, b = _hand("right", 100), _hand("left", 400)
    assert disagreement([], []) == 0.0
    assert disagreement([a], []) == math.inf  # the later tracker has not found every hand yet
    assert disagreement([a, b], [b, a]) == 0.0  # paired nearest first, whatever the order
    assert disagreement([a], [_hand("left", 100)]) == math.inf  # sides differ
    size = float(np.linalg.norm([100, 100]))
    assert disagreement([a, b], [_hand("left", 401), _hand("right", 100)]) == pytest.approx(math.sqrt(2) / size, 1e-5)


def _results(segments, frames):
    """Per worker: position -> (index, hands, size, diff), from ``frames[w](p)`` over what the worker read."""
    return [{p: (p, frames[w](p), (640, 480), 1.0) for p in range(s.lead, s.reach)} for w, s in enumerate(segments)]


def test_join_waits_for_the_later_tracker_to_find_every_hand():
    segs = plan_segments(100, 2)  # [0, 50) reads on to 100; [38, 100)
    far = 0.05 * 100.0  # shifted along x and y: landmarks 5 % of the hand's size (its box diagonal) apart
    frames = [lambda p: [_hand("right", 100), _hand("left", 400)],
              # the later tracker finds the left hand at 55 only, then agrees more and more closely
              lambda p: [_hand("right", 100)] if p < 55 else [_hand("right", 100), _hand("left", 400 + far / (p - 54))]]
    res = _results(segs, frames)
    joins = Joins(segs)
    decided = joins.update(res, [True, True])
    assert decided == [0]
    scores = joins.scores[0]
    assert all(scores[p] == math.inf for p in range(segs[1].lead + WARM, 55))
    assert joins.at[0] == 99  # the best agreement (the later tracker ran longest there)
    # while the earlier worker has read only to 60 and no frame agreed yet, nothing is decided
    partial = [{p: v for p, v in res[0].items() if p < 58}, res[1]]  # best so far 0.05 / 3 of the hand's size
    joins = Joins(segs)
    assert joins.update(partial, [False, True]) == [] and joins.at == [None]
    # agreement (<= AGREE) once the earlier worker is past the later one's start: decided there
    partial = [{p: v for p, v in res[0].items() if p < 62}, res[1]]
    assert joins.update(partial, [False, True]) == [0]
    assert min(joins.scores[0].values()) <= AGREE and joins.at[0] == 61


def test_join_where_no_frame_agrees_and_stitch():
    segs = plan_segments(200, 2)
    frames = [lambda p: [_hand("right", 100)], lambda p: []]  # never the same hands
    res = _results(segs, frames)
    joins = Joins(segs)
    joins.update(res, [True, True])
    assert joins.at == [segs[0].reach] and segs[0].reach < 200  # the earlier segment's whole reach, then the later
    st = stitch(res, joins.at, 200)
    assert st.read == 200 and st.frame_index == list(range(200))
    assert all(len(h) == 1 for h in st.hands[:segs[0].reach]) and all(h == [] for h in st.hands[segs[0].reach:])
    # a truncated file: the later worker decoded nothing; one pass would stop where the earlier one stopped
    res[0] = {p: v for p, v in res[0].items() if p < 40}
    res[1] = {}
    joins = Joins(segs)
    joins.update(res, [True, True])
    st = stitch(res, joins.at, 200)
    assert st.read == 40 and len(st.hands) == 40
    # ... and the later worker finished (with nothing) while the earlier one was still sending: no join yet, the
    # earlier one's frames still to come are kept (a race seen once in CI: the join was put after its 8th frame)
    joins = Joins(segs)
    early = [{p: v for p, v in res[0].items() if p < 8}, {}]
    assert joins.update(early, [False, True]) == [] and joins.at == [None]
    assert joins.update(res, [True, True]) == [0] and joins.at == [40]
    assert stitch(res, joins.at, 200).read == 40


# -- the command line -------------------------------------------------------------------------------------
def test_cli_workers_option(capsys):
    p = cli.build_parser()
    assert p.parse_args(["capture", "v.mp4", "--out", "o.npz"]).workers is None
    assert p.parse_args(["capture", "v.mp4", "--out", "o.npz", "--workers", "auto"]).workers is None
    assert p.parse_args(["capture", "v.mp4", "--out", "o.npz", "--workers", "3"]).workers == 3
    for bad in ("0", "two", "-1"):
        with pytest.raises(SystemExit) as exc:
            cli.main(["capture", "v.mp4", "--out", "o.npz", "--workers", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: argument --workers") and err.count("\n") == 1


# -- the light start ----------------------------------------------------------------------------------------
def test_mediapipe_hands_alone_then_the_whole_package():
    """The detector imports MediaPipe's hands solution without matplotlib or the other solutions; a later
    ``import mediapipe`` in the same process is the whole package, as a plain import gives it (plus one name:
    ``mediapipe.solution_base``, bound because that submodule was loaded before the package's star import)."""
    names = ("sorted(n for n in dir(mp) if not n.startswith('__')), "
             "sorted(n for n in dir(mp.solutions) if not n.startswith('_'))")
    light = ("import sys\nfrom core.detect.mp_hands import _import_mediapipe\nh = _import_mediapipe()\n"
             "assert 'matplotlib' not in sys.modules and 'mediapipe.tasks' not in sys.modules, 'heavy'\n"
             "import mediapipe as mp\nassert mp.solutions.hands is h\n"
             f"print(repr(({names}, mp.__version__, mp.solutions.drawing_utils.__name__, mp.tasks.__name__)))\n")
    plain = ("import mediapipe as mp\n"
             f"print(repr(({names}, mp.__version__, mp.solutions.drawing_utils.__name__, mp.tasks.__name__)))\n")
    out = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
           for code in (light, plain)]
    assert out[0].returncode == 0, out[0].stderr[-2000:]
    assert out[1].returncode == 0, out[1].stderr[-2000:]
    light_out, plain_out = (eval(o.stdout) for o in out)  # noqa: S307 - our own repr of lists and strings
    assert set(light_out[0]) - set(plain_out[0]) == {"solution_base"}
    assert (sorted(set(light_out[0]) - {"solution_base"}), *light_out[1:]) == plain_out


def _capture_until(video, end: int, done: int, probe: str) -> str:
    """Run a one-pass capture of ``video`` (frames < ``end``) in a fresh interpreter; at its ``done``-th detected frame
    print ``probe`` (an expression) and stop reading; returns what it printed."""
    code = ("import sys, threading\nfrom core.capture import CaptureOptions, run_capture\n"
            f"gen = run_capture(CaptureOptions(input={str(video)!r}, end={end}, workers=1))\n"
            "for ev in gen:\n"
            f"    if ev.stage == 'detect' and ev.done >= {done}:\n"
            f"        print({probe})\n"
            "        break\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_first_frame_before_torch(data_dir):
    """A capture detects its first frame before torch, matplotlib or scipy are imported (they load after)."""
    got = _capture_until(data_dir / "video" / "single_hand.mp4", 3, 1,
                         "sorted(m for m in ('torch', 'matplotlib', 'scipy') if m in sys.modules)")
    assert got == "[]"


def test_one_pass_loads_the_fit_beside_the_detection(data_dir):
    """In one pass the fit's modules start loading (a thread) once the first frame is out, not after the last."""
    got = _capture_until(data_dir / "video" / "single_hand.mp4", 40, 3,
                         "['torch' in sys.modules, any(t.name == 'handcap-preload-fit' for t in threading.enumerate())]")
    assert got == "[True, True]"


# -- the shared two-hand video: segments vs one pass -----------------------------------------------------------
N_FRAMES = 72


@pytest.fixture(scope="module")
def two_captures(data_dir):
    from core.capture import CaptureOptions, capture

    video = str(data_dir / "video" / "two_hands.mp4")
    one, _ = capture(CaptureOptions(input=video, end=N_FRAMES, workers=1))
    two, src = capture(CaptureOptions(input=video, end=N_FRAMES, workers=2))
    return one, two


def _steps(x):
    """(T-1,) mean landmark step between consecutive frames (pixels)."""
    return np.linalg.norm(np.diff(x, axis=0), axis=-1).mean(-1)


def test_segments_have_the_form_of_one_pass(two_captures):
    one, two = two_captures
    for f in ("frame_index", "time", "K", "image_size"):
        assert np.array_equal(getattr(one, f), getattr(two, f)), f
    for f in ("valid", "detected", "confidence", "betas", "global_orient", "hand_pose", "transl", "joints",
              "landmarks_px", "landmarks_world"):
        assert getattr(one, f).shape == getattr(two, f).shape and getattr(one, f).dtype == getattr(two, f).dtype, f
    assert (one.sides, one.model_names, one.cuts, one.shared_size, one.detector) == \
        (two.sides, two.model_names, two.cuts, two.shared_size, two.detector)


def test_identity_and_seam(two_captures):
    """Both hands are seen across the join; the slots keep their sides (no swap); up to the join the detections
    are one pass's exactly; at the join the step differs from one pass's step by less than the clip's own
    frame-to-frame jitter (median step), for the raw landmarks and for the fitted joints."""
    one, two = two_captures
    assert one.sides == two.sides == ("right", "left")
    both = one.detected.all(0)
    assert both[20:N_FRAMES].mean() > 0.9  # two hands around the join: the test means something
    assert np.array_equal(one.detected, two.detected)
    same = np.all(one.landmarks_px == two.landmarks_px, axis=(0, 2, 3))
    join = int(np.argmin(same)) if not same.all() else N_FRAMES
    assert same[:join].all() and 36 - OVERLAP + WARM <= join  # one pass's own detections up to the join
    for h in range(2):
        # the same hand in the same slot after the join: nearer its one-pass self than the other hand
        d_self = np.linalg.norm(two.landmarks_px[h, join:] - one.landmarks_px[h, join:], axis=-1).mean()
        d_other = np.linalg.norm(two.landmarks_px[h, join:] - one.landmarks_px[1 - h, join:], axis=-1).mean()
        assert d_self < 0.1 * d_other
        if join < N_FRAMES:
            for key, scale in (("landmarks_px", 1.0), ("joints", 1000.0)):
                a, b = getattr(one, key)[h] * scale, getattr(two, key)[h] * scale
                jitter = float(np.median(_steps(a)))
                excess = abs(_steps(b)[join - 1] - _steps(a)[join - 1])
                assert excess <= jitter, (key, h, join, excess, jitter)


def test_image_folder_in_segments_is_one_pass_exactly(data_dir):
    """Static mode keeps no state between images: two workers give one pass's detections exactly."""
    from core.capture import CaptureOptions, capture

    folder = str(data_dir / "real_world_testset_dev" / "images")
    common = dict(input=folder, end=24, vae=False, fit=False)
    one, _ = capture(CaptureOptions(**common, workers=1))
    two, _ = capture(CaptureOptions(**common, workers=2))
    assert one.sides == two.sides and np.array_equal(one.frame_index, two.frame_index)
    for f in ("detected", "landmarks_px", "landmarks_world", "joints", "K"):
        assert np.array_equal(getattr(one, f), getattr(two, f)), f


def test_truncated_file_in_segments_stops_where_one_pass_stops(data_dir, tmp_path):
    """A cut copy whose first 11 frames decode (the container still says 621): the second segment's worker finds
    nothing to decode at its start; the clip and the warning are one pass's."""
    from core.capture import CaptureOptions, capture
    from test_hostile import faststart

    fast = faststart((data_dir / "video" / "single_hand.mp4").read_bytes())
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast[: int(len(fast) * 0.05)])
    common = dict(input=str(cut), end=60, hands=1, vae=False)
    one, src1 = capture(CaptureOptions(**common, workers=1))
    two, src2 = capture(CaptureOptions(**common, workers=2))
    assert one.n_frames == two.n_frames == 11
    assert src1.warning == src2.warning and "only 11 of 60" in src2.warning
    assert np.array_equal(one.landmarks_px, two.landmarks_px)


def test_fit_threads_one_on_a_busy_machine():
    """The fit takes a second torch thread only where other processes left the cores idle during the detection:
    a busy loop in another process (not yet reaped: not ours) keeps it at one; no reading, or one core: one."""
    from core import capture as C

    assert C.fit_threads(None) == C.FIT_THREADS
    assert C.fit_threads(C.cpu_clock(), cores=1) == C.FIT_THREADS
    if C.cpu_clock() is None:
        pytest.skip("no /proc/stat on this system: the fit keeps one thread (checked above)")
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 5: pass"])
    try:
        time.sleep(0.3)  # the loop is running
        since = C.cpu_clock()
        time.sleep(0.6)
        assert C.fit_threads(since, cores=2) == C.FIT_THREADS
    finally:
        busy.kill()
        busy.wait()
