"""A clip file becomes the rig: bones, skin, keys, camera; the mesh matches core.hand.mano to < 0.5 mm.

Clips here are synthetic (tests/blender/synth.py: smooth random motion, vertices from its numpy MANO forward),
imported with ``bpy.ops.hand_capture.import_clip``, on the synthetic test hand and the open hand model.
"""
from __future__ import annotations

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from core.hand.model import MANO21_JOINTS, MANO_JOINTS
from helpers import ext_module, make_user_content, scene_snapshot, write_clip

MM = 1e-3


def _fcurves(action):
    slot = action.slots[0]
    from bpy_extras import anim_utils

    return list(anim_utils.action_get_channelbag_for_slot(action, slot).fcurves)


def _key_frames(fc) -> np.ndarray:
    co = np.empty(len(fc.keyframe_points) * 2, np.float32)
    fc.keyframe_points.foreach_get("co", co)
    return co[0::2]


def _evaluated(obj) -> np.ndarray:
    return ext_module("blender_addon.skin").evaluated_vertices(obj, bpy.context.evaluated_depsgraph_get())


def _mesh_error_mm(clip, mesh_objs, frames, units=1.0) -> float:
    convert = ext_module("blender_addon.convert")
    worst = 0.0
    for t in range(clip.n_frames):
        bpy.context.scene.frame_set(int(frames[t]))
        for h, side in enumerate(clip.sides):
            if not clip.valid[h, t]:
                continue
            got = _evaluated(mesh_objs[side])
            want = convert.points_cam_to_world(clip.vertices[h, t], units)
            worst = max(worst, float(np.abs(got - want).max()) / units / MM)
    return worst


def test_import_builds_keyed_skinned_rig(scene, models, tmp_path, tiny_video):
    path, clip = write_clip(tmp_path, models, source=tiny_video, n_frames=10, invalid={"right": [3, 4]})
    bpy.ops.hand_capture.import_clip(filepath=str(path))

    coll = bpy.data.collections["tiny"]
    assert coll.name in {c.name for c in scene.collection.children}
    meshes = {}
    for side, s in (("right", "R"), ("left", "L")):
        arm = bpy.data.objects[f"tiny_hand_{s}"]
        assert arm.type == "ARMATURE" and arm.name in coll.objects
        names = [b.name for b in arm.data.bones]
        assert sorted(names) == sorted(f"hand_{s}.{j}" for j in MANO21_JOINTS)
        deform = {b.name for b in arm.data.bones if b.use_deform}
        assert deform == {f"hand_{s}.{j}" for j in MANO_JOINTS}
        assert arm.data.bones[f"hand_{s}.index2"].parent.name == f"hand_{s}.index1"
        assert arm.data.bones[f"hand_{s}.index4"].parent.name == f"hand_{s}.index3"
        mesh = bpy.data.objects[f"tiny_hand_{s}_mesh"]
        model = models[side][0]
        assert len(mesh.data.vertices) == model.n_verts and len(mesh.data.polygons) == model.faces.shape[0]
        assert {g.name for g in mesh.vertex_groups} == deform
        mod = mesh.modifiers["Armature"]
        assert mod.type == "ARMATURE" and mod.object == arm and mesh.parent == arm
        # One action with one slot, assigned; 3 location + 16 x 4 quaternion curves.
        ad = arm.animation_data
        assert ad.action.name == f"tiny_hand_{s}" and ad.action_slot == ad.action.slots[0]
        fcs = _fcurves(ad.action)
        assert len(fcs) == 3 + 16 * 4
        h = clip.sides.index(side)
        want = clip.frame_index[clip.valid[h]] + 1.0
        for fc in fcs:
            np.testing.assert_array_equal(_key_frames(fc), want)
        # Quaternions are sign-continuous.
        for b in MANO_JOINTS:
            q = np.stack([_key_values(fcs, f'pose.bones["hand_{s}.{b}"].rotation_quaternion', i) for i in range(4)], 1)
            assert (np.sum(q[1:] * q[:-1], 1) >= 0).all()
        meshes[side] = mesh

    # Evaluated mesh == core.hand.mano.forward's vertices on every keyed frame.
    err = _mesh_error_mm(clip, meshes, clip.frame_index + 1)
    print(f"mesh vs core.hand.mano.forward: {err:.5f} mm at most")
    assert err < 0.5

    # Camera: intrinsics, video background, scene settings.
    cam = scene.camera
    assert cam.name == "tiny_camera" and cam.name in coll.objects
    assert cam.data.show_background_images
    bg = cam.data.background_images[0]
    assert bg.source == "MOVIE_CLIP" and bpy.path.abspath(bg.clip.filepath) == str(tiny_video)
    assert (scene.render.resolution_x, scene.render.resolution_y) == (640, 480)
    assert (scene.frame_start, scene.frame_end) == (1, 10)
    assert scene.render.fps == 30 and scene.render.fps_base == pytest.approx(1.0)


def _key_values(fcs, path, index):
    fc = next(f for f in fcs if f.data_path == path and f.array_index == index)
    co = np.empty(len(fc.keyframe_points) * 2, np.float32)
    fc.keyframe_points.foreach_get("co", co)
    return co[1::2]


def test_camera_projects_like_K(scene, synth_models, tmp_path):
    """A vertex projected by the Blender camera lands where K puts it (OpenCV pixel centres), < 0.01 px."""
    path, clip = write_clip(tmp_path, {"right": synth_models["right"]}, n_frames=2, image_size=(720, 1280))
    bpy.ops.hand_capture.import_clip(filepath=str(path))
    convert = ext_module("blender_addon.convert")
    cam = scene.camera
    w, h = scene.render.resolution_x, scene.render.resolution_y
    assert (w, h) == (720, 1280) and cam.data.sensor_fit == "VERTICAL"
    p_cam = clip.vertices[0, 0][::50].astype(np.float64)
    K = clip.K[0]
    uv_k = (p_cam[:, :2] / p_cam[:, 2:]) * [K[0, 0], K[1, 1]] + K[:2, 2]
    p_world = convert.points_cam_to_world(p_cam)
    ndc = np.array([world_to_camera_view(scene, cam, Vector(p))[:] for p in p_world])
    uv_b = np.stack([ndc[:, 0] * w - 0.5, (1 - ndc[:, 1]) * h - 0.5], 1)
    np.testing.assert_allclose(uv_b, uv_k, atol=0.01)
    np.testing.assert_allclose(ndc[:, 2], p_cam[:, 2], atol=1e-5)  # depth along the optical axis


def test_scene_units(scene, synth_models, tmp_path):
    """With 1 unit = 1 cm, everything is scaled by 100 and still matches."""
    scene.unit_settings.scale_length = 0.01
    path, clip = write_clip(tmp_path, {"right": synth_models["right"]}, n_frames=4)
    bpy.ops.hand_capture.import_clip(filepath=str(path))
    mesh = bpy.data.objects["synthetic_hand_R_mesh"]
    assert _mesh_error_mm(clip, {"right": mesh}, clip.frame_index + 1, units=100.0) < 0.5


def test_keep_scene_fps(scene, synth_models, tmp_path):
    """match_fps off: a 24 fps scene stays 24 fps and keys keep real time (frame = 1 + t * 24)."""
    scene.render.fps = 24
    path, clip = write_clip(tmp_path, {"right": synth_models["right"]}, n_frames=6, fps=30.0, stride=2)
    bpy.ops.hand_capture.import_clip(filepath=str(path), match_fps=False)
    assert scene.render.fps == 24
    fcs = _fcurves(bpy.data.actions["synthetic_hand_R"])
    np.testing.assert_allclose(_key_frames(fcs[0]), 1 + clip.time * 24, atol=1e-4)


def test_stride_keys_on_source_frames(scene, synth_models, tmp_path):
    """A clip taken every 3rd frame from frame 10 keys source frames 10, 13, ... at the video's fps."""
    path, clip = write_clip(tmp_path, {"right": synth_models["right"]}, n_frames=5, fps=30.0, stride=3, start=10)
    bpy.ops.hand_capture.import_clip(filepath=str(path))
    assert scene.render.fps == 30
    fcs = _fcurves(bpy.data.actions["synthetic_hand_R"])
    np.testing.assert_array_equal(_key_frames(fcs[0]), [11, 14, 17, 20, 23])
    assert (scene.frame_start, scene.frame_end) == (11, 23)


def test_partial_results_warn(scene, synth_models, tmp_path):
    job = ext_module("blender_addon.job")
    path, clip = write_clip(tmp_path, synth_models, n_frames=10, invalid={"right": [1, 2, 5], "left": list(range(10))})
    out = job.drain(job.import_steps(str(path), scene, bpy.context.view_layer))
    assert "3 of 10 frames had no right hand; they were not keyed" in out.warnings
    assert any("left hand was not found on any frame" in w for w in out.warnings)
    assert set(out.applied.armatures) == {"right"}
    assert out.keyed == {"right": (7, 10)}


def test_no_hand_at_all_is_an_error(scene, synth_models, tmp_path):
    path, _ = write_clip(tmp_path, {"right": synth_models["right"]}, n_frames=4, invalid={"right": [0, 1, 2, 3]})
    before = scene_snapshot()
    with pytest.raises(RuntimeError, match="no hand was found in any of the 4 frames"):
        bpy.ops.hand_capture.import_clip(filepath=str(path))
    assert scene_snapshot() == before


def test_rerun_replaces_only_ours(scene, synth_models, tmp_path):
    cube = make_user_content()
    path, clip = write_clip(tmp_path, synth_models, n_frames=6)
    bpy.ops.hand_capture.import_clip(filepath=str(path))
    arm = bpy.data.objects["synthetic_hand_R"]
    # The user duplicates our armature, puts their own object in our collection, renames our camera.
    dup = arm.copy()
    dup.name = "MyHandCopy"
    scene.collection.objects.link(dup)
    extra = bpy.data.objects.new("UserEmpty", None)
    bpy.data.collections["synthetic"].objects.link(extra)
    bpy.data.objects["synthetic_camera"].name = "MyCamera"
    user_keys = _key_frames(_fcurves(cube.animation_data.action)[0]).tolist()

    path2, clip2 = write_clip(tmp_path, synth_models, n_frames=8, seed=3)
    assert path2 == path
    bpy.ops.hand_capture.import_clip(filepath=str(path))

    names = {o.name for o in bpy.data.objects}
    assert {"synthetic_hand_R", "synthetic_hand_L", "synthetic_hand_R_mesh", "synthetic_hand_L_mesh",
            "synthetic_camera", "UserCube", "UserCamera", "MyHandCopy", "UserEmpty", "MyCamera"} == names
    assert bpy.data.objects["synthetic_hand_R"] != dup and "UserEmpty" in bpy.data.collections["synthetic"].objects
    assert len(bpy.data.collections) == 1
    # The duplicate still plays the old keys (its action is kept); the new capture's action takes another name.
    kept = dup.animation_data.action
    assert kept.name == "synthetic_hand_R" and len(_key_frames(_fcurves(kept)[0])) == 6
    new_r = bpy.data.objects["synthetic_hand_R"].animation_data.action
    assert new_r is not kept and new_r.name == "synthetic_hand_R.001"
    assert sorted(a.name for a in bpy.data.actions) == sorted(
        ["synthetic_hand_R", "synthetic_hand_R.001", "synthetic_hand_L", cube.animation_data.action.name])
    assert _key_frames(_fcurves(cube.animation_data.action)[0]).tolist() == user_keys
    fcs = _fcurves(bpy.data.objects["synthetic_hand_R"].animation_data.action)
    assert len(_key_frames(fcs[0])) == 8
    assert len(bpy.data.movieclips) == 0  # the synthetic clip's video does not exist


def test_failure_while_writing_leaves_scene_untouched(scene, synth_models, tmp_path, monkeypatch):
    make_user_content()
    path, _ = write_clip(tmp_path, synth_models, n_frames=4)
    bpy.ops.hand_capture.import_clip(filepath=str(path))  # a previous capture that must survive
    before = scene_snapshot()
    keying = ext_module("blender_addon.keying")
    calls = []
    real = keying.write_action

    def fail_on_second_hand(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("simulated failure")
        return real(*a, **kw)

    monkeypatch.setattr(keying, "write_action", fail_on_second_hand)
    with pytest.raises(RuntimeError, match="simulated failure"):
        bpy.ops.hand_capture.import_clip(filepath=str(path))
    assert scene_snapshot() == before


def test_bad_clip_file_is_an_error(scene, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(RuntimeError, match="not a Hand Capture clip"):
        bpy.ops.hand_capture.import_clip(filepath=str(bad))


def test_rerun_reuses_the_movie_clip(scene, synth_models, tmp_path, tiny_video):
    path, _ = write_clip(tmp_path, {"right": synth_models["right"]}, source=tiny_video, n_frames=3)
    bpy.ops.hand_capture.import_clip(filepath=str(path))
    first = bpy.data.movieclips[0]
    bpy.ops.hand_capture.import_clip(filepath=str(path))
    assert list(bpy.data.movieclips) == [first]
    assert scene.camera.data.background_images[0].clip == first
    assert len(bpy.data.cameras) == 1 and len(bpy.data.armatures) == 1 and len(bpy.data.meshes) == 1


def test_keys_hold_across_a_scene_cut(scene, synth_models, tmp_path, tiny_video):
    """A clip with a scene cut (core.solve.cuts): the last key of a shot is held up to the first key of the
    next shot (constant interpolation), so Blender never blends two shots' hands; the others are Bezier.
    The cut at clip frame 6 falls inside an unkeyed gap (frames 4, 5): keys 3 -> 6 must not be blended."""
    import dataclasses

    from core.io.clip import save_clip
    import synth

    clip = synth.make_clip({"right": synth_models["right"]}, n_frames=10, source=str(tiny_video),
                           invalid={"right": [4, 5]})
    clip = dataclasses.replace(clip, cuts=(6,))
    path = save_clip(clip, tmp_path / "cut.npz")
    bpy.ops.hand_capture.import_clip(filepath=str(path))
    action = bpy.data.objects["tiny_hand_R"].animation_data.action
    curves = _fcurves(action)
    assert curves
    for fc in curves:
        frames = _key_frames(fc)
        np.testing.assert_array_equal(frames, [1, 2, 3, 4, 7, 8, 9, 10])  # scene frame = clip frame + 1
        interp = [k.interpolation for k in fc.keyframe_points]
        assert interp == ["BEZIER"] * 3 + ["CONSTANT"] + ["BEZIER"] * 4, (fc.data_path, interp)
    hand = bpy.data.objects["tiny_hand_R"].pose.bones[0]
    scene.frame_set(4)
    held = np.array(hand.rotation_quaternion)
    for f in (5, 6):  # between the shots: the first shot's last pose, not a blend towards the next shot
        scene.frame_set(f)
        np.testing.assert_allclose(np.array(hand.rotation_quaternion), held, atol=1e-6)
