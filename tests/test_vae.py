"""The joint-refinement VAE (core.net): shipped weights, API contract, equivariance, and what it does to
clean and noisy hands of a held-out synthetic set (seeds the training never used)."""
import dataclasses

import numpy as np
import pytest
import torch

from core.errors import CaptureError
from core.hand.load import load_model
from core.hand.mano import ManoLayer
from core.net import DEFAULT_WEIGHTS, corpus, load_refiner
from core.net.vae import VAEConfig, canonical_frame, make_config
from core.rot import aa_to_rotmat, similarity_align

HELD_OUT_SEED = 424242  # training uses seeds 0..3


@pytest.fixture(scope="module")
def refiner():
    return load_refiner()


@pytest.fixture(scope="module")
def layer():
    return ManoLayer(load_model("right"))


@pytest.fixture(scope="module")
def held_out(layer):
    return corpus.make_corpus(layer, 512, HELD_OUT_SEED)


def _random_rigid(n, gen):
    rot = aa_to_rotmat(torch.randn(n, 3, generator=gen))
    return rot, torch.randn(n, 3, generator=gen) * 0.3


def test_weights_file_is_plain_data():
    assert DEFAULT_WEIGHTS.stat().st_size < 2_000_000
    blob = torch.load(str(DEFAULT_WEIGHTS), map_location="cpu", weights_only=True)
    assert set(blob) == {"config", "state_dict", "meta"}
    assert all(torch.is_tensor(v) for v in blob["state_dict"].values())
    assert make_config(**blob["config"]) == VAEConfig(**blob["config"])
    for key in ("torch", "seed", "corpus", "hand_model"):
        assert key in blob["meta"]


def test_weights_match_the_corpus_definition():
    """The shipped weights were trained on today's corpus (taxonomy, `core.solve.limits` ranges, mixes, noise)."""
    meta = torch.load(str(DEFAULT_WEIGHTS), map_location="cpu", weights_only=True)["meta"]
    from core.net.captured import CAPTURED_POSES, load_captured
    from core.net.renders import DETECTOR_BIAS, load_bias

    fingerprint = corpus.corpus_fingerprint(load_captured(CAPTURED_POSES)[0], load_bias(DETECTOR_BIAS)[0])
    assert fingerprint in meta["corpus"], (
        "the corpus definition changed since the weights were trained; retrain with "
        "`python -m core.net.train --out core/net/weights/joint_vae.pt`")


@pytest.mark.parametrize("bsz", [1, 5])
def test_refine_shapes(refiner, held_out, bsz):
    j = held_out.joints[:bsz]
    out = refiner.refine(j)
    assert out.shape == (bsz, 21, 3) and out.dtype == torch.float32
    out_np = refiner.refine(j.numpy().astype(np.float64))  # numpy becomes float32
    assert out_np.dtype == torch.float32
    torch.testing.assert_close(out_np, out)
    assert refiner.refine(j.double()).dtype == torch.float64
    assert refiner.refine(j[:0]).shape == (0, 21, 3)


def test_refine_rejects_bad_input(refiner):
    with pytest.raises(CaptureError, match=r"\(B, 21, 3\)"):
        refiner.refine(torch.zeros(2, 20, 3))
    with pytest.raises(CaptureError, match="side"):
        refiner.refine(torch.zeros(1, 21, 3), side="both")


def test_output_in_input_frame(refiner, held_out):
    """Rotating, translating and scaling the input does the same to the output; refine is deterministic."""
    g = torch.Generator().manual_seed(1)
    j = held_out.joints[:16]
    rot, t = _random_rigid(16, g)
    s = 0.5 + torch.rand(16, 1, 1, generator=g)
    moved = s * (j @ rot.transpose(1, 2)) + t[:, None]
    want = s * (refiner.refine(j) @ rot.transpose(1, 2)) + t[:, None]
    got = refiner.refine(moved)
    assert (got - want).norm(dim=-1).max() < 1e-4  # metres
    torch.testing.assert_close(refiner.refine(moved), got, rtol=0, atol=0)


def test_left_hand_is_mirrored(refiner, held_out):
    m = torch.tensor([-1.0, 1.0, 1.0])
    j = held_out.joints[:8]
    torch.testing.assert_close(refiner.refine(j * m, side="left"), refiner.refine(j) * m, rtol=0, atol=1e-6)


def test_clean_hands_come_back_nearly_unchanged(refiner, held_out):
    g = torch.Generator().manual_seed(2)
    rot, t = _random_rigid(len(held_out.joints), g)
    j = held_out.joints @ rot.transpose(1, 2) + t[:, None]
    err_mm = (refiner.refine(j) - j).norm(dim=-1).mean(-1) * 1000
    assert err_mm.mean() < 4.0, f"mean {err_mm.mean():.2f} mm"
    assert torch.quantile(err_mm, 0.95) < 8.0, f"95th percentile {torch.quantile(err_mm, 0.95):.2f} mm"


def test_noisy_hands_get_closer_to_clean(refiner, held_out):
    """Error to the clean hand, similarity-fitted to the noisy one over the 20 non-wrist joints (the
    training target: a whole-hand pose or scale error is not the refiner's to fix)."""
    g = torch.Generator().manual_seed(3)
    noise = dataclasses.replace(corpus.NoiseConfig(), clean_prob=0.0)
    noisy = corpus.detector_noise(held_out.joints, g, noise)
    target = similarity_align(held_out.joints, noisy, torch.as_tensor(corpus.TARGET_WEIGHTS))
    raw_mm = (noisy - target).norm(dim=-1)[:, 1:].mean() * 1000
    ref_mm = (refiner.refine(noisy) - target).norm(dim=-1)[:, 1:].mean() * 1000
    assert ref_mm < 0.75 * raw_mm, f"raw {raw_mm:.2f} mm, refined {ref_mm:.2f} mm"


def test_config_unknown_key_and_bad_values():
    with pytest.raises(CaptureError, match="unknown VAE option 'hiden'"):
        make_config(hiden=128)
    with pytest.raises(CaptureError) as exc:
        make_config(latent=0, decoder_input="input")
    assert "latent" in str(exc.value) and "decoder_input" in str(exc.value)
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_config().latent = 3  # type: ignore[misc]


def test_missing_weights_name_the_file(tmp_path):
    with pytest.raises(CaptureError, match="nope.pt"):
        load_refiner(path=tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict": {}}, str(bad))
    with pytest.raises(CaptureError, match="bad.pt"):
        load_refiner(path=bad)


def test_canonical_frame_contract(refiner, held_out):
    j = held_out.joints[:3]
    f = canonical_frame(j, refiner.model.palm_template)
    assert f.rotation.shape == (3, 3, 3) and f.centre.shape == (3, 3) and f.size.shape == (3,)
    torch.testing.assert_close(f.from_canonical(f.to_canonical(j)), j, rtol=0, atol=1e-6)
    eye = torch.eye(3).expand(3, 3, 3)
    torch.testing.assert_close(f.rotation @ f.rotation.transpose(1, 2), eye, rtol=0, atol=1e-5)


def test_corpus_inside_bounds_and_reproducible(layer):
    lo, hi = corpus.angle_bounds()
    tax = corpus.taxonomy_array()
    assert tax.shape == (len(corpus.TAXONOMY), 5, 5)
    assert (tax >= lo).all() and (tax <= hi).all(), "a taxonomy pose lies outside core.solve.limits ranges"
    a = corpus.sample_angles(2000, torch.Generator().manual_seed(5)).numpy()
    assert (a >= lo - 1e-9).all() and (a <= hi + 1e-9).all()
    c1, c2 = corpus.make_corpus(layer, 8, 7), corpus.make_corpus(layer, 8, 7)
    assert c1.joints.shape == (8, 21, 3)
    torch.testing.assert_close(c1.joints, c2.joints, rtol=0, atol=0)


def test_corpus_poses_inside_core_limits(layer):
    """The corpus composes rotations in `core.solve.limits`' own frames: its joint angles are in range."""
    from core.solve import limits

    g = torch.Generator().manual_seed(6)
    ang = corpus.sample_angles(500, g)
    betas = torch.randn(500, layer.n_betas, generator=g)
    rot = corpus.angles_to_rotmats(layer, torch.deg2rad(ang).float(), betas)
    viol = limits.violations_deg(limits.joint_angles(layer, rot, betas))
    assert viol.max() < 1e-3, f"largest violation {viol.max():.4f} deg"


def test_noise_off_gives_clean(held_out):
    off = corpus.NoiseConfig(joint_sd_mm=(0.0, 0.0), depth_sd_mm=(0.0, 0.0), bone_scale_sd=0.0,
                             wrist_shift_mm=(0.0, 0.0), wrist_lateral_mm=0.0, garbage_prob=0.0, clean_prob=0.0)
    j = held_out.joints[:4]
    out = corpus.detector_noise(j, torch.Generator().manual_seed(0), off)
    torch.testing.assert_close(out, j, rtol=0, atol=1e-7)


def test_training_is_reproducible(tmp_path):
    """Same seed, same weights (a tiny run of the real training loop)."""
    from core.net.train import TrainConfig, train

    cfg = TrainConfig(n_train=512, n_val=128, steps=3, batch=64)
    blobs = []
    for k in range(2):
        out = tmp_path / f"w{k}.pt"
        train(cfg, {"hidden": 32}, out, log=lambda *a: None)
        blobs.append(torch.load(str(out), weights_only=True)["state_dict"])
    for key, value in blobs[0].items():
        torch.testing.assert_close(blobs[1][key], value, rtol=0, atol=0)


def test_corpus_angles_read_back_the_corpus(layer):
    """`captured.corpus_angles` (what captured poses become) reads a corpus pose's own angles back."""
    from core.net.captured import corpus_angles

    g = torch.Generator().manual_seed(8)
    ang = corpus.sample_angles(300, g)
    betas = torch.randn(300, layer.n_betas, generator=g)
    rot = corpus.angles_to_rotmats(layer, torch.deg2rad(ang).float(), betas)
    back = corpus_angles(layer, rot, betas)
    j0 = layer(betas, None, None, None, with_vertices=False, rotmats=rot).joints21
    rot2 = corpus.angles_to_rotmats(layer, torch.deg2rad(back).float(), betas)
    j1 = layer(betas, None, None, None, with_vertices=False, rotmats=rot2).joints21
    err = (j0 - j1).norm(dim=-1) * 1000
    assert err.mean() < 0.3 and err.max() < 3.0, (err.mean(), err.max())
    # The first joints' angles come back exactly (the second and third: up to the hinge's tilt).
    torch.testing.assert_close(back[..., :3].double(), ang[..., :3], rtol=0, atol=0.05)


def test_captured_poses_file(data_dir):
    """The shipped captured poses: corpus angles of the MIT-licensed single_hand.mp4, whose hash they record;
    inside the corpus bounds (but for the thumb's CMC twist cap, which sampling clamps)."""
    import hashlib

    from core.net.captured import CAPTURED_POSES, load_captured

    ang, desc = load_captured(CAPTURED_POSES)
    assert ang.ndim == 3 and ang.shape[1:] == (5, 5) and len(ang) >= 100
    with np.load(CAPTURED_POSES) as z:
        assert str(z["source"]) == "single_hand.mp4"
        sha = hashlib.sha256((data_dir / "video" / "single_hand.mp4").read_bytes()).hexdigest()
        assert str(z["source_sha256"]) == sha
    lo, hi = corpus.angle_bounds()
    outside = (ang < lo - 0.5) | (ang > hi + 0.5)
    outside[:, 0, 2] = False  # thumb CMC twist above THUMB_TWIST_MAX: clamped when sampled
    assert outside.mean() < 0.01
    a = corpus.sample_angles(2000, torch.Generator().manual_seed(5), captured=ang).numpy()
    assert (a >= lo - 1e-9).all() and (a <= hi + 1e-9).all()


def test_detector_bias_file_and_noise(held_out):
    """The shipped detector bias (renders of our own hand through MediaPipe): its shape and provenance, and
    `detector_noise` adds it, scaled per sample inside ``bias_scale``, to every sample but the clean ones."""
    from core.net.renders import DETECTOR_BIAS, load_bias

    bias, desc = load_bias(DETECTOR_BIAS)
    assert bias.shape == (21, 3) and (bias[0] == 0).all() and "renders" in desc
    with np.load(DETECTOR_BIAS) as z:
        assert 0.5 * int(z["n_rendered"]) <= int(z["n_detected"]) <= int(z["n_rendered"])
    assert 0.001 < np.linalg.norm(bias, axis=1).max() < 0.03  # metres: millimetres, not centimetres
    off = corpus.NoiseConfig(joint_sd_mm=(0.0, 0.0), depth_sd_mm=(0.0, 0.0), bone_scale_sd=0.0,
                             wrist_shift_mm=(0.0, 0.0), wrist_lateral_mm=0.0, garbage_prob=0.0, clean_prob=0.0)
    j = held_out.joints[:64].double()
    out = corpus.detector_noise(j, torch.Generator().manual_seed(0), off, bias)
    scale = ((out - j) * torch.as_tensor(bias)).sum((1, 2)) / float((bias**2).sum())
    torch.testing.assert_close(out - j, scale[:, None, None] * torch.as_tensor(bias), rtol=0, atol=1e-9)
    lo, hi = off.bias_scale
    assert (scale >= lo - 1e-9).all() and (scale <= hi + 1e-9).all() and scale.std() > 0.1
    clean = corpus.detector_noise(j, torch.Generator().manual_seed(0), dataclasses.replace(off, clean_prob=1.0), bias)
    torch.testing.assert_close(clean, j, rtol=0, atol=0)


def test_model_frame_residuals_recover_an_offset(layer):
    """A detector that sees the true hand under a similarity transform, with one joint (the thumb tip)
    moved by 7.5 mm in the hand's own frame: the residual is that offset at that joint, small elsewhere
    (and exactly 0 everywhere without the offset)."""
    from core.hand.model import MP_FROM_MANO21
    from core.net.renders import model_frame_residuals

    g = torch.Generator().manual_seed(3)
    n = 6
    rot = corpus.angles_to_rotmats(layer, torch.deg2rad(corpus.sample_angles(n, g)).float(), torch.zeros(n, 10))
    go = aa_to_rotmat(torch.randn(n, 3, generator=g)).double()
    model_j = layer(torch.zeros(n, 10), None, None, None, with_vertices=False, rotmats=rot).joints21.double()
    truth = model_j @ go.transpose(1, 2) + torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)
    offset = torch.zeros(21, 3, dtype=torch.float64)
    offset[16] = torch.tensor([0.004, -0.006, 0.002])  # 7.5 mm, model frame
    sim = aa_to_rotmat(torch.randn(n, 3, generator=g)).double()
    seen = 0.8 * (model_j + offset) @ (sim @ go).transpose(1, 2) + torch.tensor([0.01, -0.02, 0.03], dtype=torch.float64)
    exact = 0.8 * model_j @ (sim @ go).transpose(1, 2)
    res0 = model_frame_residuals(truth.numpy(), exact[:, MP_FROM_MANO21].numpy(), go.numpy())
    assert np.abs(res0).max() < 1e-7  # metres (the joints come from a float32 layer)
    res = model_frame_residuals(truth.numpy(), seen[:, MP_FROM_MANO21].numpy(), go.numpy())
    err = np.linalg.norm(res - offset.numpy(), axis=-1) * 1000  # mm
    others = [k for k in range(1, 21) if k != 16]
    # The similarity fit spreads a little of one joint's offset over the others (most near the thumb).
    assert err[:, others].max() < 2.0 and err[:, others].mean() < 1.0, err
    d = offset[16].numpy()
    along = res[:, 16] @ d / (d @ d)
    assert (along > 0.6).all() and (along < 1.05).all() and along.mean() > 0.8, along
