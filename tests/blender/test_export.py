"""Export (issue 11 item 3): FBX, BVH and glTF of a captured hand rig and of a Mixamo-named character re-import,
in a fresh empty scene, with the same bone rotations (< 1 degree) on sampled frames; the user's scene is unchanged.

Rotations are compared in a form that does not depend on how an importer orients its bones (BVH has no bone roll,
glTF's importer picks its own bone axes): per bone the world-space rotation from its rest to its pose,
``D = rot(W_pose) rot(W_rest)^T``, and per joint the same relative to its parent's, ``D_parent^T D`` (the finger's
own bend). Bone directions: the world direction from each bone's head to its child's head. FBX and glTF keep each
bone's axes (roll), so there each bone's evaluated rotation relative to its rest in its own axes (what
``matrix_basis`` holds for a bone without constraints) is compared too: ``B^T D_parent^T D B`` with B its rest.
"""
from __future__ import annotations

import math

import bpy
import numpy as np
import pytest
from mathutils import Matrix

from helpers import ext_module, make_user_content, scene_snapshot, write_clip

FINGER = ("index", "middle", "ring", "pinky", "thumb")
FORMATS = ("FBX", "BVH", "GLTF")


def _rot(m: np.ndarray) -> np.ndarray:
    """Nearest rotation (..., 3, 3) of 3x3 blocks with scale (polar decomposition)."""
    u, _, vt = np.linalg.svd(np.asarray(m, np.float64))
    r = u @ vt
    return r


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (...) in degrees between rotations a and b (..., 3, 3) (atan2: exact near 0, unlike arccos)."""
    r = np.swapaxes(a, -1, -2) @ b
    c = (np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0
    axis = np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    return np.degrees(np.arctan2(0.5 * np.linalg.norm(axis, axis=-1), c))


def _record(obj, names, frames) -> dict:
    """World rest rotations (B, 3, 3), pose rotations (F, B, 3, 3) and heads (F, B, 3) of bones ``names``."""
    scene = bpy.context.scene
    rest, pose, heads = [], [], []
    mw0 = None
    for f in frames:
        scene.frame_set(int(f))
        mw = np.array(obj.matrix_world)
        mw0 = mw if mw0 is None else mw0
        mats = np.array([mw @ np.array(obj.pose.bones[n].matrix) for n in names])
        pose.append(_rot(mats[:, :3, :3]))
        heads.append(mats[:, :3, 3])
    rest = _rot(np.array([mw0[:3, :3] @ np.array(obj.data.bones[n].matrix_local)[:3, :3] for n in names]))
    return {"rest": rest, "pose": np.array(pose), "heads": np.array(heads)}


def _deltas(rec) -> np.ndarray:
    return rec["pose"] @ np.swapaxes(rec["rest"], -1, -2)[None]


def compare(orig: dict, got: dict, parents: dict, names: list) -> dict:
    """Worst differences over frames and bones: angles (degrees) of the world rotation from rest ("world"), the
    joint rotation relative to the parent's ("local"), the same in the bone's own rest axes ("bone_axes"), the
    direction from the parent's head ("direction"); head positions ("position", world units)."""
    d0, d1 = _deltas(orig), _deltas(got)
    world = _angle_deg(d0, d1)
    idx = {n: i for i, n in enumerate(names)}
    local, direction, own = [], [], []
    for n in names:
        p = parents.get(n)
        i = idx[n]
        l0, l1 = d0[:, i], d1[:, i]
        if p in idx:
            l0 = np.swapaxes(d0[:, idx[p]], -1, -2) @ l0
            l1 = np.swapaxes(d1[:, idx[p]], -1, -2) @ l1
            local.append(_angle_deg(l0, l1))
        b0, b1 = orig["rest"][i], got["rest"][i]  # in the bone's own rest axes
        own.append(_angle_deg(b0.T @ l0 @ b0, b1.T @ l1 @ b1))
        if p in idx:
            v0 = orig["heads"][:, idx[n]] - orig["heads"][:, idx[p]]
            v1 = got["heads"][:, idx[n]] - got["heads"][:, idx[p]]
            direction.append(np.degrees(np.arctan2(np.linalg.norm(np.cross(v0, v1), axis=-1), np.sum(v0 * v1, -1))))
    return {"world": float(world.max()), "local": float(np.max(local)), "direction": float(np.max(direction)),
            "position": float(np.linalg.norm(got["heads"] - orig["heads"], axis=-1).max()),
            "bone_axes": float(np.max(own))}


def _import(fmt: str, path, fps: int, start: int):
    """Import ``path`` into a fresh empty scene at ``fps``; the imported armature object. FBX without the importer's
    default one-frame offset, BVH (which stores no frame numbers) from frame ``start`` (see docs/export.md)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.scene.render.fps = fps
    if fmt == "FBX":
        bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
    elif fmt == "BVH":
        bpy.ops.import_anim.bvh(filepath=str(path), frame_start=start)
    else:
        bpy.ops.import_scene.gltf(filepath=str(path), disable_bone_shape=True)  # no Icosphere bone shape
    arms = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
    assert len(arms) == 1, [o.name for o in bpy.context.scene.objects]
    return arms[0]


def _round_trip(arm, tmp_path, stem: str, frames, names=None) -> dict:
    """Export ``arm`` in every format, re-import each into a fresh scene; {format: compare(...)} on ``frames`` for
    bones ``names`` (default every deform bone)."""
    export = ext_module("blender_addon.export")
    deform = [b.name for b in arm.data.bones if b.use_deform]
    names = names or deform
    keep = set(deform) | {p.name for n in deform for p in arm.data.bones[n].parent_recursive}
    parents = {b.name: b.parent.name for b in arm.data.bones if b.parent}
    meshes = sorted(m.name for m in export.skinned_meshes(arm, bpy.context.scene))
    orig = _record(arm, names, frames)
    fps = bpy.context.scene.render.fps
    outs = {fmt: export.export_armature(arm, fmt, str(tmp_path / f"{stem}_{fmt.lower()}")) for fmt in FORMATS}
    result = {}
    for fmt, out in outs.items():
        assert out.filepath.endswith(export.EXTENSIONS[fmt]) and out.meshes == tuple(meshes)
        assert out.frame_range == (frames[0], frames[-1])
        got_arm = _import(fmt, out.filepath, fps, out.frame_range[0])
        got_bones = {b.name for b in got_arm.data.bones}
        assert set(names) <= got_bones, sorted(set(names) - got_bones)
        if fmt in ("FBX", "GLTF"):  # deform bones (and the parents they need) only, no leaf bones added
            assert set(deform) <= got_bones <= keep, (fmt, sorted(got_bones - keep), sorted(set(deform) - got_bones))
            got_meshes = sorted(o.name for o in bpy.context.scene.objects if o.type == "MESH")
            assert got_meshes == meshes
        lo, hi = got_arm.animation_data.action.frame_range
        assert (round(lo), round(hi)) == (frames[0], frames[-1]), (fmt, lo, hi)
        result[fmt] = compare(orig, _record(got_arm, names, frames), parents, names)
        print(fmt, {k: round(float(v), 5) for k, v in result[fmt].items()})
    return result


def _assert_same(result: dict):
    for fmt, r in result.items():
        assert r["world"] < 1.0 and r["local"] < 1.0, (fmt, r)  # degrees
        if fmt != "BVH":  # bones keep their axes (roll): their rotations relative to rest, in their own axes
            assert r["bone_axes"] < 1.0, (fmt, r)
        assert r["direction"] < 1.0, (fmt, r)
        assert r["position"] < 1e-4, (fmt, r)  # 0.1 mm


START = 1  # the custom rig's keys start at START + 4


def test_hand_rig_round_trip(scene, open_models, tmp_path):
    """The captured MANO rig: FBX, BVH and glTF give back every deform bone's rotation to < 1 degree."""
    path, clip = write_clip(tmp_path, {"right": open_models["right"]}, n_frames=12)
    bpy.ops.hand_capture.import_clip(filepath=str(path))
    arm = bpy.data.objects["synthetic_hand_R"]
    _assert_same(_round_trip(arm, tmp_path, "hand", list(range(1, 13))))


def _mixamo_rig(collection, view_layer):
    """A Mixamo-named left hand (``mixamorig:LeftHand``, ``...Index1..4``, ``...Thumb1..4``, the ``4`` end bones not
    deforming) with its own rest pose: bent fingers, random bone rolls, some bones in Euler modes; the object
    turned 90 degrees about X and scaled 0.01 as a Mixamo FBX lands in Blender, bones in centimetres; a skinned
    mesh child; keys on frames START + 4 .. START + 19 (Bezier in between: every frame is sampled)."""
    rng = np.random.default_rng(7)
    arm = bpy.data.armatures.new("Character")
    obj = bpy.data.objects.new("Character", arm)
    collection.objects.link(obj)
    obj.rotation_euler = (math.pi / 2, 0.0, 0.3)
    obj.scale = (0.01, 0.01, 0.01)
    obj.location = (0.4, -0.2, 1.1)
    view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    eb = arm.edit_bones
    hand = eb.new("mixamorig:LeftHand")
    hand.head, hand.tail = (0, 0, 0), (0, 8, 0)
    hand.roll = 0.4
    names = ["mixamorig:LeftHand"]
    for finger, x, bend in (("Thumb", 3.0, 0.5), ("Index", 2.0, 0.15), ("Middle", 0.0, 0.25), ("Pinky", -2.5, 0.35)):
        parent, head = hand, np.array([x, 8.0 if finger != "Thumb" else 2.0, 0.0])
        direction = np.array([0.3 if finger == "Thumb" else 0.05 * x, 1.0, 0.0])
        for k in range(1, 5):
            direction = direction / np.linalg.norm(direction)
            tail = head + (3.5 - 0.5 * k) * direction
            b = eb.new(f"mixamorig:LeftHand{finger}{k}")
            b.head, b.tail = head.tolist(), tail.tolist()
            b.roll = float(rng.uniform(-math.pi, math.pi))
            b.parent = parent
            b.use_connect = k > 1
            b.use_deform = k < 4
            names.append(b.name)
            parent, head = b, tail
            direction = direction + np.array([0.0, 0.0, -bend])  # a bent rest pose
    bpy.ops.object.mode_set(mode="OBJECT")
    modes = ("QUATERNION", "XYZ", "ZXY", "YXZ")
    for i, pb in enumerate(obj.pose.bones):
        pb.rotation_mode = modes[i % len(modes)]
    # keys: a curl and a spread that change over time, the hand also moving
    for f in range(START + 4, START + 20, 5):
        t = (f - START) / 19.0
        for i, pb in enumerate(obj.pose.bones):
            e = (0.9 * t * math.sin(i + 1.0), 0.4 * math.cos(3 * t + i), -1.1 * t + 0.2 * math.sin(i))
            if pb.rotation_mode == "QUATERNION":
                from mathutils import Euler

                pb.rotation_quaternion = Euler(e, "XYZ").to_quaternion()
                pb.keyframe_insert("rotation_quaternion", frame=f)
            else:
                pb.rotation_euler = e
                pb.keyframe_insert("rotation_euler", frame=f)
        root = obj.pose.bones["mixamorig:LeftHand"]
        root.location = (2.0 * t, -1.0 * t, 3.0 * t * t)
        root.keyframe_insert("location", frame=f)
    # the last key at START + 19
    f = START + 19
    for pb in obj.pose.bones:
        pb.keyframe_insert("rotation_quaternion" if pb.rotation_mode == "QUATERNION" else "rotation_euler", frame=f)
    _skin_boxes(obj, [b.name for b in arm.bones if b.use_deform], collection, size=0.5)
    view_layer.objects.active = None
    return obj


def _skin_boxes(obj, names, collection, size: float):
    """A mesh child of armature ``obj`` deformed by it: a box (``size`` armature units) at the middle of each bone
    in ``names``, weighted to it."""
    verts, faces, groups = [], [], []
    for n in names:
        b = obj.data.bones[n]
        c = (np.array(b.head_local) + np.array(b.tail_local)) / 2
        base = len(verts)
        for dx in (-size, size):
            for dy in (-2 * size, 2 * size):
                for dz in (-size, size):
                    verts.append((c + [dx, dy, dz]).tolist())
        faces += [[base + a for a in q] for q in ((0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6),
                                                   (0, 2, 6, 4), (1, 5, 7, 3))]
        groups.append((n, range(base, base + 8)))
    me = bpy.data.meshes.new(f"{obj.name}Body")
    me.from_pydata(verts, [], faces)
    mesh = bpy.data.objects.new(f"{obj.name}Body", me)
    collection.objects.link(mesh)
    mesh.parent = obj
    for n, idx in groups:
        mesh.vertex_groups.new(name=n).add(list(idx), 1.0, "REPLACE")
    mod = mesh.modifiers.new("Armature", "ARMATURE")
    mod.object = obj
    return mesh


def test_custom_rig_round_trip(scene, tmp_path):
    """A Mixamo-named character with another rest pose, bone rolls, Euler bones and a scaled, turned object,
    keyed from frame START + 4: the same < 1 degree after FBX, BVH and glTF."""
    scene.render.fps = 24
    obj = _mixamo_rig(scene.collection, bpy.context.view_layer)
    frames = list(range(START + 4, START + 20))
    _assert_same(_round_trip(obj, tmp_path, "character", frames))


def _full_snapshot(arm) -> dict:
    """scene_snapshot plus every ID of every type, the selection, active object, mode, current frame, hidden
    flags, the rig's slot, NLA mutes, pose position and pose."""
    snap = scene_snapshot()
    ids = {}
    for prop in bpy.data.bl_rna.properties:
        if prop.type == "COLLECTION":
            ids[prop.identifier] = sorted(i.name for i in getattr(bpy.data, prop.identifier)
                                          if isinstance(i, bpy.types.ID))
    vl = bpy.context.view_layer
    ad = arm.animation_data
    snap.update(
        ids=ids,
        selected=sorted(o.name for o in vl.objects if o.select_get()),
        active=vl.objects.active.name if vl.objects.active else None,
        mode=bpy.context.mode,
        frame=(bpy.context.scene.frame_current, bpy.context.scene.frame_start, bpy.context.scene.frame_end),
        hidden=sorted((o.name, o.hide_get(), o.hide_viewport) for o in vl.objects),
        slot=ad.action_slot.identifier if ad.action_slot else None,
        nla=[(t.name, t.mute) for t in ad.nla_tracks],
        pose_position=arm.data.pose_position,
        pose=[tuple(round(x, 6) for row in pb.matrix for x in row) for pb in arm.pose.bones],
        users={a.name: a.users for a in bpy.data.actions},
    )
    return snap


def test_scene_unchanged(scene, synth_models, tmp_path):
    """Exporting leaves the user's scene as it was: selection, active object and its Pose mode, hidden mesh,
    frame range and frame, NLA track, rest-position display; no new objects, data or actions."""
    cube = make_user_content()
    path, _ = write_clip(tmp_path, {"right": synth_models["right"]}, n_frames=6)
    bpy.ops.hand_capture.import_clip(filepath=str(path))
    arm = bpy.data.objects["synthetic_hand_R"]
    mesh = bpy.data.objects["synthetic_hand_R_mesh"]
    vl = bpy.context.view_layer
    # the user's state: an NLA track with their own action, the mesh hidden, rest position shown, another
    # frame range, the cube selected with the rig, the rig active in Pose mode on frame 4
    wave = bpy.data.actions.new("UserWave")
    slot = wave.slots.new(id_type="OBJECT", name="Wave")
    ext_module("blender_addon.keying").ensure_channelbag(wave, slot)
    track = arm.animation_data.nla_tracks.new()
    track.name = "UserTrack"
    track.strips.new("UserWave", 1, wave)
    mesh.hide_set(True)
    arm.data.pose_position = "REST"
    scene.frame_start, scene.frame_end = 2, 40
    scene.frame_set(4)
    for o in vl.objects:
        o.select_set(False)
    cube.select_set(True)
    arm.select_set(True)
    vl.objects.active = arm
    bpy.ops.object.mode_set(mode="POSE")
    before = _full_snapshot(arm)
    assert before["mode"] == "POSE" and before["nla"] == [("UserTrack", False)]
    export = ext_module("blender_addon.export")
    for fmt in FORMATS:
        out = export.export_armature(arm, fmt, str(tmp_path / f"user_{fmt.lower()}"))
        assert out.meshes == (mesh.name,)  # the hidden mesh is exported all the same
        assert _full_snapshot(arm) == before, fmt
    # the operator (what the panel's buttons run), with the rig found from the active mesh
    bpy.ops.object.mode_set(mode="OBJECT")
    mesh.hide_set(False)
    vl.objects.active = mesh
    before = _full_snapshot(arm)
    assert bpy.ops.hand_capture.export(format="GLTF", filepath=str(tmp_path / "op.glb")) == {"FINISHED"}
    assert (tmp_path / "op.glb").stat().st_size > 0
    assert _full_snapshot(arm) == before


def test_refusals_change_nothing(scene, synth_models, tmp_path):
    """No action, not an armature, a disabled exporter: one clear sentence each, nothing written or changed."""
    import addon_utils

    CaptureError = ext_module("core.errors").CaptureError
    export = ext_module("blender_addon.export")
    arm_data = bpy.data.armatures.new("Bare")
    bare = bpy.data.objects.new("Bare", arm_data)
    scene.collection.objects.link(bare)
    with pytest.raises(CaptureError, match="has no action to export"):
        export.export_armature(bare, "FBX", str(tmp_path / "bare.fbx"))
    cube = make_user_content()
    with pytest.raises(CaptureError, match="needs an armature, found 'UserCube', a mesh"):
        export.export_armature(cube, "FBX", str(tmp_path / "cube.fbx"))
    path, _ = write_clip(tmp_path, {"right": synth_models["right"]}, n_frames=4)
    bpy.ops.hand_capture.import_clip(filepath=str(path))
    arm = bpy.data.objects["synthetic_hand_R"]
    before = _full_snapshot(arm)
    addon_utils.disable("io_anim_bvh")
    try:
        with pytest.raises(CaptureError, match=r"BVH exporter .* is not available: enable the bundled add-on "
                                               r"'io_anim_bvh'"):
            export.export_armature(arm, "BVH", str(tmp_path / "off.bvh"))
        with pytest.raises(RuntimeError, match="is not available"):  # the operator reports it as an error
            bpy.ops.hand_capture.export(format="BVH", filepath=str(tmp_path / "off.bvh"), target=arm.name)
    finally:
        addon_utils.enable("io_anim_bvh", default_set=True)
    assert _full_snapshot(arm) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".fbx", ".bvh", ".glb")) == []


def test_action_without_slot(scene, synth_models, tmp_path):
    """An action assigned without a slot (nothing plays) is exported through its one slot, which is taken off
    again afterwards; the FBX holds the motion."""
    export = ext_module("blender_addon.export")
    path, _ = write_clip(tmp_path, {"right": synth_models["right"]}, n_frames=5)
    bpy.ops.hand_capture.import_clip(filepath=str(path))
    arm = bpy.data.objects["synthetic_hand_R"]
    names = [b.name for b in arm.data.bones if b.use_deform]
    parents = {b.name: b.parent.name for b in arm.data.bones if b.parent}
    frames = list(range(1, 6))
    orig = _record(arm, names, frames)
    arm.animation_data.action_slot = None
    assert arm.animation_data.action is not None and arm.animation_data.action_slot is None
    out = export.export_armature(arm, "FBX", str(tmp_path / "noslot.fbx"))
    assert arm.animation_data.action_slot is None
    r = compare(orig, _record(_import("FBX", out.filepath, 30, 1), names, frames), parents, names)
    assert r["world"] < 1.0 and r["local"] < 1.0 and r["bone_axes"] < 1.0, r


def test_retargeted_rigify_round_trip(ext, open_models, tmp_path):
    """A generated Rigify rig that received the captured fingers (hand_capture.retarget): its deforming finger
    and hand bones (``DEF-``, driven by the FK controls through constraints) come back the same."""
    import addon_utils

    bpy.ops.wm.read_homefile(use_empty=True)
    path, _ = write_clip(tmp_path, {"left": open_models["left"]}, n_frames=8, seed=3)
    assert bpy.ops.hand_capture.import_clip(filepath=str(path)) == {"FINISHED"}
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    bpy.ops.pose.rigify_generate()
    char = bpy.context.active_object
    assert "DEF-f_index.01.L" in char.data.bones
    assert bpy.ops.hand_capture.retarget(target=char.name) == {"FINISHED"}
    names = [b.name for b in char.data.bones if b.use_deform and b.name.endswith(".L")
             and b.name.startswith(("DEF-f_", "DEF-thumb", "DEF-palm", "DEF-hand"))]
    assert len(names) >= 16, names
    _skin_boxes(char, names, bpy.context.scene.collection, size=0.004)
    result = _round_trip(char, tmp_path, "rigify", list(range(1, 9)), names)
    _assert_same(result)


def test_fbx_without_mesh_warns(scene, tmp_path):
    """An armature that deforms no mesh: FBX has no bind pose for it, so importers take the first frame's pose as
    its rest. The world motion still comes back (< 1 degree), the re-imported rest is the pose of the first frame,
    and the export says so."""
    scene.render.fps = 24
    obj = _mixamo_rig(scene.collection, bpy.context.view_layer)
    bpy.data.objects.remove(bpy.data.objects["CharacterBody"])
    names = [b.name for b in obj.data.bones if b.use_deform]
    parents = {b.name: b.parent.name for b in obj.data.bones if b.parent}
    frames = list(range(START + 4, START + 20))
    orig = _record(obj, names, frames)
    first_pose = orig["pose"][0]
    out = ext_module("blender_addon.export").export_armature(obj, "FBX", str(tmp_path / "bare.fbx"))
    assert out.meshes == () and len(out.warnings) == 1 and "no bind pose" in out.warnings[0]
    assert f"pose of frame {frames[0]}" in out.warnings[0]
    got = _record(_import("FBX", out.filepath, 24, frames[0]), names, frames)
    r = compare(orig, {**got, "rest": orig["rest"]}, parents, names)  # the same world poses, frame by frame
    assert r["world"] < 1.0 and r["direction"] < 1.0 and r["position"] < 1e-4, r
    assert _angle_deg(got["rest"], first_pose).max() < 1.0  # the file's rest is the first frame's pose
