"""Focal self-calibration (issue 15 item 2, ``--fov auto``): `core.solve.camera.self_calibrate` finds the
field of view where the hand's own perspective determines it, keeps the default where it does not, and the
capture refuses it where it cannot apply; the clip records what it found (``self_calibration``).
Figures on the hard views and the shared videos: BENCHMARKS.md."""
import argparse
import dataclasses
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.capture import CaptureOptions, _self_calibrate
from core.errors import CaptureError
from core.hand.load import load_model
from core.io.clip import ClipResult, load_clip, save_clip
from core.solve import camera

W, H = 640, 480


def _hand_clip(fov: float, dist: float, n: int = 30, noise_px: float = 0.5, seed: int = 0):
    """A rigid hand (the open model's rest joints, 16 of them) turning in front of a camera with ``fov`` across
    the width at ``dist`` metres: its camera-aligned 3D (the detector's metric landmarks) and noisy 2D."""
    j = load_model("right").rest_joints()
    j = j - j.mean(0)
    rng = np.random.default_rng(seed)
    rots = Rotation.from_rotvec(rng.normal(0.0, 0.6, (n, 3))).as_matrix()
    shape = np.einsum("tij,nj->tni", rots, j)
    x = shape + np.array([0.02, 0.01, dist])
    f = 0.5 * W / math.tan(math.radians(fov) / 2)
    px = x[..., :2] / x[..., 2:] * f + np.array([(W - 1) / 2, (H - 1) / 2])
    return shape, px + rng.normal(0.0, noise_px, px.shape)


@pytest.mark.parametrize("fov", [50.0, 85.0])
def test_close_hand_gives_its_focal(fov):
    shape, px = _hand_clip(fov, 0.22)
    sc = camera.self_calibrate(shape, px, W, H)
    assert sc.fov_deg is not None and abs(sc.fov_deg - fov) <= 5.0, sc.reason
    assert sc.stability >= 0.8 and sc.gain > 0.05


def test_far_hand_keeps_the_default():
    # 1.2 m away the hand's relief is ~3 % of its distance: 1 px of noise hides the perspective.
    shape, px = _hand_clip(50.0, 1.2, noise_px=1.0)
    sc = camera.self_calibrate(shape, px, W, H)
    assert sc.fov_deg is None and sc.reason.startswith("not determined")


def test_rigid_residual_is_least_at_the_true_focal():
    shape, px = _hand_clip(60.0, 0.25, noise_px=0.0)
    f = 0.5 * W / math.tan(math.radians(60.0) / 2)
    c = np.array([(W - 1) / 2, (H - 1) / 2])
    at = camera.rigid_residual(shape, px, f, c).mean()
    assert at < 1e-4
    assert camera.rigid_residual(shape, px, 1.3 * f, c).mean() > 10 * at + 1e-3


def _slot(shape, px):
    return argparse.Namespace(world=shape.astype(np.float32), landmarks_px=(px + 0.5).astype(np.float32),
                              detected=np.ones(len(px), bool))


def test_capture_uses_it_and_refuses_it_where_it_cannot_apply():
    shape, px = _hand_clip(50.0, 0.22)
    sizes = np.tile([W, H], (len(px), 1))
    K0 = np.stack([camera.intrinsics(W, H)] * len(px))
    opts = CaptureOptions(input="x.mp4", fov_auto=True)
    K, line = _self_calibrate(opts, [_slot(shape, px)], sizes, K0, stills=False)
    fov = math.degrees(2 * math.atan(0.5 * W / K[0, 0, 0]))
    assert abs(fov - 50.0) <= 5.0 and "self-calibrated" in line
    far = _hand_clip(50.0, 1.2, noise_px=1.0)
    K, line = _self_calibrate(opts, [_slot(*far)], sizes, K0, stills=False)
    assert np.array_equal(K, K0) and "default 69 deg kept" in line
    with pytest.raises(CaptureError, match="cannot be used with --fx"):
        _self_calibrate(dataclasses.replace(opts, fx=500.0), [_slot(shape, px)], sizes, K0, stills=False)
    with pytest.raises(CaptureError, match="needs a video"):
        _self_calibrate(opts, [_slot(shape, px)], sizes, K0, stills=True)


def test_cli_fov_auto_and_the_clip_key(tmp_path):
    from core.cli import build_parser

    a = build_parser().parse_args(["capture", "x.mp4", "--out", "o.npz", "--fov", "auto"])
    o = CaptureOptions.from_args(a)
    assert o.fov_auto and o.fov is None
    a = build_parser().parse_args(["capture", "x.mp4", "--out", "o.npz", "--fov", "55"])
    assert CaptureOptions.from_args(a).fov == 55.0 and not CaptureOptions.from_args(a).fov_auto
    with pytest.raises(SystemExit):
        build_parser().parse_args(["capture", "x.mp4", "--out", "o.npz", "--fov", "wide"])
    t, h = 2, 1
    c = ClipResult(source="x.mp4", fps=30.0, image_size=np.array([W, H]), frame_index=np.arange(t),
                   time=np.arange(t) / 30.0, K=np.stack([camera.intrinsics(W, H)] * t), K_guessed=True,
                   sides=("right",), model_names=("handcap-open",), model_paths=("",), valid=np.ones((h, t), bool),
                   detected=np.ones((h, t), bool), confidence=np.ones((h, t)), betas=np.zeros((h, 10)),
                   global_orient=np.zeros((h, t, 3)), hand_pose=np.zeros((h, t, 15, 3)), transl=np.zeros((h, t, 3)),
                   joints=np.zeros((h, t, 21, 3)), landmarks_px=np.zeros((h, t, 21, 2)),
                   landmarks_world=np.zeros((h, t, 21, 3)))
    assert load_clip(save_clip(c, tmp_path / "a.npz")).self_calibration == ""
    line = "--fov auto: self-calibrated: 50 deg across"
    assert load_clip(save_clip(dataclasses.replace(c, self_calibration=line), tmp_path / "b.npz")).self_calibration == line


def test_cli_refuses_fov_auto_with_fx_before_detecting(tmp_path, data_dir):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    video = data_dir / "video" / "single_hand.mp4"
    if not video.is_file():
        pytest.skip(f"shared data absent: {video}")
    r = subprocess.run([sys.executable, "-m", "core", "capture", str(video), "--fov", "auto", "--fx", "500",
                        "--out", str(tmp_path / "c.npz"), "--quiet"], capture_output=True, text=True, cwd=root,
                       env=dict(os.environ, PYTHONPATH=str(root)), timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: --fov auto estimates the focal length; it cannot be used with --fx or --intrinsics"], r.stderr
    assert not (tmp_path / "c.npz").exists()
