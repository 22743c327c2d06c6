"""The torch port of MediaPipe 0.10.21's hand networks and legacy Hands graph (core.detect.torch_hands).

Parity with MediaPipe itself: the palm network's raw outputs and the landmark network on the same crop
against MediaPipe's own TFLite interpreter (XNNPACK, as the Hands graph runs it), and the whole tracking
pipeline against ``mediapipe.solutions.hands`` on frames of the shared videos. These skip only where the
mediapipe package (the models' source and the reference) or the shared data is missing.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from core.detect import create_detector, make_config  # noqa: E402
from core.detect.base import nearest_hands  # noqa: E402
from core.errors import CaptureError  # noqa: E402
from core.detect.torch_hands import net as N  # noqa: E402
from core.detect.torch_hands import pipeline as P  # noqa: E402
from core.detect.torch_hands.tflite import read_model  # noqa: E402

HAS_MP = importlib.util.find_spec("mediapipe") is not None


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The networks on one intra-op thread, as TorchHands runs them on the CPU (on a loaded machine two
    threads wait at every operator's barrier: many times slower)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
needs_mp = pytest.mark.skipif(not HAS_MP, reason="the mediapipe package (models and reference) is not installed")


# ------------------------------------------------------------------------------------- pure logic

def test_same_padding_is_tflite_s():
    assert N._same_pad(192, 3, 2, 1) == (0, 1)  # stride 2 on an even size: all the padding after
    assert N._same_pad(191, 3, 2, 1) == (1, 1)
    assert N._same_pad(96, 5, 1, 1) == (2, 2)
    assert N._same_pad(48, 2, 2, 1) == (0, 0)


def test_anchors_match_the_ssd_options():
    a = P.ANCHORS
    assert a.shape == (2016, 2)
    # stride 8: 24 x 24 cells, 2 anchors each, centres at (x + 0.5) / 24
    np.testing.assert_allclose(a[:4], [[0.5 / 24, 0.5 / 24]] * 2 + [[1.5 / 24, 0.5 / 24]] * 2, rtol=1e-6)
    # strides 16, 16, 16 share one 12 x 12 grid, 6 anchors a cell
    np.testing.assert_allclose(a[1152:1158], [[0.5 / 12, 0.5 / 12]] * 6, rtol=1e-6)
    np.testing.assert_allclose(a[-1], [11.5 / 12, 11.5 / 12], rtol=1e-6)


def test_weighted_nms_averages_overlaps_by_score():
    kp = np.zeros((7, 2), np.float32)
    a = P.PalmDetection(np.array([0.0, 0.0, 1.0, 1.0], np.float32), kp + 1, 0.9)
    b = P.PalmDetection(np.array([0.1, 0.0, 1.0, 1.0], np.float32), kp + 2, 0.6)
    c = P.PalmDetection(np.array([5.0, 5.0, 1.0, 1.0], np.float32), kp + 3, 0.7)
    out = P.weighted_nms([b, c, a])
    assert [d.score for d in out] == [0.9, 0.7]
    np.testing.assert_allclose(out[0].box[0], 0.06 / 1.5, rtol=1e-5)  # (0 * 0.9 + 0.1 * 0.6) / 1.5
    np.testing.assert_allclose(out[0].keypoints, (0.9 * 1 + 0.6 * 2) / 1.5, rtol=1e-5)
    np.testing.assert_array_equal(out[1].box, c.box)


def test_rect_rotation_and_tracking_roi():
    # a palm whose middle-finger MCP is straight above the wrist: no rotation; the ROI moves up the hand
    det = P.PalmDetection(np.array([0.4, 0.4, 0.2, 0.2], np.float32),
                          np.array([[0.5, 0.6], [0, 0], [0.5, 0.4]] + [[0, 0]] * 4, np.float32), 0.9)
    r = P.palm_to_rect(det, 100, 100)
    np.testing.assert_allclose(r, [0.5, 0.4, 0.52, 0.52, 0.0], atol=1e-6)
    # the same palm turned 90 degrees (fingers to the right): rotation pi/2, shift along the hand
    det90 = P.PalmDetection(det.box, np.array([[0.4, 0.5], [0, 0], [0.6, 0.5]] + [[0, 0]] * 4, np.float32), 0.9)
    r90 = P.palm_to_rect(det90, 100, 100)
    np.testing.assert_allclose(r90, [0.6, 0.5, 0.52, 0.52, math.pi / 2], atol=1e-6)
    # landmarks -> next ROI: the rotation from the wrist to the PIP mean, centred on the rotated box
    lm = np.zeros((21, 3), np.float32)
    lm[:, 0] = 0.5
    lm[:, 1] = np.linspace(0.7, 0.3, 21)
    lm[[1, 5, 9, 13, 17], 0] = [0.45, 0.45, 0.5, 0.55, 0.55]
    r2 = P.landmarks_to_rect(lm, 100, 100)
    assert abs(r2[4]) < 1e-6 and r2[2] == pytest.approx(r2[3])
    # tracked ROIs win over a palm ROI they overlap; others stay, palm ROIs first
    far = np.array([0.1, 0.1, 0.1, 0.1, 0.0], np.float32)
    out = P.associate([r, far], [r + np.float32(0.01)])
    assert len(out) == 2 and out[0] is far and out[1][0] == pytest.approx(0.51)


def test_crops_by_grid_sample_match_opencv():
    rng = np.random.default_rng(3)
    img = (rng.random((90, 130, 3)) * 255).astype(np.uint8)
    img = np.ascontiguousarray(np.repeat(np.repeat(img, 4, 0), 4, 1))  # smooth-ish 360 x 520
    t = torch.from_numpy(img).permute(2, 0, 1).float()
    for roi, zero in (([260.3, 170.8, 200.0, 200.0, 0.4], False), ([100.0, 60.0, 300.0, 300.0, -2.0], False),
                      ([260.0, 180.0, 520.0, 520.0, 0.0], True)):
        roi = np.array(roi, np.float32)
        ref = P.crop_cv2(img, roi, 224, zero).astype(np.float32)
        got = P.crop_torch(t, [roi], 224, zero)[0].permute(1, 2, 0).numpy()
        diff = np.abs(ref - got)
        assert diff.mean() < 0.3 and np.percentile(diff, 99.9) <= 2.0, (roi, diff.mean(), diff.max())


# ------------------------------------------------------------------------------ the .tflite graphs

@needs_mp
def test_reader_reads_both_graphs():
    for name, n_params, outs in (("palm", 1_132_536, [(1, 2016, 18), (1, 2016, 1)]),
                                 ("landmark", 2_715_680, [(1, 63), (1, 1), (1, 1), (1, 63)])):
        _, data = N.model_source(name)
        g = read_model(data)
        assert sum(t.data.size for t in g.tensors if t.data is not None and t.dtype == np.float16) == n_params
        assert [g.tensors[i].shape for i in g.outputs] == outs
        assert not {op.kind for op in g.ops} - {"CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "PRELU", "ADD",
                                                  "MAX_POOL_2D", "PAD", "RESIZE_BILINEAR", "RESHAPE",
                                                  "CONCATENATION", "MEAN", "FULLY_CONNECTED", "LOGISTIC"}
    with pytest.raises(ValueError, match="not a TensorFlow Lite model"):
        read_model(b"\0" * 64)


@needs_mp
def test_conversion_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDCAP_CACHE", str(tmp_path))
    spec = N.cached_spec("palm")
    files = list((tmp_path / "torch_hands").glob("palm-*.pt"))
    assert len(files) == 1 and files[0].name.startswith("palm-" + N.KNOWN_SHA256["palm"][:16])
    again = N.cached_spec("palm")  # read back with weights_only
    assert again["steps"] == spec["steps"]
    for k, v in spec["weights"].items():
        assert v.dtype == torch.float32 and torch.equal(v, again["weights"][k])


@pytest.fixture(scope="module")
def frames(data_dir):
    """Six frames of single_hand.mp4, 100 apart (RGB-ordered BGR arrays as the video reader yields)."""
    from core.io.video import open_video

    path = data_dir / "video" / "single_hand.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return [f for _, f in open_video(path, stride=100)][:6]


@needs_mp
def test_palm_network_matches_tflite(frames):
    from core.detect.torch_hands.reference import ReferenceNet

    ref = ReferenceNet("palm")
    net = N.load_net("palm")
    try:
        rng = np.random.default_rng(0)
        imgs = [P.crop_cv2(f, P.letterbox(f.shape[1], f.shape[0])[0], 192, True)[:, :, ::-1] for f in frames[:3]]
        imgs.append(rng.integers(0, 256, (192, 192, 3), dtype=np.uint8))
        x = torch.from_numpy(np.ascontiguousarray(np.stack(imgs))).permute(0, 3, 1, 2).float() / 255
        with torch.inference_mode():
            boxes, scores = (t.numpy() for t in net(x))  # one batch of 4
        for i, img in enumerate(imgs):
            rb, rs = ref.run(np.ascontiguousarray(img))
            # raw regressions are in 192-px units (up to ~150): within 0.005 px; logits within 1e-3
            assert np.abs(boxes[i].ravel() - rb).max() < 5e-3
            assert np.abs(scores[i].ravel() - rs).max() < 1e-3
        with torch.inference_mode():  # the traced, frozen module TorchHands runs on the CPU: the same numbers
            for a, b in zip(N.frozen(net)(x), (boxes, scores)):
                assert np.array_equal(a.numpy(), b)
        # the decoded palms of a real frame: the same detections
        dets = P.weighted_nms(P.decode_palms(boxes[0], scores[0], 0.5))
        ref_dets = P.weighted_nms(P.decode_palms(*ref.run(np.ascontiguousarray(imgs[0])), 0.5))
        assert len(dets) == len(ref_dets) >= 1
        np.testing.assert_allclose(dets[0].keypoints, ref_dets[0].keypoints, atol=1e-4)
    finally:
        ref.close()


@needs_mp
def test_landmark_network_matches_tflite_on_the_same_roi(frames):
    from core.detect.torch_hands.detector import TorchHands
    from core.detect.torch_hands.reference import ReferenceNet

    ref = ReferenceNet("landmark")
    det = TorchHands(make_config(static=True, max_hands=1))
    px, world, presence = [], [], []
    try:
        for f in frames:
            h, w = f.shape[:2]
            palms = det.palms(f)
            if not palms:
                continue
            rect = P.palm_to_rect(palms[0], w, h)
            roi, pad = P.pad_roi(P.roi_pixels(rect, w, h))
            crop = np.ascontiguousarray(P.crop_cv2(f, roi, 224, False)[:, :, ::-1])
            x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
            with torch.inference_mode():
                lm, pr, hd, wl = (t[0].numpy() for t in det.landmark(x))
            rlm, rpr, rhd, rwl = ref.run(crop)
            a, aw = P.project_landmarks(lm, wl, rect, pad)
            b, bw = P.project_landmarks(rlm, rwl, rect, pad)
            px.append(np.linalg.norm((a[:, :2] - b[:, :2]) * np.array([w, h]), axis=1))
            world.append(np.abs(aw - bw).max())
            presence.append(abs(float(pr[0]) - float(rpr[0])) + abs(float(hd[0]) - float(rhd[0])))
    finally:
        ref.close()
    assert len(px) >= 4, "the palm detector found too few hands in the sample frames"
    px = np.concatenate(px)
    assert np.median(px) < 0.5 and np.percentile(px, 99) < 1.5, (np.median(px), np.percentile(px, 99))
    assert max(world) < 1e-3  # metres
    assert max(presence) < 1e-3


def _track(det, frames):
    return [det.detect(f) for f in frames]


@needs_mp
@pytest.mark.parametrize("video,n,grid", [("single_hand.mp4", 6, False), ("two_hands.mp4", 4, False),
                                          ("single_hand.mp4", 3, True)])
def test_tracking_pipeline_matches_mediapipe(data_dir, video, n, grid):
    from core.detect.torch_hands.detector import TorchHands
    from core.io.video import open_video

    path = data_dir / "video" / video
    if not path.is_file():
        pytest.skip(f"{path} not found")
    clip = [f for _, (_, f) in zip(range(n), open_video(path))]
    with create_detector("mediapipe", static=False, max_hands=2) as mp:
        want = _track(mp, clip)
    # palm_every 1: MediaPipe's own schedule (the palm detector on every frame while fewer hands are tracked than
    # asked for); the default's period is checked in test_torch_hands_schedule.py
    with TorchHands(make_config(name="torch", static=False, max_hands=2), grid_sample=grid, palm_every=1) as th:
        got = _track(th, clip)
    errs = []
    for a, b in zip(want, got):
        assert len(a) == len(b)  # the same hands found on every frame
        for ha, hb, e in nearest_hands(a, b):
            assert hb.side == ha.side and abs(hb.score - ha.score) < 0.02
            np.testing.assert_allclose(hb.world, ha.world, atol=2e-3)
            errs.append(e)
    errs = np.concatenate(errs)
    assert len(errs) >= 21 * n and np.median(errs) < 1.0, np.median(errs)


@needs_mp
def test_each_step_matches_mediapipe_on_its_own_inputs(data_dir):
    """The graph's steps one frame at a time on two_hands.mp4, fed what MediaPipe's legacy graph itself had
    (its ROI streams as outputs, `reference.ReferenceTracker`): palm ROIs, landmarks from its ROIs, the next
    frame's ROIs from its landmarks. (Free-running, two trackers part by up to ~20 px on some frames of this
    clip: MediaPipe against itself with one pixel one level off does the same, see BENCHMARKS.md.)"""
    import cv2

    from core.detect.torch_hands.detector import TorchHands
    from core.detect.torch_hands.reference import ReferenceTracker
    from core.io.video import open_video

    path = data_dir / "video" / "two_hands.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    clip = [f for _, (_, f) in zip(range(4), open_video(path))]
    h, w = clip[0].shape[:2]
    ref = ReferenceTracker(max_hands=2)
    th = TorchHands(make_config(name="torch", static=False, max_hands=2))
    prev, n_palm, n_hands = [], 0, []
    try:
        for f in clip:
            r = ref.process(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
            if r["palm_rects"]:  # the palm detector ran (fewer hands tracked than asked)
                n_palm += 1
                mine = [P.palm_to_rect(d, w, h) for d in th.palms(f)[:2]]
                assert len(mine) == len(r["palm_rects"])
                for a, b in zip(mine, r["palm_rects"]):
                    np.testing.assert_allclose(a, b, atol=1e-5)
            got = [x for x in th.hands_in(f, P.associate(r["palm_rects"], prev)) if x.presence > 0.5]
            assert len(got) == len(r["landmarks"])
            n_hands.append(len(got))
            for a, b in zip(r["landmarks"], got):
                assert np.linalg.norm((a[:, :2] - b.landmarks[:, :2]) * [w, h], axis=1).max() < 0.05
                np.testing.assert_allclose(b.landmarks[:, 2], a[:, 2], atol=1e-4)
            for a, b in zip(r["landmarks"], r["next_rects"]):
                np.testing.assert_array_equal(P.landmarks_to_rect(a, w, h), b)  # MediaPipe's to the bit
            prev = r["next_rects"]
    finally:
        ref.close()
        th.close()
    assert n_palm >= 2 and n_hands[0] >= 1 and n_hands[-1] == 2  # re-detection until both hands are tracked


@needs_mp
def test_static_mode_and_created_by_name(frames):
    f = frames[1]
    with create_detector("mediapipe", static=True, max_hands=2) as mp:
        want = mp.detect(f)
    torch.set_num_threads(2)
    try:
        with create_detector("torch", static=True, max_hands=2) as th:
            got = th.detect(f)
            got2 = th.detect(f)  # static: no state carried over
        assert torch.get_num_threads() == 2  # one thread inside the detector, the process's setting after
    finally:
        torch.set_num_threads(1)
    assert len(got) == len(want) >= 1
    np.testing.assert_allclose(got[0].landmarks_px, got2[0].landmarks_px)
    assert np.median(np.linalg.norm(got[0].landmarks_px - want[0].landmarks_px, axis=1)) < 1.0


# ----------------------------------------------------------------------------------- the capture CLI

def test_backend_choice():
    from core.detect import resolve_backend

    assert resolve_backend("auto", "cpu") == "hybrid"
    assert resolve_backend("auto", "cuda") == "torch"
    assert resolve_backend("auto", "auto") == ("torch" if torch.cuda.is_available() else "hybrid")
    assert resolve_backend("torch", "cpu") == "torch" and resolve_backend("mediapipe", "cuda") == "mediapipe"


@needs_mp
def test_capture_records_the_detector(data_dir, tmp_path):
    import subprocess
    import sys

    from core.io.clip import load_clip, save_clip

    video = data_dir / "video" / "single_hand.mp4"
    out = tmp_path / "c.npz"
    r = subprocess.run([sys.executable, "-m", "core", "capture", str(video), "--out", str(out), "--end", "3",
                        "--detector", "torch", "--device", "cpu", "--quiet"], capture_output=True, text=True,
                       cwd=str(Path(__file__).resolve().parent.parent))
    assert r.returncode == 0, r.stderr[-2000:]
    clip = load_clip(out)
    assert clip.detector == "torch" and clip.fit_device == "cpu" and clip.detected.any()
    # a clip without the keys (older files) reads as "not recorded"; a bad value is refused in one line
    save_clip(dataclasses.replace(clip, detector="", fit_device=""), tmp_path / "old.npz")
    old = load_clip(tmp_path / "old.npz")
    assert not {"detector", "fit_device"} & set(np.load(tmp_path / "old.npz").files)
    assert old.detector == old.fit_device == ""
    for key in ("detector", "fit_device"):
        arrays = dict(np.load(out))
        arrays[key] = np.zeros(3)
        np.savez(tmp_path / "bad.npz", **arrays)
        with pytest.raises(CaptureError, match=f"{key} must be one string"):
            load_clip(tmp_path / "bad.npz")
