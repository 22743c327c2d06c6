"""core.eval.reproj: image-alignment measures (issue 15) on known values, and their columns in core.eval.evaluate."""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.eval import reproj

K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])


def _rot_towards(d: np.ndarray, n: np.ndarray, deg: float) -> np.ndarray:
    """Turn unit d by deg towards n (n's part perpendicular to d)."""
    p = n - (n @ d) * d
    p /= np.linalg.norm(p)
    a = math.radians(deg)
    return math.cos(a) * d + math.sin(a) * p


def synthetic_right_hand(flex: dict | None = None, z: float = 0.5) -> np.ndarray:
    """(21, 3) right hand, MediaPipe order, palm facing the camera (volar normal -z), fingers up (-y),
    each finger's MCP / PIP / DIP flexed by flex[name] degrees towards the palm (planar fingers); the
    thumb's MCP / IP by flex["thumb"] towards the palm centre."""
    flex = flex or {}
    j = np.zeros((21, 3))
    volar = np.array([0.0, 0.0, -1.0])
    j[0] = (0.0, 0.0, z)
    j[1] = (0.02, -0.02, z)  # thumb CMC: index side is +x for a right palm facing the camera
    bases = {"index": (5, 0.03), "middle": (9, 0.01), "ring": (13, -0.01), "pinky": (17, -0.03)}
    for name, (b, x) in bases.items():
        j[b] = (x, -0.09, z)
        d = (j[b] - j[0]) / np.linalg.norm(j[b] - j[0])
        for k, length in zip(range(3), (0.04, 0.025, 0.02)):
            d = _rot_towards(d, volar, flex.get(name, (0, 0, 0))[k])
            j[b + k + 1] = j[b + k] + length * d
    d = np.array([0.6, -0.8, 0.0])
    j[2] = j[1] + 0.04 * d
    centre = j[[0, 5, 9, 13, 17]].mean(0)  # the thumb curls towards the palm centre (reproj.flexion_deg)
    towards = (centre - j[2]) / np.linalg.norm(centre - j[2])
    for k, length in ((2, 0.03), (3, 0.025)):
        d = _rot_towards(d, towards, flex.get("thumb", (0, 0))[k - 2])
        j[k + 1] = j[k] + length * d
    return j


def test_project_known_values_and_behind_camera():
    pts = np.array([[[0.1, -0.05, 0.5], [0.0, 0.0, 2.0], [0.0, 0.0, -1.0]]])  # (B=1, J=3, 3)
    px = reproj.project(pts, K)
    assert px.shape == (1, 3, 2)
    np.testing.assert_allclose(px[0, :2], [[420.0, 190.0], [320.0, 240.0]])
    assert np.isnan(px[0, 2]).all()
    # per-frame K (N, 3, 3) gives the same as one K
    np.testing.assert_allclose(reproj.project(pts[:, :2], K[None]), px[:, :2])


def test_hand_size_px_is_wrist_to_middle_mcp():
    kp = np.zeros((1, 21, 2))
    kp[0, 9] = (30.0, 40.0)
    kp[0, 5] = (1000.0, 0.0)  # other joints do not count
    s = reproj.hand_size_px(kp)
    assert s.shape == (1,) and s[0] == pytest.approx(50.0)


def test_reprojection_in_hand_sizes():
    j = synthetic_right_hand()[None]  # (1, 21, 3)
    true_px = reproj.project(j, K)
    size = reproj.hand_size_px(true_px)[0]
    assert size == pytest.approx(0.09 * math.hypot(0.01, 0.09) / 0.09 * 500 / 0.5, rel=1e-9)  # 90.55 px
    kp = true_px + np.array([0.1 * size, 0.0])  # every landmark 0.1 hand sizes to the right
    r = reproj.reprojection(j, K, kp)
    assert r.dist.shape == (1, 21) and r.hand_size.shape == (1,)
    np.testing.assert_allclose(r.dist, 0.1)
    assert r.median == pytest.approx(0.1) and r.p95 == pytest.approx(0.1) and r.n_frames == 1
    # one joint 1 hand size off: median stays, p95 of 21 values interpolates towards it
    kp2 = true_px.copy()
    kp2[0, 8, 1] += size
    r2 = reproj.reprojection(j, K, kp2)
    assert r2.median == pytest.approx(0.0) and r2.dist[0, 8] == pytest.approx(1.0)
    assert r2.p95 == pytest.approx(np.percentile(np.r_[np.zeros(20), 1.0], 95))
    # masks: a frame mask (N,) and a joint subset
    two = np.concatenate([j, j], 0)
    kp3 = np.concatenate([kp, kp2], 0)
    r3 = reproj.reprojection(two, np.stack([K, K]), kp3, valid=np.array([True, False]))
    assert r3.n_frames == 1 and np.isnan(r3.dist[1]).all() and r3.median == pytest.approx(0.1)
    r4 = reproj.reprojection(j, K, kp2, joints=[8])
    assert r4.median == pytest.approx(1.0) and np.isnan(r4.dist[0, :8]).all()


def test_reprojection_behind_camera_counts_as_far_off():
    j = synthetic_right_hand()[None]
    kp = reproj.project(j, K)
    bad = j.copy()
    bad[0, 19:, 2] = -0.1  # two of 21 joints: above the 95th percentile's rank (0.95 * 20 = 19)
    r = reproj.reprojection(bad, K, kp)
    assert (r.dist[0, 19:] == reproj.BEHIND).all() and r.median == pytest.approx(0.0) and r.p95 == reproj.BEHIND


def test_reprojection_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        reproj.reprojection(np.zeros((2, 21, 3)), K, np.zeros((2, 20, 2)))


def test_camera_error_and_hand_size_error():
    j = synthetic_right_hand()[None]
    e = reproj.camera_error_mm(j + np.array([0.002, 0.0, 0.0]), j)
    assert e.shape == (1,) and e[0] == pytest.approx(2.0)
    shifted = j.copy()
    shifted[0, 20] += (0.0, 0.0, 0.021)  # one joint 21 mm off: mean over 21 joints is 1 mm
    assert reproj.camera_error_mm(shifted, j)[0] == pytest.approx(1.0)
    valid = np.ones((1, 21), bool)
    valid[0, 20] = False
    assert reproj.camera_error_mm(shifted, j, valid)[0] == pytest.approx(0.0)
    big = j * 1.05  # scaled about the camera: every length 5 % longer, the image unchanged
    np.testing.assert_allclose(reproj.hand_size_error(big, j), [0.05])
    np.testing.assert_allclose(reproj.reprojection(big, K, reproj.project(j, K)).dist, 0.0, atol=1e-9)
    assert reproj.hand_size_3d(j)[0] == pytest.approx(math.hypot(0.01, 0.09))


def test_flexion_reads_known_angles_and_mirrors():
    flex = {"index": (30, 60, 20), "middle": (0, 90, 45), "ring": (-15, 10, 0), "pinky": (70, 0, -10),
            "thumb": (25, -20)}
    j = synthetic_right_hand(flex)[None]
    f = reproj.flexion_deg(j, "right")
    assert f.shape == (1, 14)
    np.testing.assert_allclose(f[0], [25, -20, 30, 60, 20, 0, 90, 45, -15, 10, 0, 70, 0, -10], atol=1e-6)
    mirrored = j * np.array([-1.0, 1.0, 1.0])  # a left hand is the mirror image of a right one
    np.testing.assert_allclose(reproj.flexion_deg(mirrored, "left"), f, atol=1e-6)
    # the same joints read as the wrong side flip the fingers' signs (the thumb's rule has no side)
    np.testing.assert_allclose(reproj.flexion_deg(mirrored, "right")[0, 2:], -f[0, 2:], atol=1e-6)
    with pytest.raises(ValueError):
        reproj.flexion_deg(j, "both")


def test_flexion_on_the_open_model_matches_the_demo_keys():
    """The demo's fist, made by rotating the model's hinge axes (core.demo.author_motion): the four fingers
    read their key angles, the thumb reads flexed."""
    import torch

    from core import demo
    from core.hand.load import load_model
    from core.hand.mano import ManoLayer
    from core.hand.model import MP_FROM_MANO21

    for side in ("right", "left"):
        layer = ManoLayer(load_model(side))
        n = 24
        m = demo.author_motion(layer, n)
        with torch.no_grad():
            out = layer(m.betas.expand(n, -1), None, None, m.transl, rotmats=m.rotmats)
        j = out.joints21.numpy().astype(np.float64)[:, MP_FROM_MANO21]
        fist = demo.peak_frames(n)[0]
        f = reproj.flexion_deg(j[fist:fist + 1], side)[0]
        keys = demo.key_angles(n)[fist, 1:, :3].ravel()  # index..pinky flex1..3
        np.testing.assert_allclose(f[2:], keys, atol=3.0)
        assert (f[:2] > 20).all()


def test_bent_against():
    truth = synthetic_right_hand({"index": (10, 30, 10), "ring": (0, 0, 0)})[None]
    back = synthetic_right_hand({"index": (10, -15, 10), "ring": (0, -30, 0)})[None]
    slight = synthetic_right_hand({"index": (10, -5, 10)})[None]
    b = reproj.bent_against(back, truth, "right")
    assert b.shape == (1, 5)
    # index: truth +30, result -15 at the PIP; ring: truth straight, so -30 is not "against" a bend
    assert b[0].tolist() == [False, True, False, False, False]
    assert not reproj.bent_against(slight, truth, "right").any()  # -5 is within min_deg of straight
    assert reproj.bent_against(slight, truth, "right", min_deg=4.0)[0, 1]
    assert not reproj.bent_against(truth, truth, "right").any()


def _clip(joints: np.ndarray, kp: np.ndarray, K_: np.ndarray, guessed: bool):
    from core.io.clip import ClipResult

    t = len(joints)
    ones = np.ones((1, t), bool)
    return ClipResult(
        source="x", fps=30.0, image_size=np.array([640, 480]), frame_index=np.arange(t), time=np.arange(t) / 30,
        K=np.repeat(K_[None], t, 0), K_guessed=guessed, sides=("right",), model_names=("handcap-open",),
        model_paths=("",), valid=ones, detected=ones, confidence=ones.astype(np.float32),
        betas=np.zeros((1, 10)), global_orient=np.zeros((1, t, 3)), hand_pose=np.zeros((1, t, 15, 3)),
        transl=np.zeros((1, t, 3)), joints=joints[None], landmarks_px=kp[None], landmarks_world=joints[None])


def test_evaluate_reports_the_reprojection_columns():
    from core.eval.evaluate import evaluate

    truth = np.repeat(synthetic_right_hand()[None], 3, 0)
    true_px = reproj.project(truth, K)
    size = reproj.hand_size_px(true_px)[:, None, None]
    kp = true_px + np.array([0.0, 0.02]) * size  # the "detector" 0.02 hand sizes low
    ours = truth * 1.03  # 3 % too large and too far: projects exactly onto the truth
    rep = evaluate(_clip(ours, kp, K, guessed=False), truth)
    row = rep.rows["ours"]
    assert row["reproj_med"] == pytest.approx(0.02) and row["reproj_p95"] == pytest.approx(0.02)
    assert row["reproj_gt_med"] == pytest.approx(0.0, abs=1e-9) and row["reproj_gt_p95"] == pytest.approx(0.0, abs=1e-9)
    assert row["size_err_pct"] == pytest.approx(3.0)
    assert "reproj_med" in rep.table()
    # guessed intrinsics: no truth-2D figure (the ground truth cannot be projected with a guess)
    row = evaluate(_clip(ours, kp, K, guessed=True), truth).rows["ours"]
    assert "reproj_gt_med" not in row and row["reproj_med"] == pytest.approx(0.02)


def test_hand_size_error_of_a_degenerate_truth_is_nan_without_a_warning():
    """A label with the wrist on the middle MCP (all-zero ground truth, say) has no size: nan, no warning."""
    import warnings

    joints = np.random.default_rng(0).normal(size=(3, 21, 3))
    gt = joints.copy()
    gt[1] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        err = reproj.hand_size_error(joints, gt)
    assert err.shape == (3,) and np.isnan(err[1]) and np.allclose(err[[0, 2]], 0.0)
