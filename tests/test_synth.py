"""Synthetic training images (core.net.synth): labels, seeds, the detector's ROI, augmentation, resumable chunks."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.hand.model import MP_FROM_MANO21
from core.net.synth import augment
from core.net.synth import labels as L
from core.net.synth.generate import decode_mask, generate, is_complete
from core.net.synth.sample import SynthSettings, _Hands, chunk_seed, sample_chunk

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def hands():
    return _Hands()


@pytest.fixture(scope="module")
def chunk(hands):
    return sample_chunk(123, 48, SynthSettings(), hands=hands)


def test_2d_is_the_projection_of_3d_and_orders_agree(chunk):
    _, lab = chunk
    p = lab["present"]
    j3, j2, K = lab["joints3d"], lab["joints2d"], lab["K"]
    proj = (K[:, None, None] @ j3[..., None])[..., 0][p]
    err = np.linalg.norm(proj[..., :2] / proj[..., 2:] - j2[p], axis=-1)
    assert err.max() < 0.5
    assert (j3[..., 2][p] > 0.05).all()
    np.testing.assert_array_equal(lab["joints3d_mp"], np.where(p[..., None, None], j3[:, :, MP_FROM_MANO21], 0))
    np.testing.assert_array_equal(lab["joints2d_mp"], np.where(p[..., None, None], j2[:, :, MP_FROM_MANO21], 0))
    assert np.allclose(K[:, 0, 0], K[:, 1, 1]) and np.allclose(K[:, 2], [0, 0, 1])


def test_mano_parameters_reproduce_the_joints(chunk, hands):
    """The labelled right-model parameters (rotmats, betas, transl) give the labelled joints; a left hand is
    that right hand mirrored in camera x."""
    _, lab = chunk
    p = lab["present"]
    rot = torch.as_tensor(lab["rotmats"][p], dtype=torch.float32)
    betas = torch.as_tensor(lab["betas"][p], dtype=torch.float32)
    transl = torch.as_tensor(lab["transl"][p], dtype=torch.float32)
    with torch.no_grad():
        j = hands.layer(betas, None, None, transl, rotmats=rot, with_vertices=False).joints21.numpy()
    j[lab["mirrored"][p], :, 0] *= -1
    assert np.abs(j - lab["joints3d"][p]).max() < 1e-4


def test_joints_inside_the_crop_and_the_image(chunk):
    _, lab = chunk
    p = lab["present"]
    local = L.roi_local(lab["joints2d"], lab["roi"])
    half = lab["roi"][..., 2][..., None] / 2
    assert (np.abs(local).max(-1) <= half + 1e-6)[p].all()
    size = lab["image_size"][0]
    j0 = lab["joints2d"][:, 0]
    assert (j0 >= -0.5).all() and (j0 <= size - 0.5).all()  # the framed hand: every joint in the image
    # the ROI is MediaPipe's rule (scale 2.0 of the palm landmarks' box): grown only where joints stuck out
    rule = L.landmark_roi(lab["joints2d_mp"])
    same = ~lab["roi_grown"] & p
    np.testing.assert_allclose(lab["roi"][same], rule[same], atol=1e-9)
    assert lab["roi_grown"].mean() < 0.3


def test_landmark_roi_follows_the_hand():
    """Fingers up: angle 0, centre shifted towards the fingers; the same hand turned 90 degrees: the crop turns
    with it, same size."""
    j = np.zeros((21, 2))
    j[0] = (95, 200)
    for k, x in zip((5, 9, 13, 17), (80, 95, 110, 125)):
        j[k], j[k + 1], j[k + 2], j[k + 3] = (x, 150), (x, 125), (x, 110), (x, 100)
    j[1:5] = [(70, 185), (55, 170), (45, 160), (38, 150)]
    roi = L.landmark_roi(j)
    assert abs(roi[3]) < 1e-9
    pts = j[L.ROI_LANDMARKS]
    box = pts.max(0) - pts.min(0)
    assert roi[2] == pytest.approx(2.0 * box.max())
    assert roi[1] == pytest.approx((pts[:, 1].max() + pts[:, 1].min()) / 2 - 0.1 * box[1])
    c = np.array([95.0, 150.0])
    turned = (j - c) @ np.array([[0.0, -1.0], [1.0, 0.0]]).T + c  # 90 degrees clockwise on screen (y down)
    r2 = L.landmark_roi(turned)
    assert r2[3] == pytest.approx(np.pi / 2)
    assert r2[2] == pytest.approx(roi[2])
    np.testing.assert_allclose(L.roi_local(turned[None], r2[None])[0], L.roi_local(j[None], roi[None])[0], atol=1e-9)


def test_seeds_reproducible(hands, chunk):
    scene, lab = chunk
    s2, l2 = sample_chunk(123, 48, SynthSettings(), hands=hands)
    for k in lab:
        np.testing.assert_array_equal(lab[k], l2[k], err_msg=k)
    for k in scene:
        np.testing.assert_array_equal(scene[k], s2[k], err_msg=k)
    _, l3 = sample_chunk(124, 48, SynthSettings(), hands=hands)
    assert not np.allclose(l3["joints3d"], lab["joints3d"])
    assert len({chunk_seed(0, c) for c in range(100)}) == 100 and chunk_seed(0, 3) != chunk_seed(1, 3)


def test_what_varies(chunk):
    """Across a chunk: both sides, both views, all six skin types, two-hand images, occluders, focal lengths;
    poses inside the corpus's joint bounds."""
    from core.net.corpus import angle_bounds

    scene, lab = chunk
    p = lab["present"]
    assert set(lab["side"][p].tolist()) == {0, 1}
    assert 0 < lab["ego"].mean() < 1 and 0 < p[:, 1].mean() < 0.6 and lab["occluders"].any()
    assert set(lab["fitzpatrick"][p].tolist()) == set(range(1, 7))
    assert lab["focal_px"].max() > 1.5 * lab["focal_px"].min()
    lo, hi = angle_bounds()
    assert (lab["angles"] >= lo - 1e-6).all() and (lab["angles"] <= hi + 1e-6).all()
    assert len(set(scene["bg_kind"].tolist())) >= 5
    assert scene["nail"].max() == 1 and 0 < (scene["nail"] > 0.5).mean() < 0.05  # nails: a few % of vertices


def test_augmentation():
    s = SynthSettings(blur_prob=1.0, noise_prob=1.0)
    p = augment.draw(np.random.default_rng(0), 4, s)
    k = augment.motion_kernel(7.0, 0.3)
    assert k.sum() == pytest.approx(1.0) and k.shape == (7, 7)
    img = np.full((32, 32, 3), 120, np.uint8)
    img[:, 16:] = 200
    a, b = augment.apply(img, p, 0), augment.apply(img, p, 0)
    np.testing.assert_array_equal(a, b)
    assert 0 < np.abs(a.astype(int) - img).mean() < 20
    assert ((p["jpeg_quality"] >= 55) & (p["jpeg_quality"] <= 95)).all()


def test_mask_colours_decode():
    rgb = np.array([[[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]]], np.uint8)
    assert decode_mask(rgb).tolist() == [[0, 1, 2, 3, 4, 5]]


def test_chunks_render_and_resume(tmp_path):
    """A tiny chunk renders (headless Blender in this .venv); a re-run skips it untouched and makes only the
    missing chunk; a stopped run's partial folder is cleared; the chunk's labels are its seed's."""
    s = SynthSettings(size=32, samples=1, fmt="png")
    log = []
    generate(tmp_path, range(0, 1), 2, s, seed=7, log=log.append)
    d0 = tmp_path / "chunk_0000"
    assert is_complete(d0) and sorted(p.name for p in d0.iterdir()) == [
        "0000.png", "0000_mask.png", "0001.png", "0001_mask.png", "labels.npz", "meta.json"]
    stamp = {p.name: p.stat().st_mtime_ns for p in d0.iterdir()}
    stale = tmp_path / ".chunk_0001.partial-999999999"
    stale.mkdir()
    (stale / "0000.png").write_bytes(b"half")
    out = generate(tmp_path, range(0, 2), 2, s, seed=7, log=log.append)
    assert [(c, made) for c, _, made in out] == [(0, False), (1, True)]
    assert {p.name: p.stat().st_mtime_ns for p in d0.iterdir()} == stamp
    assert not stale.exists() and not list(tmp_path.glob(".chunk_*"))
    with np.load(tmp_path / "chunk_0001" / "labels.npz") as z:
        _, lab = sample_chunk(chunk_seed(7, 1), 2, s)
        np.testing.assert_array_equal(z["joints3d"], lab["joints3d"])
        assert z["visible"][:, 0].mean() > 0.5


def test_cli_refuses_bad_arguments(tmp_path):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    for args in (["--chunks", "4:2"], ["--chunks", "x"], ["--set", "nope=1"], ["--per-chunk", "0"]):
        r = subprocess.run([sys.executable, "-m", "core.net.synth", "--out", str(tmp_path), *args],
                           capture_output=True, text=True, cwd=ROOT, env=env)
        assert r.returncode == 2, args
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_roi_is_the_trackers_rect(chunk):
    """`labels.landmark_roi` is the rect the project's port of the tracker computes (core.detect.torch_hands)."""
    from core.detect.torch_hands.pipeline import landmarks_to_rect

    _, lab = chunk
    size = int(lab["image_size"][0])
    mine = L.landmark_roi(lab["joints2d_mp"][:, 0])
    for i in range(len(mine)):
        r = landmarks_to_rect(lab["joints2d_mp"][i, 0] / size, size, size)
        np.testing.assert_allclose([r[0] * size, r[1] * size, r[2] * size], mine[i, :3], atol=1e-2)
        assert abs(np.angle(np.exp(1j * (r[4] - mine[i, 3])))) < 1e-5
