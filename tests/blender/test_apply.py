"""The headless Blender step (``python -m blender_addon.apply CLIP --blend OUT.blend [--fbx OUT.fbx]``, the farm's
keying task): its .blend holds what the add-on's Import Clip File builds from the same clip: the same objects,
bones (rest), keys (every channel's keyframes), camera and scene settings.

It runs from the checkout in this Blender-like interpreter, with the open hand model the installed extension ships.
"""
from __future__ import annotations

import os
import subprocess
import sys

import bpy
import numpy as np

from helpers import ROOT, ext_module, write_clip


def _channels(action) -> dict:
    from bpy_extras import anim_utils

    bag = anim_utils.action_get_channelbag_for_slot(action, action.slots[0])
    out = {}
    for fc in bag.fcurves:
        co = np.empty(len(fc.keyframe_points) * 2, np.float32)
        fc.keyframe_points.foreach_get("co", co)
        out[(fc.data_path, fc.array_index)] = co
    return out


def _describe() -> dict:
    """Everything the import makes, by name: object types and parents, armature rest bones, mesh sizes, actions'
    keys, the camera (intrinsics, placement, background) and the scene's fps, range, resolution and camera."""
    scene = bpy.context.scene
    tagged = [o for o in bpy.data.objects if o.get("hand_capture_clip")]
    d = {"objects": {o.name: (o.type, o.parent.name if o.parent else None,
                              tuple(c.name for c in o.users_collection)) for o in tagged}}
    for o in tagged:
        if o.type == "ARMATURE":
            d[o.name] = {b.name: (np.array(b.head_local), np.array(b.tail_local), np.array(b.matrix_local),
                                  b.parent.name if b.parent else None, b.use_deform) for b in o.data.bones}
            d[o.name + ":keys"] = _channels(o.animation_data.action)
            d[o.name + ":action"] = (o.animation_data.action.name, o.animation_data.action_slot.identifier)
        elif o.type == "MESH":
            d[o.name] = (len(o.data.vertices), len(o.data.polygons), tuple(g.name for g in o.vertex_groups),
                         tuple(m.type for m in o.modifiers))
        elif o.type == "CAMERA":
            c = o.data
            d[o.name] = (c.lens, c.sensor_width, c.sensor_fit, c.shift_x, c.shift_y, np.array(o.matrix_world),
                         [(bg.source, bpy.path.abspath(bg.clip.filepath) if bg.clip else None)
                          for bg in c.background_images])
    d["scene"] = (scene.render.fps, scene.render.fps_base, scene.frame_start, scene.frame_end,
                  scene.render.resolution_x, scene.render.resolution_y, scene.camera.name if scene.camera else None)
    return d


def _assert_same(a, b, where="") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), (where, sorted(a), sorted(b))
        for k in a:
            _assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{k}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=where)
    elif isinstance(a, float):
        assert abs(a - b) <= 1e-6, (where, a, b)
    else:
        assert a == b, (where, a, b)


def _apply(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, HANDCAP_MODEL_DIR=str(ext_module("core.hand.load").open_model_dir()))
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-m", "blender_addon.apply", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_apply_writes_what_the_import_builds(scene, open_models, tmp_path):
    """Two hands (the left one missing on two frames), a source video that is not there: the .blend equals the
    add-on's import of the same clip; the FBX files (one per hand) are written too."""
    path, _clip = write_clip(tmp_path, open_models, n_frames=10, invalid={"left": [3, 4]})
    assert bpy.ops.hand_capture.import_clip(filepath=str(path)) == {"FINISHED"}
    imported = _describe()
    assert any(v[0] == "ARMATURE" for v in imported["objects"].values()) and imported["scene"][-1]

    out = tmp_path / "farm"
    proc = _apply(path, "--blend", out / "shot.blend", "--fbx", out / "shot.fbx")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "shot.blend").is_file() and not list(out.glob("*.part*"))
    assert sorted(p.name for p in out.glob("*.fbx")) == ["shot_left.fbx", "shot_right.fbx"]
    assert "keyed on 8 of 10 frames" in proc.stdout and "warning: 2 of 10 frames had no left hand" in proc.stderr

    bpy.ops.wm.open_mainfile(filepath=str(out / "shot.blend"))
    _assert_same(imported, _describe())


def test_apply_errors_are_one_line(tmp_path):
    """A missing or broken clip: exit 2, one ``error:`` line, no .blend."""
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a clip")
    for clip in (tmp_path / "missing.npz", bad):
        proc = _apply(clip, "--blend", tmp_path / "x.blend")
        assert proc.returncode == 2, proc.stderr
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert not (tmp_path / "x.blend").exists()
