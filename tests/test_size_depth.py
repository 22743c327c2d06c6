"""Size and depth (issue 15 item 2): one size for a person's two hands (`core.solve.pose.size_evidence`,
`shared_lengths`, `fit_hand(lengths=...)`, `core.capture.person_pair`), recorded in the clip (`shared_size`)
and switched off with ``--separate-sizes``. Figures on renders and real video: BENCHMARKS.md."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.capture import person_pair
from core.eval import reproj
from core.hand.load import load_model
from core.hand.mano import ManoLayer
from core.hand.model import MP_FROM_MANO21
from core.io.clip import load_clip, save_clip
from core.solve import limits
from core.solve.camera import ray_rotation
from core.solve.pose import fit_hand, shared_lengths, size_evidence

ROOT = Path(__file__).resolve().parent.parent
K_TEST = np.array([[600.0, 0.0, 319.5], [0.0, 600.0, 239.5], [0.0, 0.0, 1.0]])
WIDTH = 640
FPS = 30.0


def _detections(layer, n: int, at, size_bias: float, seed: int):
    """MediaPipe-like detections of a hand of the model's own size (betas 0) flexing its fingers at ``at``
    (metres, camera frame): exact 2D plus 1 px noise, exact relative depth, and metric 3D landmarks whose
    size is off by ``size_bias`` (the detector's size error; 3 mm noise per joint). Returns (px, z, world, K,
    true joints), MediaPipe order."""
    g = torch.Generator().manual_seed(seed)
    betas = torch.zeros(n, layer.n_betas)
    ang = torch.zeros(n, 15, 3)
    t = torch.arange(n, dtype=torch.float32)
    for j in range(12):  # index .. ring, all three joints: a slow flex
        ang[:, j, 2] = 0.5 * (1 - torch.cos(2 * torch.pi * t / n))
    rot = torch.cat([torch.eye(3).expand(n, 1, 3, 3), limits.angles_to_rotmats(layer, ang, betas)], 1)
    rot = limits.project_to_limits(layer, rot, betas)
    out = layer(betas, None, None, torch.zeros(n, 3), with_vertices=False, rotmats=rot).joints21[:, MP_FROM_MANO21]
    j = out - out[:, 9:10] + torch.as_tensor(at, dtype=torch.float32)  # middle MCP at ``at``
    K = torch.as_tensor(K_TEST, dtype=torch.float32).expand(n, 3, 3)
    z = j[..., 2]
    px = j[..., :2] / z[..., None] * 600.0 + K[:, None, :2, 2]
    z_px = 600.0 * (z / z[:, :1] - 1)
    world = (j - j.mean(1, keepdim=True)) @ ray_rotation(px, K) * (1 + size_bias)
    world = world + 0.003 * torch.randn(world.shape, generator=g)
    px = px + torch.randn(px.shape, generator=g)
    return px.numpy(), (z_px / WIDTH).numpy(), world.numpy(), K.numpy().astype(np.float64), j.numpy()


def test_shared_size_of_two_hands_beats_each_alone():
    """A right hand at 35 cm and a left one at 80 cm, both of the model's size; the detector sizes the near
    (large in the image) hand 4 % small and the far one 12 % small (the trend measured on the two_depths
    render). Pooled with the weights (the far hand is ~5x less trusted), the size error of both together
    drops, the far hand's the most, both get one shape, and the far hand's depth error shrinks with it
    (measured: alone -3.7 % / -10.8 %, depth error 12 / 93 mm; shared -4.8 % / -4.8 %, 16 / 42 mm)."""
    n = 20
    layers = {s: ManoLayer(load_model(s)) for s in ("right", "left")}
    data = {"right": _detections(layers["right"], n, (-0.08, 0.0, 0.35), -0.04, seed=1),
            "left": _detections(layers["left"], n, (0.12, 0.0, 0.80), -0.12, seed=2)}
    det = np.ones(n, bool)
    ev = {s: size_evidence(layers[s], px, world, det, K, landmarks_z=z, image_width=WIDTH, confidence=np.full(n, 0.9))
          for s, (px, z, world, K, _) in data.items()}
    assert ev["right"].weight > 3 * ev["left"].weight  # the near hand is larger in the image
    shared = shared_lengths(list(ev.values()))
    err, depth, betas = {}, {}, {}
    for mode, lengths in (("alone", None), ("shared", shared)):
        for s, (px, z, world, K, truth) in data.items():
            f = fit_hand(layers[s], px, world, det, K, landmarks_z=z, image_width=WIDTH, fps=FPS, lengths=lengths)
            assert f.valid.all()
            err[mode, s] = float(np.median(reproj.hand_size_error(f.joints, truth)))
            depth[mode, s] = float(np.median(np.abs(f.joints[:, 9, 2] - truth[:, 9, 2])))
            betas[mode, s] = f.betas
    # alone, each hand carries its detector's size error; shared, one size between them
    assert err["alone", "right"] < -0.02 and err["alone", "left"] < -0.09, err
    mean_alone = (abs(err["alone", "right"]) + abs(err["alone", "left"])) / 2
    mean_shared = (abs(err["shared", "right"]) + abs(err["shared", "left"])) / 2
    assert mean_shared < 0.8 * mean_alone, err
    assert abs(err["shared", "left"]) < 0.6 * abs(err["alone", "left"]), err
    assert abs(err["shared", "right"]) < abs(err["alone", "right"]) + 0.025, err  # the trusted hand moves little
    np.testing.assert_allclose(betas["shared", "right"], betas["shared", "left"], atol=1e-5)
    assert depth["shared", "left"] < 0.7 * depth["alone", "left"], depth


def test_person_pair():
    """Only one right and one left hand seen together on most frames are taken for one person's hands."""
    t = np.arange(40)
    right, left = t < 40, t >= 10
    assert person_pair([right, left], ("right", "left")) == (0, 1)
    assert person_pair([left, right], ("left", "right")) == (1, 0)
    assert person_pair([right, left], ("right", "right")) is None  # two people's right hands
    assert person_pair([right], ("right",)) is None
    assert person_pair([t < 20, t >= 18], ("right", "left")) is None  # seen together on 2 frames only
    assert person_pair([t < 29, t >= 20], ("right", "left")) is None  # together on 9 of the left's 20 frames
    assert person_pair([t < 30, t >= 20], ("right", "left")) == (0, 1)  # on 10 of 20: half is enough


def test_shared_size_key_round_trips(tmp_path):
    from core.io.clip import ClipResult

    t, h = 3, 2
    c = ClipResult(source="x.mp4", fps=30.0, image_size=np.array([64, 48]), frame_index=np.arange(t),
                   time=np.arange(t) / 30.0, K=np.repeat(K_TEST[None], t, 0), K_guessed=True, sides=("right", "left"),
                   model_names=("handcap-open",) * h, model_paths=("",) * h, valid=np.ones((h, t), bool),
                   detected=np.ones((h, t), bool), confidence=np.ones((h, t)), betas=np.zeros((h, 10)),
                   global_orient=np.zeros((h, t, 3)), hand_pose=np.zeros((h, t, 15, 3)), transl=np.zeros((h, t, 3)),
                   joints=np.zeros((h, t, 21, 3)), landmarks_px=np.zeros((h, t, 21, 2)),
                   landmarks_world=np.zeros((h, t, 21, 3)))
    import dataclasses

    assert load_clip(save_clip(c, tmp_path / "a.npz")).shared_size is False  # absent: each hand alone
    assert load_clip(save_clip(dataclasses.replace(c, shared_size=True), tmp_path / "b.npz")).shared_size is True
    with np.load(tmp_path / "b.npz") as z:
        bad = dict(z)
    bad["shared_size"] = np.array([1.0, 2.0])
    np.savez(tmp_path / "bad.npz", **bad)
    from core.errors import CaptureError

    with pytest.raises(CaptureError, match="shared_size must be one bool"):
        load_clip(tmp_path / "bad.npz")


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def test_cli_shares_the_size_unless_told_apart(tmp_path, data_dir):
    """two_hands.mp4, frames 0-9 (one person's two hands): by default one shape for both, recorded in the
    clip; --separate-sizes sizes each hand alone (the ablation, and two people's hands)."""
    video = data_dir / "video" / "two_hands.mp4"
    clips = {}
    for name, flags in (("shared", ()), ("separate", ("--separate-sizes",))):
        r = _cli("capture", video, "--end", 10, "--quiet", *flags, "--out", tmp_path / f"{name}.npz")
        assert r.returncode == 0, r.stderr
        clips[name] = load_clip(tmp_path / f"{name}.npz")
    a, b = clips["shared"], clips["separate"]
    assert a.sides == b.sides == ("right", "left")
    assert a.shared_size and not b.shared_size
    np.testing.assert_allclose(a.betas[0], a.betas[1], atol=1e-5)
    assert np.abs(b.betas[0] - b.betas[1]).max() > 1e-3
    np.testing.assert_array_equal(a.landmarks_px, b.landmarks_px)  # the same detections; only the size differs
