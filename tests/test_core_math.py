"""Metrics, camera and shape fitting against hand-computed values; shape contracts with B=1."""
import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from core.solve import camera

from core.eval import metrics
from core.rot import aa_to_rotmat

ROOT = Path(__file__).resolve().parent.parent


def test_core_never_imports_bpy():
    bad = []
    for f in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            bad += [f"{f.name}: {n}" for n in names if n.split(".")[0] in ("bpy", "mathutils", "bpy_extras")]
    assert not bad, bad


def test_mpjpe_hand_computed():
    gt = np.zeros((1, 21, 3))
    pred = gt.copy()
    pred[0, 5] = [0.003, 0.004, 0]  # one joint 5 mm off
    assert metrics.mpjpe(pred, gt)[0] == pytest.approx(5 / 21)
    shifted = gt + 0.01
    assert metrics.mpjpe(shifted, gt, root=0)[0] == pytest.approx(0.0)


def test_pa_mpjpe_removes_similarity():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(4, 21, 3)) * 0.05
    r = aa_to_rotmat(torch.tensor(rng.normal(size=(4, 3)))).numpy()
    pred = 1.3 * np.einsum("nij,nkj->nki", r, gt) + 0.2
    assert metrics.pa_mpjpe(pred, gt).max() < 1e-9
    # A reflection must not be used to "align".
    mirrored = gt * np.array([-1, 1, 1])
    assert metrics.pa_mpjpe(mirrored, gt).min() > 1.0


def test_bone_variation_and_jitter():
    rng = np.random.default_rng(1)
    j = np.repeat(rng.normal(size=(1, 21, 3)), 10, 0)
    assert metrics.bone_length_variation(j) == pytest.approx(0.0, abs=1e-9)
    # Constant velocity: zero acceleration; one 1 mm kick at frame 5 of joint 3.
    moving = j + np.arange(10)[:, None, None] * 0.001
    assert metrics.jitter(moving, root_relative=False) == pytest.approx(0.0, abs=1e-9)
    kick = j.copy()
    kick[5, 3, 0] += 0.001
    acc = metrics.jitter(kick)  # accelerations 1, -2, 1 mm at three frames, one joint of 21
    assert acc == pytest.approx((1 + 2 + 1) / (8 * 21))
    assert metrics.detection_rate(np.array([1, 0, 1, 1], bool)) == 0.75


def test_translation_recovers_known_position():
    g = torch.Generator().manual_seed(2)
    rel = torch.randn(5, 21, 3, generator=g, dtype=torch.float64) * 0.04
    t_true = torch.tensor([[0.1, -0.05, 0.6]], dtype=torch.float64).repeat(5, 1) + torch.rand(5, 3, generator=g, dtype=torch.float64) * 0.2
    K = torch.as_tensor(camera.intrinsics(1280, 720), dtype=torch.float64)[None].repeat(5, 1, 1)
    px = camera.project(rel + t_true[:, None], K)
    t = camera.solve_translation(rel, px, K)
    torch.testing.assert_close(t, t_true, atol=1e-9, rtol=0)
    # B = 1 contract.
    assert camera.solve_translation(rel[:1], px[:1], K[:1]).shape == (1, 3)


def test_intrinsics_defaults():
    k = camera.intrinsics(1280, 720)
    assert k[0, 2] == 639.5 and k[1, 2] == 359.5 and k[0, 0] == k[1, 1]
    assert np.degrees(2 * np.arctan(640 / k[0, 0])) == pytest.approx(camera.DEFAULT_FOV_DEG)
    portrait = camera.intrinsics(720, 1280)
    assert portrait[0, 0] == pytest.approx(k[0, 0])
    assert camera.intrinsics(100, 100, fx=50)[1, 1] == 50


def test_ray_rotation_centred_is_identity():
    K = torch.as_tensor(camera.intrinsics(640, 480), dtype=torch.float64)[None]
    px = torch.tensor([[[319.5, 239.5]]], dtype=torch.float64)
    torch.testing.assert_close(camera.ray_rotation(px, K), torch.eye(3, dtype=torch.float64)[None])
