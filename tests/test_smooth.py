"""Temporal clean-up (core/smooth.py): sign continuity, gap filling, smoothing against a known motion.

Figures from `python -m benchmarks.jitter --synthetic-only` (seed 0): jitter raw 12.5 -> cleaned 1.2
mm/frame^2 (truth 0.9), error 7.8 -> 4.1 mm, lag 0.0 frames; the asserts keep margins over seeds 0-7
(jitter ratio 7.3-10.2, error ratio 0.45-0.53, |lag| <= 0.13 frames).
"""
import dataclasses
import math

import numpy as np
import pytest
import torch

from benchmarks.jitter import fk_joints, flexion_angle, lag_frames, synthetic_clip
from core.eval import metrics
from core.solve import smooth
from core.errors import CaptureError
from core.hand.load import load_model
from core.hand.mano import ManoLayer
from core.rot import aa_to_rotmat, quat_to_aa


@pytest.fixture(scope="module")
def layer():
    return ManoLayer(load_model("right"))


def _angle_between(aa1, aa2) -> np.ndarray:
    """Rotation angle (...) radians between axis-angles aa1, aa2 (..., 3)."""
    r1 = aa_to_rotmat(torch.as_tensor(np.asarray(aa1), dtype=torch.float64))
    r2 = aa_to_rotmat(torch.as_tensor(np.asarray(aa2), dtype=torch.float64))
    tr = (r1.transpose(-1, -2) @ r2).diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.arccos(((tr - 1) / 2).clamp(-1, 1)).numpy()


def _random_quats(shape, seed=0) -> torch.Tensor:
    q = torch.as_tensor(np.random.default_rng(seed).normal(size=shape + (4,)), dtype=torch.float64)
    return q / q.norm(dim=-1, keepdim=True)


def _constant_velocity(n_frames=60, seed=1):
    """Every joint turns at a constant angular velocity about a fixed axis (q0 exp(t w)); the
    translation moves at constant velocity. Returns axis-angles (T, 16, 3) and transl (T, 3)."""
    rng = np.random.default_rng(seed)
    q0 = _random_quats((16,), seed)
    w = torch.as_tensor(rng.normal(size=(16, 3)) * 0.05, dtype=torch.float64)  # ~5 deg/frame
    t = torch.arange(n_frames, dtype=torch.float64)
    q = smooth.quat_mul(q0.expand(n_frames, -1, -1), smooth.aa_to_quat(t[:, None, None] * w))
    aa = quat_to_aa(q).numpy()
    transl = np.array([0.1, -0.05, 0.6]) + t.numpy()[:, None] * np.array([0.002, 0.001, -0.003])
    return aa, transl


# ---------------------------------------------------------------- config and contracts


def test_config_rejects_unknown_keys_and_bad_values_all_at_once():
    with pytest.raises(CaptureError) as e:
        smooth.SmoothConfig.create(min_cutof=2.0, beta=-1, degree=5)
    msg = str(e.value)
    assert "min_cutof" in msg and "beta" in msg and "degree" in msg and "min_cutoff" in msg
    assert smooth.SmoothConfig.create(beta=0.0).beta == 0.0
    with pytest.raises(CaptureError, match="maxgap"):
        smooth.clean_up(np.zeros((5, 3)), np.zeros((5, 15, 3)), np.zeros((5, 3)), np.ones(5, bool), 30.0, maxgap=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        smooth.SmoothConfig().beta = 1.0


@pytest.mark.parametrize("t", [1, 2])
def test_short_clips_returned_unchanged(t):
    rng = np.random.default_rng(0)
    go, hp, tr = (rng.normal(size=s).astype(np.float32) for s in ((t, 3), (t, 15, 3), (t, 3)))
    c = smooth.clean_up(go, hp, tr, np.ones(t, bool), 30.0)
    np.testing.assert_array_equal(c.global_orient, go)
    np.testing.assert_array_equal(c.hand_pose, hp)
    np.testing.assert_array_equal(c.transl, tr)
    assert c.valid.all() and not c.filled.any() and not c.outliers.any()
    assert c.global_orient.shape == (t, 3) and c.hand_pose.shape == (t, 15, 3) and c.valid.shape == (t,)


def test_numpy_in_numpy_out_torch_in_torch_out():
    s = synthetic_clip(0, n_frames=40, n_outliers=0)
    c = smooth.clean_up(s.global_orient, s.hand_pose, s.transl, s.valid, s.fps)
    assert isinstance(c.hand_pose, np.ndarray) and c.hand_pose.dtype == np.float32 and c.valid.dtype == bool
    assert c.global_orient.shape == (40, 3) and c.hand_pose.shape == (40, 15, 3) and c.transl.shape == (40, 3)
    ct = smooth.clean_up(*(torch.as_tensor(a, dtype=torch.float64) for a in (s.global_orient, s.hand_pose, s.transl)),
                         torch.as_tensor(s.valid), s.fps)
    assert torch.is_tensor(ct.hand_pose) and ct.hand_pose.dtype == torch.float64 and ct.valid.dtype == torch.bool
    np.testing.assert_allclose(ct.hand_pose.numpy(), c.hand_pose, atol=1e-4)
    np.testing.assert_array_equal(ct.filled.numpy(), c.filled)


def test_all_invalid_or_one_valid_frame_unchanged():
    go, hp, tr = np.ones((6, 3)) * 0.1, np.ones((6, 15, 3)) * 0.2, np.ones((6, 3))  # float64 in
    for valid in (np.zeros(6, bool), np.eye(6, dtype=bool)[2]):
        c = smooth.clean_up(go, hp, tr, valid, 30.0)
        assert c.hand_pose.dtype == np.float32  # numpy inputs become float32
        np.testing.assert_array_equal(c.hand_pose, hp.astype(np.float32))
        np.testing.assert_array_equal(c.valid, valid)
        assert not c.filled.any()


def test_disabled_smoothing_only_fills():
    aa, tr = _constant_velocity(20)
    valid = np.ones(20, bool)
    valid[8:11] = False
    noisy = aa + np.random.default_rng(3).normal(0, 0.02, aa.shape)
    c = smooth.clean_up(noisy[:, 0], noisy[:, 1:], tr, valid, 30.0, enabled=False)
    assert _angle_between(c.hand_pose[valid], noisy[valid, 1:]).max() < 1e-6
    np.testing.assert_array_equal(c.filled, ~valid)


def test_public_functions_with_one_channel():
    q = _random_quats((5, 1))
    assert smooth.quat_continuous(q).shape == (5, 1, 4)
    out, flags = smooth.smooth_rotations(q, torch.ones(5, dtype=torch.bool), 30.0)
    assert out.shape == (5, 1, 4) and flags.shape == (5, 1)
    x = torch.zeros(5, 1, 3, dtype=torch.float64)
    out, flags = smooth.smooth_points(x, torch.ones(5, dtype=torch.bool), 30.0)
    assert out.shape == (5, 1, 3) and out.dtype == torch.float64
    qf, xf, filled = smooth.fill_gaps(q, x, torch.tensor([True, False, False, True, True]), 10)
    assert qf.shape == (5, 1, 4) and xf.shape == (5, 1, 3) and filled.tolist() == [False, True, True, False, False]


# ---------------------------------------------------------------- quaternions and gaps


def test_quat_continuous_flips_signs_only():
    q = _random_quats((50, 16))
    q = q * 0.05 + torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)  # a slowly varying path ...
    q = q / q.norm(dim=-1, keepdim=True)
    signs = torch.as_tensor(np.random.default_rng(1).choice([-1.0, 1.0], size=(50, 16, 1)))
    valid = torch.ones(50, dtype=torch.bool)
    valid[[10, 11, 30]] = False
    c = smooth.quat_continuous(q * signs, valid)  # ... with random sign flips
    np.testing.assert_allclose((c * (q * signs)).sum(-1).abs().numpy(), 1.0, atol=1e-12)  # same rotations
    cv = c[valid]
    assert ((cv[1:] * cv[:-1]).sum(-1) >= 0).all()
    assert torch.equal(c[~valid], (q * signs)[~valid])  # invalid frames untouched
    assert torch.equal(smooth.quat_continuous(q[:1]), q[:1])


def test_slerp_endpoints_and_midpoint():
    q0, q1 = _random_quats((2, 7), seed=4)
    start = smooth.slerp(q0, q1, torch.zeros(7, dtype=torch.float64))
    np.testing.assert_allclose(start.numpy(), q0.numpy(), atol=1e-12)
    end = smooth.slerp(q0, q1, torch.ones(7, dtype=torch.float64))
    np.testing.assert_allclose((end * q1).sum(-1).abs().numpy(), 1.0, atol=1e-12)
    mid = smooth.slerp(q0, q1, torch.full((7,), 0.5, dtype=torch.float64))
    d0 = (mid * q0).sum(-1).abs()
    d1 = (mid * q1).sum(-1).abs()
    np.testing.assert_allclose(d0.numpy(), d1.numpy(), atol=1e-12)  # equal angles to both ends


def test_fill_gaps_exact_for_constant_velocity_and_bounded():
    aa, tr = _constant_velocity(60)
    q = smooth.aa_to_quat(torch.as_tensor(aa))
    x = torch.as_tensor(tr)[:, None]
    valid = torch.ones(60, dtype=torch.bool)
    valid[:3] = False  # clip start: never filled
    valid[20:30] = False  # 10 frames: filled
    valid[40:51] = False  # 11 frames: too long
    valid[58:] = False  # clip end
    qf, xf, filled = smooth.fill_gaps(q, x, valid, max_gap=10)
    expect = torch.zeros(60, dtype=torch.bool)
    expect[20:30] = True
    assert torch.equal(filled, expect)
    np.testing.assert_allclose((qf[20:30] * q[20:30]).sum(-1).abs().numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(xf[20:30].numpy(), x[20:30].numpy(), atol=1e-12)
    assert torch.equal(qf[~filled], q[~filled])


def test_clean_up_exact_for_constant_velocity_with_gap():
    """A noise-free constant-velocity clip is left as it is (a local quadratic reproduces it) and its
    gap is filled exactly; gaps longer than max_gap_s and the clip's ends stay invalid."""
    aa, tr = _constant_velocity(60)
    valid = np.ones(60, bool)
    valid[:2] = False
    valid[25:33] = False  # 8 frames
    valid[45:57] = False  # 12 frames > 10
    go, hp = aa[:, 0] * valid[:, None], aa[:, 1:] * valid[:, None, None]
    c = smooth.clean_up(go, hp, tr * valid[:, None], valid, 30.0)
    expect = np.zeros(60, bool)
    expect[25:33] = True
    np.testing.assert_array_equal(c.filled, expect)
    np.testing.assert_array_equal(c.valid, valid | expect)
    assert not c.outliers.any()
    m = c.valid
    assert _angle_between(c.global_orient[m], aa[m, 0]).max() < 1e-5
    assert _angle_between(c.hand_pose[m], aa[m, 1:]).max() < 1e-5
    np.testing.assert_allclose(c.transl[m], tr[m], atol=1e-7)
    np.testing.assert_array_equal(c.hand_pose[~m], hp[~m])  # still-invalid frames as given


# ---------------------------------------------------------------- the synthetic clip


def test_synthetic_clip_jitter_error_lag(layer):
    s = synthetic_clip(0)
    c = smooth.clean_up(s.global_orient, s.hand_pose, s.transl, s.valid, s.fps)
    truth = fk_joints(layer, s.true_global_orient, s.true_hand_pose, s.true_transl)
    raw = fk_joints(layer, s.global_orient, s.hand_pose, s.transl)
    clean = fk_joints(layer, c.global_orient, c.hand_pose, c.transl)
    v = s.valid
    # 1. Jitter of the FK joints at most a third of the raw jitter.
    j_raw, j_clean = metrics.jitter(raw, v), metrics.jitter(clean, v)
    assert j_clean <= j_raw / 3, (j_raw, j_clean)
    # 2. Closer to the truth: in the camera frame, wrist-relative, and per rotation.
    assert metrics.mpjpe(clean[v], truth[v]).mean() < 0.7 * metrics.mpjpe(raw[v], truth[v]).mean()
    assert metrics.mpjpe(clean[v], truth[v], root=0).mean() < 0.7 * metrics.mpjpe(raw[v], truth[v], root=0).mean()
    assert (_angle_between(c.hand_pose[v], s.true_hand_pose[v]).mean()
            < 0.6 * _angle_between(s.hand_pose[v], s.true_hand_pose[v]).mean())
    # 3. No lag: cross-correlation of joint angles against the truth peaks within a frame of zero.
    assert abs(lag_frames(flexion_angle(clean), flexion_angle(truth), v)) <= 1.0
    for j in (0, 3, 9, 13):  # index1, middle1, ring1, thumb1 rotation angles
        ang = lambda hp: np.linalg.norm(hp[:, j], axis=-1)  # noqa: E731
        assert abs(lag_frames(ang(c.hand_pose), ang(s.true_hand_pose), v)) <= 1.0
    # 4. The 6-frame gap is filled (and close to the truth), the 15-frame gap and the start are not.
    expect = np.zeros(len(v), bool)
    expect[60:66] = True
    np.testing.assert_array_equal(c.filled, expect)
    assert metrics.mpjpe(clean[expect], truth[expect]).mean() < 10.0
    # 5. Every planted outlier frame is found, and few others.
    assert set(s.outlier_frames) <= set(np.nonzero(c.outliers)[0])
    assert c.outliers.sum() <= 2 * len(s.outlier_frames)


def test_fast_motion_is_kept():
    """A quick 0.33 s finger flick (70 deg and back, no noise) is neither an outlier nor flattened; the
    speed adaptation (beta) keeps more of its peak than a fixed cutoff."""
    t = 90
    n = 10
    ang = np.zeros(t)
    ang[40:41 + n] = 1.2 * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n + 1) / n))
    hp = np.zeros((t, 15, 3))
    hp[:, 1, 2] = ang
    go, tr, valid = np.zeros((t, 3)), np.zeros((t, 3)), np.ones(t, bool)
    adaptive = smooth.clean_up(go, hp, tr, valid, 30.0)
    fixed = smooth.clean_up(go, hp, tr, valid, 30.0, beta=0.0)
    assert not adaptive.outliers.any()
    peak = adaptive.hand_pose[:, 1, 2].max() / 1.2
    assert peak > 0.85
    assert peak > fixed.hand_pose[:, 1, 2].max() / 1.2 + 0.03
    assert abs(lag_frames(adaptive.hand_pose[:, 1, 2], ang)) <= 0.5


def test_outlier_frame_replaced():
    aa, tr = _constant_velocity(40)
    bad = aa.copy()
    bad[20, 1:7] += np.array([0.0, 0.5, 0.0])  # six joints ~30 deg off on one frame
    tr_bad = tr.copy()
    tr_bad[20] += 0.03
    c = smooth.clean_up(bad[:, 0], bad[:, 1:], tr_bad, np.ones(40, bool), 30.0)
    assert c.outliers[20] and c.outliers.sum() == 1
    assert _angle_between(c.hand_pose[20], aa[20, 1:]).max() < math.radians(0.5)
    np.testing.assert_allclose(c.transl[20], tr[20], atol=1e-4)
