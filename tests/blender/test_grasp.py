"""Grasp lock (issue 10 item 4) in real bpy: ``bpy.ops.hand_capture.grasp_lock`` keys an object placed in the
captured hand at one frame so that it follows the hand over the lock frames.

The clip: the project's open hand with a fixed finger pose, turning (about 0.6 rad) and moving over 16 frames,
so the whole hand moves rigidly and the object must keep its place relative to the wrist bone exactly. A 4 cm
block is placed at frame 5 with the thumb 3 mm inside it; the user's own keys on it outside the lock frames stay.
"""
from __future__ import annotations

import dataclasses

import bpy
import numpy as np
import pytest

import synth
from core.io.clip import load_clip, save_clip
from helpers import ext_module
from test_safety import assert_same, fingerprint

T = 16
MM = 1e-3


def _mat(m) -> np.ndarray:
    return np.array([list(r) for r in m], np.float64)


def _wrist(arm) -> np.ndarray:
    return _mat(arm.matrix_world) @ _mat(arm.pose.bones["hand_R.wrist"].matrix)


@pytest.fixture
def held(ext, open_models, tmp_path):
    """A scene with the turning hand and a block held at frame 5 (the user keyed it at frames 8 and 30)."""
    clip = synth.make_clip({"right": open_models["right"]}, n_frames=T, seed=2, source=str(tmp_path / "grasp.mp4"))
    hp = np.tile(clip.hand_pose[:, :1], (1, T, 1, 1))
    model = open_models["right"][0]
    v, j21 = synth.forward(model, clip.betas[0], clip.global_orient[0], hp[0], clip.transl[0])
    clip = dataclasses.replace(clip, hand_pose=hp, vertices=v[None].astype(np.float32))
    path = save_clip(clip, tmp_path / "grasp.npz")
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.hand_capture.import_clip(filepath=str(path)) == {"FINISHED"}
    scene = bpy.context.scene
    scene.frame_set(5)
    skin = ext_module("blender_addon.skin")
    verts = skin.evaluated_vertices(bpy.data.objects["grasp_hand_R_mesh"], bpy.context.evaluated_depsgraph_get())
    tip = verts[model.tip_vertex_ids[0]]
    u = tip - verts.mean(0)
    u /= np.linalg.norm(u)
    me = bpy.data.meshes.new("Block")
    me.from_pydata([(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], [],
                   [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
    block = bpy.data.objects.new("Block", me)
    scene.collection.objects.link(block)
    block.scale = (0.02, 0.02, 0.02)
    block.rotation_euler = (0.3, 0.2, 0.1)
    rot = _mat(block.rotation_euler.to_matrix())
    # the tip 3 mm inside along u (the block's centre along u, at most 2 cm - 3 mm from its surface)
    block.location = (tip + u * (0.02 - 3 * MM) / max(np.abs(rot.T @ u))).tolist()
    block.keyframe_insert("location", frame=30)  # the user's own keys: outside the lock frames (kept) ...
    block.keyframe_insert("location", frame=8)  # ... and inside (replaced)
    bpy.context.view_layer.objects.active = block
    scene.frame_set(5)
    bpy.context.view_layer.update()
    return {"clip": path, "block": "Block", "arm": "grasp_hand_R", "ref": _mat(block.matrix_world)}


def test_locked_object_follows_the_hand(held):
    """The block keeps its place relative to the wrist on every lock frame (to 0.05 mm and 1e-4), its keys
    inside the range are ours, the user's key at frame 30 stays; one undo step removes the lock."""
    scene = bpy.context.scene
    arm = bpy.data.objects[held["arm"]]
    rel_ref = np.linalg.inv(_wrist(arm)) @ held["ref"]
    bpy.ops.ed.undo_push(message="before the lock")
    before = fingerprint()
    assert bpy.ops.hand_capture.grasp_lock("EXEC_DEFAULT", True, frame_first=1, frame_last=T) == {"FINISHED"}
    block = bpy.data.objects[held["block"]]
    moved = 0.0
    for f in range(1, T + 1):
        scene.frame_set(f)
        m = _mat(block.matrix_world)
        rel = np.linalg.inv(_wrist(arm)) @ m
        np.testing.assert_allclose(rel[:3, 3], rel_ref[:3, 3], atol=0.05 * MM)
        np.testing.assert_allclose(rel[:3, :3], rel_ref[:3, :3], atol=1e-4)
        moved = max(moved, np.linalg.norm(m[:3, 3] - held["ref"][:3, 3]))
    assert moved > 0.02  # the hand (and the block) really moved
    from bpy_extras import anim_utils

    ad = block.animation_data
    bag = anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)
    loc = [fc for fc in bag.fcurves if fc.data_path == "location"]
    frames = sorted({k.co.x for fc in loc for k in fc.keyframe_points})
    assert frames == [float(f) for f in range(1, T + 1)] + [30.0]
    assert {fc.data_path for fc in bag.fcurves} == {"location", "rotation_euler", "scale"}
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert_same(before, fingerprint())


def test_locked_motion_reaches_the_refinement(held):
    """Contact refinement then follows the locked object: its per-frame transforms (what the worker gets) are
    the keyed motion."""
    assert bpy.ops.hand_capture.grasp_lock(frame_first=1, frame_last=T) == {"FINISHED"}
    contact, convert = ext_module("blender_addon.contact"), ext_module("blender_addon.convert")
    scene = bpy.context.scene
    cap = contact.find_capture(scene, bpy.data.objects[held["arm"]])
    clip = load_clip(cap.clip_file)
    inputs, _, _ = contact.gather(contact.resolve_hands(cap, clip), clip, scene, bpy.context.view_layer,
                                  contact.ContactSettings(), 1.0)
    (block,) = [o for o in inputs if o.name == held["block"]]
    assert not block.static
    for f in range(1, T + 1):
        scene.frame_set(f)
        want = convert.points_world_to_cam(np.array(bpy.data.objects[held["block"]].matrix_world.translation))
        np.testing.assert_allclose(block.transforms[f - 1, :3, 3], want, atol=1e-6)


def test_object_not_in_the_hand_is_refused(held):
    """An object that touches no hand at the current frame: one clear error, nothing keyed."""
    block = bpy.data.objects[held["block"]]
    block.location.z += 0.5
    bpy.context.view_layer.update()
    before = fingerprint()
    with pytest.raises(RuntimeError, match="does not touch a captured hand at frame 5"):
        bpy.ops.hand_capture.grasp_lock(frame_first=1, frame_last=T)
    assert_same(before, fingerprint())


def test_rigid_fit_recovers_a_known_motion(ext):
    """`rigid_fit` (numpy): points moved by known rotations and translations give those transforms back."""
    grasp, convert = ext_module("blender_addon.grasp"), ext_module("blender_addon.convert")
    rng = np.random.default_rng(0)
    src = rng.normal(0, 0.05, (40, 3))
    aa = rng.normal(0, 1.0, (5, 3))
    r = convert.aa_to_rotmat(aa)
    t = rng.normal(0, 0.1, (5, 3))
    dst = np.einsum("tij,pj->tpi", r, src) + t[:, None]
    g = grasp.rigid_fit(src, dst, rng.uniform(0.5, 2.0, 40))
    np.testing.assert_allclose(g[:, :3, :3], r, atol=1e-9)
    np.testing.assert_allclose(g[:, :3, 3], t, atol=1e-9)
