"""A clip of photos of different sizes (image_sizes differ per frame) imports, with one clear warning."""
from __future__ import annotations

import dataclasses

import bpy
import numpy as np

import synth
from helpers import ext_module


def test_mixed_size_photos_import_with_a_warning(scene, synth_models, tmp_path):
    from core.io.clip import load_clip, save_clip

    clip = synth.make_clip({"right": synth_models["right"]}, n_frames=3, source=str(tmp_path / "photos"),
                           image_size=(640, 480))
    sizes = np.array([[640, 480], [480, 640], [400, 300]])
    K = clip.K.copy()
    for k, (w, h) in enumerate(sizes):  # each frame's K from its own size
        K[k, :2, 2] = ((w - 1) / 2, (h - 1) / 2)
    path = save_clip(dataclasses.replace(clip, image_sizes=sizes, K=K), tmp_path / "photos.npz")
    assert load_clip(path).mixed_sizes

    assert bpy.ops.hand_capture.import_clip(filepath=str(path)) == {"FINISHED"}
    assert (scene.render.resolution_x, scene.render.resolution_y) == (640, 480)  # the first photo's size

    job = ext_module("blender_addon.job")
    out = job.drain(job.import_steps(str(path), scene, bpy.context.view_layer))
    warn = [w for w in out.warnings if "different sizes" in w]
    assert len(warn) == 1 and "640x480, 480x640, 400x300" in warn[0], out.warnings
    assert "first frame's size (640x480)" in warn[0] and "no image-sequence background" in warn[0]
    assert out.keyed == {"right": (3, 3)}
