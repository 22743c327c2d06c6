"""Identity in Blender (issue 15 item 3): two hand slots of one side (two people's right hands) become two
distinct rigs, ``<clip>_hand_R`` and ``<clip>_hand_R2``, each with its own mesh and action, and a re-import
replaces them by name (no ``.001`` copies); the Hands choice "Right Hand" / "Left Hand" asks the worker for
that one hand (``--hands 1 --side ...``)."""
from __future__ import annotations

import dataclasses

import bpy
import numpy as np

import synth
from helpers import ext_module, write_clip

_PER_HAND = ("valid", "detected", "confidence", "betas", "global_orient", "hand_pose", "transl", "joints",
             "landmarks_px", "landmarks_world", "vertices")


def _clip(models, source: str):
    """Right, right, left: three slots, each a different synthetic motion."""
    parts = [synth.make_clip({side: models[side]}, n_frames=8, source=source, seed=seed)
             for side, seed in (("right", 1), ("right", 2), ("left", 3))]
    first = parts[0]
    merged = {k: np.concatenate([getattr(p, k) for p in parts]) for k in _PER_HAND}
    return dataclasses.replace(first, sides=sum((p.sides for p in parts), ()),
                               model_names=sum((p.model_names for p in parts), ()),
                               model_paths=sum((p.model_paths for p in parts), ()), **merged)


def test_two_right_hands_get_two_rigs(scene, synth_models, tmp_path):
    from core.io.clip import save_clip

    clip = _clip(synth_models, str(tmp_path / "people.mp4"))
    assert clip.sides == ("right", "right", "left")
    path = save_clip(clip, tmp_path / "people.npz")
    for _ in range(2):  # the second import replaces the first by name
        assert bpy.ops.hand_capture.import_clip(filepath=str(path)) == {"FINISHED"}
        names = sorted(o.name for o in bpy.data.collections["people"].objects)
        assert names == ["people_camera", "people_hand_L", "people_hand_L_mesh", "people_hand_R", "people_hand_R2",
                         "people_hand_R2_mesh", "people_hand_R_mesh"], names
    r1, r2 = bpy.data.objects["people_hand_R"], bpy.data.objects["people_hand_R2"]
    assert r1.animation_data.action.name == "people_hand_R" and r2.animation_data.action.name == "people_hand_R2"
    assert r1.animation_data.action != r2.animation_data.action
    # both right rigs carry right-hand bones, and each follows its own slot's motion
    assert all(b.name.startswith("hand_R.") for b in r2.data.bones)
    assert bpy.data.objects["people_hand_R2_mesh"].modifiers["Armature"].object == r2
    rig = ext_module("blender_addon.rig")
    assert rig.rig_name("right") == "hand_R" and rig.rig_name("right", 2) == "hand_R2"
    bpy.context.scene.frame_set(int(clip.frame_index[4]) + 1)
    dg = bpy.context.evaluated_depsgraph_get()
    p1 = r1.evaluated_get(dg).pose.bones["hand_R.wrist"].matrix.translation
    p2 = r2.evaluated_get(dg).pose.bones["hand_R.wrist"].matrix.translation
    assert (p1 - p2).length > 1e-3  # two different hands, not one drawn twice


def test_job_reports_both_right_hands(scene, synth_models, tmp_path):
    from core.io.clip import save_clip

    job = ext_module("blender_addon.job")
    path = save_clip(_clip(synth_models, str(tmp_path / "people.mp4")), tmp_path / "people.npz")
    out = job.drain(job.import_steps(str(path), scene, bpy.context.view_layer))
    assert out.keyed == {"right": (8, 8), "right2": (8, 8), "left": (8, 8)}
    assert out.applied.armatures == {"right": "people_hand_R", "right2": "people_hand_R2", "left": "people_hand_L"}
    assert "people_hand_R keyed on 8 of 8 frames, people_hand_R2 keyed on 8 of 8 frames" in out.info


def test_hands_choice_left_hand_passes_side(scene, fake_runtime, synth_models, tmp_path, tiny_video):
    import json

    clip_path, _ = write_clip(tmp_path, {"left": synth_models["left"]}, source=tiny_video, n_frames=4)
    argv_file = fake_runtime("ok", clip_path)
    assert bpy.ops.hand_capture.capture_video(filepath=str(tiny_video), hands="LEFT") == {"FINISHED"}
    argv = json.loads(argv_file.read_text())
    assert argv[argv.index("--hands") + 1] == "1" and argv[argv.index("--side") + 1] == "left"
    assert "tiny_hand_L" in bpy.data.objects
    bpy.ops.hand_capture.capture_video(filepath=str(tiny_video), hands="2")
    assert "--side" not in json.loads(argv_file.read_text())
    settings = ext_module("blender_addon.job").CaptureSettings
    assert settings(video=str(tiny_video), hands=2, side="left").problems() == [
        "only the left hand was asked for, with 2 hands: choose one hand"]
    assert settings(video=str(tiny_video), hands=1, side="up").problems() == ["side must be right or left; got 'up'"]
