"""Frames, rotations and the rig's conventions (bone names, rest frames, rolls that make curl one axis)."""
from __future__ import annotations

import math

import bpy
import numpy as np
import pytest
from mathutils import Matrix, Vector

from core.hand.model import FINGERS, MANO21_JOINTS
from helpers import ext_module


@pytest.fixture
def convert(ext):
    return ext_module("blender_addon.convert")


def _random_aa(rng, n):
    return rng.normal(0, 1.2, (n, 3))


def test_rotation_conversions_agree(convert):
    rng = np.random.default_rng(1)
    aa = np.concatenate([_random_aa(rng, 200), [[0, 0, 0], [1e-9, 0, 0], [math.pi, 0, 0]]])
    r = convert.aa_to_rotmat(aa)
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    q = convert.aa_to_quat(aa)
    np.testing.assert_allclose(convert.quat_to_rotmat(q), r, atol=1e-12)
    q2 = convert.rotmat_to_quat(r)
    np.testing.assert_allclose(np.abs(np.sum(q * q2, -1)), 1.0, atol=1e-12)  # same rotation, up to sign
    for a, qq in zip(aa[:20], q[:20]):  # against mathutils: Blender's own (w, x, y, z)
        ref = Matrix(convert.aa_to_rotmat(a).tolist()).to_quaternion()
        assert abs(abs(np.dot(qq, ref[:])) - 1.0) < 1e-6  # mathutils is float32
    a, b = convert.aa_to_quat(aa[:50]), convert.aa_to_quat(aa[50:100])
    np.testing.assert_allclose(convert.quat_to_rotmat(convert.quat_multiply(a, b)),
                               convert.quat_to_rotmat(a) @ convert.quat_to_rotmat(b), atol=1e-12)


def test_sign_continuity(convert):
    rng = np.random.default_rng(2)
    q = convert.aa_to_quat(np.cumsum(rng.normal(0, 0.3, (100, 3)), 0))
    flipped = q * rng.choice([-1.0, 1.0], (100, 1))
    c = convert.quats_sign_continuous(flipped)
    assert (np.sum(c[1:] * c[:-1], -1) >= 0).all()
    np.testing.assert_allclose(np.abs(np.sum(c * q, -1)), 1.0, atol=1e-12)


def test_frames(convert):
    """Camera (OpenCV) -> world -> the Blender camera object's local frame is (x, -y, -z)."""
    p = np.array([[0.1, -0.2, 0.5], [0.0, 0.0, 1.0]])
    w = convert.points_cam_to_world(p)
    np.testing.assert_allclose(w, [[0.1, 0.5, 0.2], [0.0, 1.0, 0.0]])  # forward = +Y, up = +Z
    np.testing.assert_allclose(convert.points_world_to_cam(w), p)
    cam = Matrix(convert.CAMERA_MATRIX_WORLD.tolist())
    np.testing.assert_allclose(np.array(cam.to_euler()[:]), [math.pi / 2, 0, 0], atol=1e-7)
    local = np.array([(cam.inverted() @ Vector(x))[:] for x in w])
    np.testing.assert_allclose(local, p * [1, -1, -1], atol=1e-7)
    assert np.linalg.det(convert.CAM_TO_WORLD) == pytest.approx(1.0)
    aa = np.array([0.3, -0.7, 0.2])
    np.testing.assert_allclose(convert.aa_to_rotmat(convert.aa_cam_to_world(aa)),
                               convert.rotmats_cam_to_world(convert.aa_to_rotmat(aa)), atol=1e-12)
    assert convert.units_per_metre(0.01) == pytest.approx(100.0) and convert.units_per_metre(0) == 1.0


def test_time(convert):
    assert convert.fps_to_scene(30.0) == (30, 1.0)
    fps, base = convert.fps_to_scene(30000 / 1001)
    assert fps == 30 and base == pytest.approx(1.001)
    assert convert.source_fps(10.0, np.array([0, 3, 6, 9])) == 30.0
    np.testing.assert_array_equal(convert.clip_to_scene_frames(np.array([0, 3]), np.array([0, 0.1]), 30, 30), [1, 4])
    np.testing.assert_allclose(convert.clip_to_scene_frames(np.array([0, 3]), np.array([0, 0.1]), 30, 24), [1, 3.4])


def test_intrinsics(convert):
    c = convert.intrinsics_to_camera(np.array([[1000.0, 0, 639.5], [0, 1000.0, 359.5], [0, 0, 1]]), (1280, 720))
    assert c.sensor_fit == "HORIZONTAL" and c.lens_mm == pytest.approx(1000 * 36 / 1280)
    assert c.shift_x == pytest.approx(0.0) and c.shift_y == pytest.approx(0.0)
    c = convert.intrinsics_to_camera(np.array([[900.0, 0, 400], [0, 900.0, 700], [0, 0, 1]]), (720, 1280))
    assert c.sensor_fit == "VERTICAL" and c.shift_x == pytest.approx(-40.5 / 1280)


def _layout(model, side):
    rig = ext_module("blender_addon.rig")
    v = model.shaped_vertices(None)
    return rig.rig_layout(model.rest_joints(None), v[model.tip_vertex_ids], side)


@pytest.mark.parametrize("side", ["right", "left"])
def test_layout_frames(models, side):
    convert = ext_module("blender_addon.convert")
    model = models[side][0]
    lay = _layout(model, side)
    assert lay.names == tuple(f"hand_{side[0].upper()}.{j}" for j in MANO21_JOINTS)
    r = lay.rest_rot
    np.testing.assert_allclose(r.transpose(0, 2, 1) @ r, np.broadcast_to(np.eye(3), r.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-9)
    y = (lay.tails - lay.heads) / np.linalg.norm(lay.tails - lay.heads, axis=1, keepdims=True)
    np.testing.assert_allclose(r[:, :, 1], y, atol=1e-9)
    np.testing.assert_allclose(lay.heads[:16], convert.points_cam_to_world(model.rest_joints(None)), atol=1e-6)
    # Z points out of the back of the hand for every bone.
    back = ext_module("blender_addon.rig").back_of_hand(lay.heads[:16], side)
    assert (r[:, :, 2] @ back > 0.3).all()


@pytest.mark.parametrize("side", ["right", "left"])
def test_curl_is_one_axis(open_models, side):
    """Bending a finger toward the palm keys a pure rotation about the bone's local X (negative on both hands).

    core/handgen.py documents the open model's axes: the palm faces -y on both hands, and a finger bone
    flexes about cross(bone_direction, palm_normal) (+z for a right hand's fingers along -x).
    """
    keying = ext_module("blender_addon.keying")
    model = open_models[side][0]
    joints = model.rest_joints(None)
    tips = model.shaped_vertices(None)[model.tip_vertex_ids]
    j21 = np.concatenate([joints, tips])
    lay = _layout(model, side)
    palmar = np.array([0.0, -1.0, 0.0])
    for name, (chain, tip) in FINGERS.items():
        if name == "thumb":
            continue
        seq = list(chain) + [tip]
        for j, child in zip(seq[:-1], seq[1:]):
            d = j21[child] - j21[j]
            axis = np.cross(d, palmar)
            axis /= np.linalg.norm(axis)
            hand_pose = np.zeros((1, 15, 3))
            hand_pose[0, j - 1] = 0.8 * axis
            keys = keying.hand_keys(np.zeros((1, 3)), hand_pose, np.zeros((1, 3)), np.ones(1, bool), np.ones(1), lay)
            w, x, y, z = keys.quats[j, 0]
            assert x == pytest.approx(-math.sin(0.4), abs=0.01), (side, MANO21_JOINTS[j], keys.quats[j, 0])
            assert math.hypot(y, z) < 0.1 * abs(x), (side, MANO21_JOINTS[j], keys.quats[j, 0])


def test_armature_matches_layout(scene, synth_models):
    rig = ext_module("blender_addon.rig")
    lay = _layout(synth_models["left"][0], "left")
    obj = rig.write_armature(lay, "test_rig", scene.collection, bpy.context.view_layer)
    np.testing.assert_allclose(rig.read_rest_rotations(obj, lay.names), lay.rest_rot, atol=1e-5)
    heads = np.array([obj.data.bones[n].head_local[:] for n in lay.names])
    np.testing.assert_allclose(heads, lay.heads, atol=1e-6)
    assert obj.data.bones["hand_L.index4"].parent.name == "hand_L.index3"
    assert all(pb.rotation_mode == "QUATERNION" for pb in obj.pose.bones)
    assert bpy.context.mode == "OBJECT" and bpy.context.view_layer.objects.active is None
