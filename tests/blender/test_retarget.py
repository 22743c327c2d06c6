"""Retarget (issue 11 items 1-2) in real bpy: a captured two-hand clip onto a generated Rigify rig and onto
Mixamo-, Unreal 5- and VRM-named characters with other rest poses (hands turned, fingers curled at rest, an
FBX-like Y-up armature under a 90-degree, 0.01-scale object) and other bone rolls and rotation modes.

Every check reads Blender's evaluated pose (``PoseBone.matrix``, heads and tails) on the clip's frames:
each character finger bone turns from its rest, relative to its hand, as ours does seen through the rest
alignment (< 1 degree); fingertip directions in world space agree (< 2 degrees); the character's other keys and
its old action stay; a custom mapping naming a missing bone is refused, naming it, and changes nothing.
"""
from __future__ import annotations

import math

import bpy
import numpy as np
import pytest
from mathutils import Matrix, Vector

from core.hand.model import FINGERS, MANO_JOINTS
from core.retarget import maths, rigs
from helpers import ext_module, write_clip
from test_safety import action_curves, assert_same, fingerprint

T = 12
FINGER_NAMES = ("thumb", "index", "middle", "ring", "pinky")


def _m(m) -> np.ndarray:
    return np.array([list(r) for r in m], np.float64)


def _rot3(m) -> np.ndarray:
    return maths.orthonormal(_m(m)[:3, :3])


@pytest.fixture
def hands(ext, open_models, tmp_path):
    """A fresh scene with both captured hands (the project's open hand model), keyed on frames 1..T."""
    bpy.ops.wm.read_homefile(use_empty=True)
    path, _ = write_clip(tmp_path, {"right": open_models["right"], "left": open_models["left"]}, n_frames=T, seed=3)
    assert bpy.ops.hand_capture.import_clip(filepath=str(path)) == {"FINISHED"}
    objs = {ext_module("blender_addon.retarget").hand_side(o): o for o in bpy.context.scene.objects
            if ext_module("blender_addon.retarget").hand_side(o)}
    assert set(objs) == {"right", "left"}
    return objs


def _turn(axis, angle) -> np.ndarray:
    return np.array(Matrix.Rotation(angle, 3, axis), np.float64)


def build_character(name, preset, hands, g, *, scale=1.0, obj_matrix=None, curl=0.0, modes=None, ends="", seed=0):
    """A character armature: root -> forearm -> hand -> (metacarpal) -> three finger bones (-> end bone) per side,
    named by ``preset``; its hands are our rest hands turned by g[side] (3, 3), scaled, moved apart; every bone
    has a random roll; fingers bend by ``curl`` radians per joint at rest; ``modes`` {slot: rotation mode}."""
    rng = np.random.default_rng(seed)
    rig = ext_module("blender_addon.rig")
    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    bpy.context.scene.collection.objects.link(obj)
    if obj_matrix is not None:
        obj.matrix_world = Matrix(obj_matrix.tolist())
    names = {side: rigs.preset_bones(preset, side) for side in g}
    with rig.edit_bones(obj, bpy.context.view_layer) as eb:
        root = eb.new("root")
        root.head, root.tail = (0, 0, 0), (0, 0, 0.1 * scale)
        for side, src in hands.items():
            if side not in g:
                continue
            bones = src.data.bones
            offset = np.array([0.4 if side == "left" else -0.4, 0, 1.2]) * scale

            def place(p):
                return g[side] @ np.asarray(p, np.float64) * scale + offset

            def frame_z(b, z_rest):  # a random roll about the bone
                y = _rot3(b.matrix_local)[:, 1]
                th = rng.uniform(-math.pi, math.pi)
                return g[side] @ (math.cos(th) * z_rest + math.sin(th) * np.cross(y, z_rest))

            def new(bname, head, tail, parent, z):
                e = eb.new(bname)
                e.head, e.tail = head.tolist(), tail.tolist()
                e.align_roll(z.tolist())
                e.parent = parent
                return e

            bn = lambda j: rig.bone_name(side, j)  # noqa: E731
            wb = bones[bn("wrist")]
            wh, wt = place(wb.head_local), place(wb.tail_local)
            fa = new(f"forearm_{side}", wh - (wt - wh) * 2.5, wh, root, g[side] @ _rot3(wb.matrix_local)[:, 2])
            hand = new(names[side]["wrist"], wh, wt, fa, frame_z(wb, _rot3(wb.matrix_local)[:, 2]))
            for f in FINGER_NAMES:
                chain, _ = FINGERS[f]
                pts = [place(bones[bn(MANO_JOINTS[j])].head_local) for j in chain]
                pts.append(place(bones[bn(f"{f}4")].head_local))
                zs = [_rot3(bones[bn(MANO_JOINTS[j])].matrix_local)[:, 2] for j in chain]
                if curl:  # bend the finger at rest about each joint's across-finger axis
                    for k, j in enumerate(chain):
                        x = g[side] @ _rot3(bones[bn(MANO_JOINTS[j])].matrix_local)[:, 0]
                        r = _turn(Vector(x.tolist()), -curl)
                        pts[k + 1:] = [pts[k] + r @ (p - pts[k]) for p in pts[k + 1:]]
                parent = hand
                if f"{f}0" in names[side]:
                    parent = new(names[side][f"{f}0"], wh + 0.3 * (pts[0] - wh), pts[0], hand,
                                 g[side] @ _rot3(wb.matrix_local)[:, 2])
                for k, j in enumerate(chain):
                    parent = new(names[side][f"{f}{k + 1}"], pts[k], pts[k + 1], parent,
                                 frame_z(bones[bn(MANO_JOINTS[j])], zs[k]))
                if ends:
                    new(names[side][f"{f}3"].replace("3", "4") if ends == "4" else names[side][f"{f}3"] + ends,
                        pts[3], pts[3] + 0.5 * (pts[3] - pts[2]), parent, g[side] @ zs[2])
    for side in g:
        for slot, mode in (modes or {}).items():
            obj.pose.bones[names[side][slot]].rotation_mode = mode
    return obj


def _other_keys(obj, side="left"):
    """The character's own animation: root location, the forearm's rotation and one finger bone (replaced)."""
    pb = obj.pose.bones
    for f, z in ((1, 0.0), (T, 0.2)):
        pb["root"].location = (0, 0, z)
        pb["root"].keyframe_insert("location", frame=f)
    fa = pb[f"forearm_{side}"]
    fa.rotation_mode = "XYZ"
    for f, a in ((1, 0.0), (6, 0.5), (T, -0.3)):
        fa.rotation_euler = (a, 0.2 * a, 0)
        fa.keyframe_insert("rotation_euler", frame=f)
    return obj.animation_data.action


def _pose(obj, name):
    pb = obj.pose.bones[name]
    return _rot3(pb.matrix), _rot3(pb.bone.matrix_local)


def check_fingers(src_objs, char, names, align, frames=range(1, T + 1), deg=1.0, tip_deg=2.0):
    """Each character finger bone's turn from rest relative to the bone above its finger equals ours relative to
    our wrist, through ``align`` {side: A} (< deg); fingertip directions in world space (< tip_deg)."""
    rig = ext_module("blender_addon.rig")
    scene = bpy.context.scene
    worst = worst_tip = moved = 0.0
    for f in frames:
        scene.frame_set(f)
        for side, src in src_objs.items():
            a = align[side]
            sw, sw0 = _pose(src, rig.bone_name(side, "wrist"))
            for fi in FINGER_NAMES:
                first = char.pose.bones[names[side][f"{fi}1"]]
                hp, hp0 = _rot3(first.parent.matrix), _rot3(first.parent.bone.matrix_local)
                for n in (1, 2, 3):
                    s, s0 = _pose(src, rig.bone_name(side, f"{fi}{n}"))
                    t, t0 = _pose(char, names[side][f"{fi}{n}"])
                    d_src = sw0 @ sw.T @ s @ s0.T
                    d_tgt = hp0 @ hp.T @ t @ t0.T
                    worst = max(worst, float(maths.angle_deg(d_tgt, a @ d_src @ a.T)))
                    moved = max(moved, float(maths.angle_deg(d_src, np.eye(3))))
                pb = char.pose.bones[names[side][f"{fi}3"]]
                mw = _m(char.matrix_world)
                tip = (mw[:3, :3] @ (np.array(pb.tail) - np.array(pb.head)))
                t0dir = _rot3(pb.bone.matrix_local)[:, 1]
                want = _rot3(char.matrix_world) @ hp @ hp0.T @ a @ d_src @ a.T @ t0dir
                cos = tip @ want / np.linalg.norm(tip) / np.linalg.norm(want)
                worst_tip = max(worst_tip, math.degrees(math.acos(min(1.0, cos))))
    assert moved > 20.0  # the captured fingers really moved
    assert worst < deg, f"a finger bone turns {worst:.3f} deg away from ours"
    assert worst_tip < tip_deg, f"a fingertip points {worst_tip:.3f} deg away from ours"
    return worst, worst_tip


def _other_curves(action, keyed_names):
    """{(path, index): keys} of an action's curves that are not the keyed bones' rotations."""
    out = {}
    for (slot, path, idx), v in action_curves(action).items():
        if not any(f'"{n}"' in path and "rotation" in path for n in keyed_names):
            out[(slot, path, idx)] = v
    return out


@pytest.mark.parametrize("kind", ["MIXAMO", "UNREAL", "VRM"])
def test_named_rigs_receive_the_fingers(hands, kind):
    """Mixamo: an FBX-like armature (Y-up bones in centimetres under a 90-degree, 0.01-scale object), end bones;
    Unreal 5: metacarpals, fingers curled 20 degrees per joint at rest, Euler XYZ fingers; VRM: hands turned the
    other way, YZX / axis-angle bones, end bones. The character's own keys and old action stay; one undo step."""
    rng = np.random.default_rng({"MIXAMO": 1, "UNREAL": 2, "VRM": 3}[kind])
    g = {side: _turn(Vector(rng.normal(size=3).tolist()).normalized(), rng.uniform(0.5, 2.5)) for side in hands}
    kw = {"MIXAMO": dict(scale=100.0, obj_matrix=np.array(Matrix.Rotation(math.pi / 2, 4, "X") @ Matrix.Scale(0.01, 4)),
                         ends="4"),
          "UNREAL": dict(curl=math.radians(20), modes={s: "XYZ" for s in rigs.FINGER_SLOTS}),
          "VRM": dict(modes={"index2": "YZX", "thumb1": "ZXY", "pinky3": "AXIS_ANGLE"}, ends="_end")}[kind]
    char = build_character("Character", kind, hands, g, seed=4, **kw)
    old = _other_keys(char)
    names = {side: rigs.preset_bones(kind, side) for side in hands}
    keyed = [names[s][k] for s in hands for k in rigs.FINGER_SLOTS + rigs.META_SLOTS if k in names[s]]
    old_curves = action_curves(old)
    bpy.context.scene.frame_set(1)
    bpy.ops.ed.undo_push(message="before retarget")
    before = fingerprint()
    assert bpy.ops.hand_capture.retarget("EXEC_DEFAULT", True, target=char.name, mapping="AUTO") == {"FINISHED"}
    new = char.animation_data.action
    assert new is not old and new.name == f"{old.name} hands"
    assert char.animation_data.action_slot.identifier == old.slots[0].identifier
    assert action_curves(old) == old_curves and old.use_fake_user  # the user's action: untouched, kept
    assert _other_curves(new, keyed) == _other_curves(old, keyed)  # other bones' keys identical
    paths = {fc.data_path for fc in ext_module("blender_addon.retarget")._bag(char).fcurves}
    for side in hands:
        for slot, mode in (kw.get("modes") or {}).items():
            prop = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(mode, "rotation_euler")
            assert f'pose.bones["{names[side][slot]}"].{prop}' in paths
        ends = kw.get("ends")
        if ends:  # no end bone keyed
            end = names[side]["index3"].replace("3", "4") if ends == "4" else names[side]["index3"] + ends
            assert end in char.data.bones and not any(f'"{end}"' in p for p in paths)
        for f in ("index", "middle", "ring", "pinky"):  # metacarpals at rest
            if f"{f}0" in names[side]:
                assert char.pose.bones[names[side][f"{f}0"]].rotation_quaternion[0] == pytest.approx(1.0)
    check_fingers(hands, char, names, g)
    bpy.context.scene.frame_set(1)
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert_same(before, fingerprint())


def test_a_rerun_is_named_after_the_users_action(hands):
    """Retargeting again onto a character that already carries our action: the new one is named after (and
    records) the user's own action, not ``… hands hands``; the fingers are those of the capture again."""
    g = {side: np.eye(3) for side in hands}
    char = build_character("Character", "MIXAMO", hands, g, seed=5)
    old = _other_keys(char)
    mod = ext_module("blender_addon.retarget")
    firsts = []
    for _ in range(2):
        assert bpy.ops.hand_capture.retarget("EXEC_DEFAULT", target=char.name, mapping="AUTO") == {"FINISHED"}
        new = char.animation_data.action
        assert new.name.startswith(f"{old.name} hands") and "hands hands" not in new.name
        assert new[mod.RETARGET_OF] == old.name
        firsts.append(new)
    assert firsts[0] is not firsts[1] and firsts[0].use_fake_user  # the first result is kept, not replaced
    check_fingers(hands, char, {side: rigs.preset_bones("MIXAMO", side) for side in hands}, g)


def test_generated_rigify_rig(hands):
    """A human metarig generated by Rigify (the wheel's own add-on): the fingers' FK controls receive the motion
    through the masters' and ORG palm bones, both hands."""
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    meta = bpy.context.active_object
    meta.location = (0, 2.0, 0)
    bpy.ops.pose.rigify_generate()
    char = bpy.context.active_object
    assert char.name != meta.name and "DEF-f_index.01.L" in char.data.bones
    retarget = ext_module("blender_addon.retarget")
    assert retarget.detected_label(char) == "Rigify (generated rig)"
    assert retarget.detected_label(meta) == "Rigify metarig"
    assert bpy.ops.hand_capture.retarget(target=char.name) == {"FINISHED"}
    names = {side: rigs.preset_bones("RIGIFY", side) for side in hands}
    # the rest alignment the add-on used: the knuckle directions of both hands line up within 15 degrees
    skel = retarget.skeleton(char)
    align = {}
    for side, src in hands.items():
        frames, hand = retarget.read_source(src)
        slots = {k: skel.index(v) for k, v in names[side].items()}
        align[side] = ext_module("core.retarget.solve").hand_alignment(hand, skel, slots)
        for f in ("index", "middle", "ring", "pinky"):
            s = hand.heads[MANO_JOINTS.index(f"{f}1")] - hand.heads[0]
            t = skel.heads[slots[f"{f}1"]] - skel.heads[slots["wrist"]]
            cos = (align[side] @ s) @ t / np.linalg.norm(s) / np.linalg.norm(t)
            assert math.degrees(math.acos(min(1.0, cos))) < 15, (side, f)
    check_fingers(hands, char, names, align)
    for f in (1, T):  # the deforming bones point where the FK controls point (their twist is Rigify's own)
        bpy.context.scene.frame_set(f)
        for b in ("f_index.02.L", "thumb.01.R", "f_pinky.03.L"):
            y_ctrl, y_def = _pose(char, b)[0][:, 1], _pose(char, "DEF-" + b)[0][:, 1]
            assert math.degrees(math.acos(min(1.0, y_ctrl @ y_def))) < 1.0, b
    keyed = {fc.data_path.split('"')[1] for fc in retarget._bag(char).fcurves if "rotation" in fc.data_path}
    assert not any(b.startswith(("DEF-", "ORG-", "MCH-")) or "_master" in b for b in keyed)


def test_wrist_follows_the_capture_against_the_forearm(hands):
    """Fingers and wrist (Facing the Camera) on the Mixamo-like character with an animated forearm: the hand bone
    points in the world as the captured hand does (the character's front facing the camera), on every frame."""
    rng = np.random.default_rng(5)
    g = {side: _turn(Vector(rng.normal(size=3).tolist()).normalized(), 1.0) for side in hands}
    char = build_character("Character", "MIXAMO", hands, g, seed=6)
    _other_keys(char, "left")
    _other_keys(char, "right")
    assert bpy.ops.hand_capture.retarget(target=char.name, wrist="WRIST", orientation="FACING") == {"FINISHED"}
    rig = ext_module("blender_addon.rig")
    names = {side: rigs.preset_bones("MIXAMO", side) for side in hands}
    worst = 0.0
    moved = 0.0
    for f in range(1, T + 1):
        bpy.context.scene.frame_set(f)
        for side, src in hands.items():
            s, s0 = _pose(src, rig.bone_name(side, "wrist"))
            h, h0 = _pose(char, names[side]["wrist"])
            want = _rot3(src.matrix_world) @ s @ s0.T @ g[side].T @ h0  # the captured wrist, our rest -> theirs
            worst = max(worst, float(maths.angle_deg(_rot3(char.matrix_world) @ h, want)))
            moved = max(moved, float(maths.angle_deg(h, h0)))
    assert worst < 1.0 and moved > 10.0
    check_fingers(hands, char, names, g)


def test_missing_bone_is_refused_and_changes_nothing(hands, tmp_path):
    """A custom mapping (saved and loaded as a preset file on the way) naming a bone the character lacks: one error
    naming it, the file exactly as before."""
    g = {side: np.eye(3) for side in hands}
    char = build_character("Character", "VRM", hands, g, seed=7)
    _other_keys(char)
    settings = bpy.context.scene.hand_capture.retarget
    settings.target = char
    assert bpy.ops.hand_capture.retarget_fill() == {"FINISHED"}
    assert settings.mapping == "CUSTOM" and len(settings.bones) == 2 * len(rigs.SLOTS)
    row = next(r for r in settings.bones if r.side == "LEFT" and r.slot == "ring2")
    assert row.bone == "leftRingIntermediate"
    row.bone = "leftRingMiddle"
    path = tmp_path / "custom.json"
    assert bpy.ops.hand_capture.retarget_save(filepath=str(path)) == {"FINISHED"}
    settings.bones.clear()
    assert bpy.ops.hand_capture.retarget_load(filepath=str(path)) == {"FINISHED"}
    before = fingerprint()
    with pytest.raises(RuntimeError, match="missing from the rig: leftRingMiddle"):
        bpy.ops.hand_capture.retarget(target=char.name, mapping="CUSTOM")
    assert_same(before, fingerprint())
    with pytest.raises(RuntimeError, match="missing from the rig: leftRingMiddle"):
        bpy.ops.hand_capture.retarget(target=char.name, mapping_file=str(path))
    assert_same(before, fingerprint())
