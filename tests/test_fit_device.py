"""The fit and the torch detector on the device --device names (issue 12 item 2), tested without a GPU: a second
device simulated on the CPU (`devsim`) runs the CPU's kernels, so the fit there must give the CPU's results bit for
bit, while every operator that mixes the device's tensors with CPU tensors, or asks numpy for a device tensor, fails
as it would on CUDA; the torch detector takes its GPU path there (frames uploaded, crops by grid_sample, the hands of
a frame in one batch). `tests/gpu/test_gpu.py` checks the real GPU against the CPU where one is lent. Also: a GPU
asked for where torch sees none is refused in one line before any work."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from devsim import DEVICE, MixedDevices, OnDevice, Simulated

ROOT = Path(__file__).resolve().parent.parent


def test_the_simulated_device_keeps_torch_s_rules():
    x = torch.arange(12.0).reshape(3, 4)
    with Simulated():
        d = x.to(DEVICE)
        assert isinstance(d, OnDevice) and d.device == DEVICE
        assert torch.equal((d * 2 + torch.tensor(1.0)).cpu(), x * 2 + 1)  # a 0-dim CPU tensor is a scalar
        assert torch.equal(d[:, [0, 2]].cpu(), x[:, [0, 2]])  # Python and CPU indices, as CUDA takes them
        assert torch.equal(d[torch.tensor([2, 0])].cpu(), x[[2, 0]])
        assert torch.equal(torch.linalg.inv(torch.eye(3, device=DEVICE) * 2).cpu(), torch.eye(3) / 2)
        assert float(d.sum()) == 66.0 and d[0].tolist() == [0.0, 1.0, 2.0, 3.0]
        with pytest.raises(MixedDevices):
            d + torch.ones(4)  # a CPU tensor in a device operator
        with pytest.raises(MixedDevices):
            d @ torch.ones(4, 2)
        with pytest.raises(TypeError):
            d.numpy()
        made = []
        t = threading.Thread(target=lambda: made.append(torch.ones(4, device=DEVICE)))  # modes are per thread
        t.start()
        t.join()
        with pytest.raises(RuntimeError, match="without data"):
            d + made[0]


def _fit_both(layer_cpu, fit_kwargs: dict):
    from core.hand.load import load_model
    from core.hand.mano import ManoLayer
    from core.solve.pose import fit_hand

    cpu = fit_hand(layer_cpu, **fit_kwargs)
    with Simulated():
        layer = ManoLayer(load_model(layer_cpu.side)).to(DEVICE)
        assert isinstance(layer.v_template, OnDevice)
        dev = fit_hand(layer, **fit_kwargs)
    return cpu, dev


@pytest.mark.parametrize("video", [True, False], ids=["video", "photos"])
def test_fit_hand_on_a_second_device_is_the_cpu_s(video):
    """A synthetic clip (the model's own hand) through `fit_hand` with the hand model on the device: video (gap
    filling, smoothing, the final image alignment) or photos (per frame); with a frame missing, vertices, a given
    size and the landmark offsets (the shipped convention). The same numbers as on the CPU, bit for bit."""
    from core.hand.load import load_model
    from core.hand.mano import ManoLayer
    from core.net.landmarks import LANDMARK_OFFSETS, load_offsets
    from core.solve.fit import FitConfig, with_landmark_offsets
    from test_fit import _synthetic_clip

    layer = ManoLayer(load_model("right"))
    n = 10
    px, z, world, K, width, _ = _synthetic_clip(layer, n, seed=61)
    det = np.ones(n, bool)
    det[4] = False
    config = with_landmark_offsets(FitConfig(), load_offsets(LANDMARK_OFFSETS), shape=True, refine=False)
    from core.solve.shape import PAIRS

    lengths = np.full(len(PAIRS), 0.03) if video else None
    cpu, dev = _fit_both(layer, dict(kp_px=px, world=world, detected=det, K=K, landmarks_z=z, image_width=width,
                                     with_vertices=True, config=config, fps=30.0 if video else None,
                                     lengths=lengths))
    for f in dataclasses.fields(cpu):
        a, b = getattr(cpu, f.name), getattr(dev, f.name)
        assert type(a) is type(b) and (a is None or np.array_equal(a, b)), f.name


def test_capture_fits_on_the_device_it_is_given(data_dir, monkeypatch):
    """The capture with its fit on the device (`core.capture.fit_device`): two hands of one person (the VAE, one
    shared size, IK, refinement, alignment, limits, penetration fix, smoothing): the CPU's clip bit for bit, and the
    clip says where the fit ran."""
    from core import capture as C

    video = str(data_dir / "video" / "two_hands.mp4")
    opts = C.CaptureOptions(input=video, end=24, workers=1, device="cpu")
    cpu, _ = C.capture(opts)
    monkeypatch.setattr(C, "fit_device", lambda name: DEVICE)
    monkeypatch.setattr(C, "fit_threads", lambda *a, **k: 1)  # the simulation's modes hold on this thread only
    with Simulated():
        dev, _ = C.capture(opts)
    assert (cpu.fit_device, dev.fit_device) == ("cpu", DEVICE.type)
    assert cpu.sides == dev.sides == ("right", "left") and cpu.shared_size and cpu.valid.all(1).any()
    for f in ("valid", "betas", "global_orient", "hand_pose", "transl", "joints", "landmarks_px"):
        assert np.array_equal(getattr(cpu, f), getattr(dev, f)), f


def test_torch_detector_s_gpu_path_on_a_second_device(data_dir):
    """`TorchHands` on the simulated device runs its GPU path (grid_sample crops of the uploaded frame, both hands in
    one batch) with no operator mixing devices, and finds what its CPU path finds (OpenCV crops, one at a time):
    the same hands and sides on every frame, landmarks within the GPU test's bound (0.5 px median)."""
    from core.detect import make_config
    from core.detect.base import nearest_hands
    from core.detect.torch_hands.detector import TorchHands
    from core.io.video import open_video

    frames = [f for _, (_, f) in zip(range(6), open_video(data_dir / "video" / "two_hands.mp4"))]
    cfg = make_config(name="torch", static=False, max_hands=2)
    with TorchHands(cfg, palm_every=1) as det:
        cpu = [det.detect(f) for f in frames]
    with Simulated():
        with TorchHands(cfg, device=DEVICE, palm_every=1) as det:
            assert det.grid_sample and det.batch_hands and isinstance(next(det.landmark.parameters()), OnDevice)
            dev = [det.detect(f) for f in frames]
    d = []
    for a, b in zip(cpu, dev):
        assert len(a) == len(b)
        for ha, hb, e in nearest_hands(a, b):
            assert ha.side == hb.side
            d.append(e)
    assert len(d) >= 10 and np.median(np.concatenate(d)) < 0.5


def test_a_gpu_torch_cannot_see_is_refused_in_one_line(data_dir, tmp_path):
    """`--device cuda` where torch sees no GPU (here: a CPU-only build), or `cuda:N` past the GPUs it sees: one
    `error:` line, exit 2 (the CLI's user errors), before any frame is read (it used to fail inside the detector
    with an assertion)."""
    ask = "cuda:99" if torch.cuda.is_available() else "cuda"
    r = subprocess.run([sys.executable, "-m", "core", "capture", str(data_dir / "video" / "single_hand.mp4"),
                        "--device", ask, "--out", str(tmp_path / "c.npz")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: --device "), r.stderr[-2000:]
    assert ("torch sees no GPU" in lines[0]) if ask == "cuda" else ("torch sees" in lines[0])
    assert not (tmp_path / "c.npz").exists()


def test_the_gpu_capture_path_on_a_second_device(data_dir, monkeypatch):
    """The whole capture as it runs on a GPU (`--detector torch --device cuda`: the torch detector's GPU path, frames
    decoded ahead on a thread, the fit on the device), with "cuda" standing for the simulated device: it runs with no
    operator mixing devices, the clip says where the fit ran, and it finds what the CPU capture finds (the same
    frames and sides; landmarks within 0.5 px median, the crops' difference)."""
    import core.detect as D
    import core.detect.torch_hands.detector as TD
    from core import capture as C

    video = str(data_dir / "video" / "two_hands.mp4")
    common = dict(input=video, end=12, workers=1, detector="torch")
    cpu, _ = C.capture(C.CaptureOptions(**common, device="cpu"))
    real = D.torch_device
    as_sim = lambda name: DEVICE if str(name).startswith("cuda") else real(name)  # noqa: E731
    for mod in (D, TD):
        monkeypatch.setattr(mod, "torch_device", as_sim)
    monkeypatch.setattr(D, "check_device", lambda name: None)
    monkeypatch.setattr(D, "on_a_gpu", lambda name: str(name).startswith("cuda"))
    monkeypatch.setattr(C, "fit_threads", lambda *a, **k: 1)
    import core.io.video as V

    depths, read_ahead = [], V.read_ahead
    monkeypatch.setattr(V, "read_ahead", lambda frames, depth=V.READ_AHEAD: (depths.append(depth),
                                                                              read_ahead(frames, depth))[1])
    with Simulated():
        dev, _ = C.capture(C.CaptureOptions(**common, device="cuda"))
    assert depths == [V.READ_AHEAD]  # decoded ahead, as on a GPU
    assert (cpu.fit_device, dev.fit_device, dev.detector) == ("cpu", DEVICE.type, "torch")
    assert cpu.sides == dev.sides and np.array_equal(cpu.detected, dev.detected) and cpu.detected.sum() >= 20
    d = np.linalg.norm(cpu.landmarks_px - dev.landmarks_px, axis=-1)[cpu.detected]
    assert np.median(d) < 0.5, np.median(d)
