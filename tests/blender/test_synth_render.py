"""The synthetic-image renderer (blender_addon/synth_render.py) in this Blender version: a tiny chunk made by
``python -m core.net.synth`` (run in the project's .venv, rendering with this interpreter's bpy) puts the
hand's pixels where its 2D joint labels are."""
from __future__ import annotations

import subprocess
import sys

import bpy
import numpy as np
import pytest

from helpers import ROOT, WORKER_PYTHON


def _png(path) -> np.ndarray:
    """(H, W, C) float pixels of a PNG, top row first, values as stored (byte / 255)."""
    img = bpy.data.images.load(str(path))
    try:
        img.colorspace_settings.name = "Non-Color"
        w, h = img.size
        px = np.empty(w * h * 4, np.float32)
        img.pixels.foreach_get(px)
        return px.reshape(h, w, 4)[::-1]
    finally:
        bpy.data.images.remove(img)


@pytest.fixture(scope="module")
def tiny_chunk(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    cmd = [WORKER_PYTHON, "-m", "core.net.synth", "--out", str(out), "--chunks", "0:1", "--per-chunk", "4",
           "--size", "64", "--samples", "1", "--format", "png", "--seed", "3", "--no-ycb",
           "--blender-python", sys.executable, "--set", "occluder_prob=0", "--set", "two_hand_prob=0",
           "--set", "background_prob=0", "--set", "noise_prob=0", "--set", "blur_prob=0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env={**__import__("os").environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    d = out / "chunk_0000"
    with np.load(d / "labels.npz") as z:
        labels = {k: z[k] for k in z.files}
    return d, labels


def test_synth_chunk_hand_pixels_under_joints(tiny_chunk):
    d, lab = tiny_chunk
    assert lab["present"][:, 0].all() and not lab["present"][:, 1].any()
    meta = (d / "meta.json").read_text()
    assert f'"blender": "{bpy.app.version_string}"' in meta
    for i in range(4):
        mask = np.rint(_png(d / f"{i:04d}_mask.png")[..., 0] * 255).astype(int)
        rgb = _png(d / f"{i:04d}.png")[..., :3]
        assert mask.shape == (64, 64) and rgb.shape == (64, 64, 3)
        side = int(lab["side"][i, 0])
        own = {1 + side, 3 + side}  # this hand's hand / forearm classes
        assert set(np.unique(mask).tolist()) <= {0} | own
        # every 2D joint lands on the hand (or its forearm, at the wrist) within a pixel
        px = np.rint(lab["joints2d"][i, 0]).astype(int)
        near = [bool(np.isin(mask[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2], list(own)).any()) for x, y in px]
        assert all(near), (i, np.flatnonzero(~np.array(near)))
        assert lab["visible"][i, 0].mean() >= 0.8
        # the hand's silhouette in the mask is where the hand is in the Cycles image: the background (the world
        # colour, no plane) is uniform, the hand's pixels differ from it
        bg = rgb[mask == 0]
        hand = rgb[mask == 1 + side]
        ref = np.median(bg, 0)
        assert np.abs(bg - ref).max(1).mean() < 0.02
        assert (np.abs(hand - ref).max(1) > 0.03).mean() > 0.9
