"""Retarget in bpy: read our hand rigs and the character (rest matrices, rotation modes, keys), let
`core.retarget` compute, write the keys (issue 11 items 1-2).

`plan` reads and checks everything and computes every key without changing anything; `write` then makes a
new action for the character: a copy of its current action (every other bone's keys identical) with the
mapped bones' rotation channels replaced, on the character's slot, assigned to it; the original action keeps a
fake user and is otherwise untouched. One operator call, one undo step.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..core.errors import CaptureError
from ..core.hand.model import MANO_JOINTS
from ..core.retarget import maths, solve
from ..core.retarget.mapping import Mapping, Skeleton, from_preset, validate
from ..core.retarget.mapping import load as load_mapping  # noqa: F401  (for operators/)
from ..core.retarget.mapping import save as save_mapping  # noqa: F401
from ..core.retarget.solve import Options
from ..core.retarget.rigs import PRESETS, detect
from . import keying, rig

ROTATION_PATHS = ("rotation_quaternion", "rotation_euler", "rotation_axis_angle")
RETARGET_OF = "hand_capture_retarget_of"  # custom property of our action: the action it started from


def _mat3(flat: np.ndarray) -> np.ndarray:
    """Column-major 4x4 floats (N * 16,) -> rotation parts (N, 3, 3), scale removed."""
    m = flat.reshape(-1, 4, 4).transpose(0, 2, 1)[:, :3, :3].astype(np.float64)
    return maths.orthonormal(m)


def skeleton(obj) -> Skeleton:
    """The armature object's rest skeleton (armature space) and pose-bone rotation modes."""
    bones = obj.data.bones
    n = len(bones)
    m = np.empty(n * 16, np.float32)
    bones.foreach_get("matrix_local", m)
    heads = np.empty(n * 3, np.float32)
    bones.foreach_get("head_local", heads)
    names = tuple(b.name for b in bones)
    index = {name: i for i, name in enumerate(names)}
    parents = np.array([index[b.parent.name] if b.parent else -1 for b in bones], np.int64)
    modes = tuple(obj.pose.bones[name].rotation_mode for name in names)
    return Skeleton(names, parents, _mat3(m), heads.reshape(n, 3).astype(np.float64), modes)


def hand_side(obj) -> str | None:
    """"right" / "left" when ``obj`` is an armature with all 16 bones of our hand rig of that side, else None."""
    if obj is None or obj.type != "ARMATURE":
        return None
    for side in ("right", "left"):
        if all(rig.bone_name(side, j) in obj.data.bones for j in MANO_JOINTS):
            return side
    return None


def captured_hands(scene) -> list:
    """Our hand armatures in ``scene`` that carry an action, right hands first."""
    out = [o for o in scene.objects if hand_side(o) and o.animation_data and o.animation_data.action]
    return sorted(out, key=lambda o: (hand_side(o) != "right", o.name))


def _bag(obj):
    """The channelbag of ``obj``'s active action and slot (None when it has none)."""
    from bpy_extras import anim_utils

    ad = obj.animation_data
    if ad is None or ad.action is None or ad.action_slot is None:
        return None
    return anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)


def read_source(obj) -> tuple:
    """(frames (F,) float64, SourceHand) of one of our hand armatures: its bones' quaternion keys.

    Frames: every frame any of the 16 bones' rotation keys sits on. Where a channel has keys on exactly
    those frames they are read in bulk, otherwise evaluated there; a bone without keys keeps its pose value.
    """
    side = hand_side(obj)
    bag = _bag(obj)
    names = [rig.bone_name(side, j) for j in MANO_JOINTS]
    curves = {}
    for fc in (bag.fcurves if bag is not None else ()):
        for b, name in enumerate(names):
            if fc.data_path == f'pose.bones["{name}"].rotation_quaternion' and 0 <= fc.array_index < 4:
                curves[(b, fc.array_index)] = fc
    if not curves:
        raise CaptureError(f"{obj.name} has no captured rotation keys on its active action: capture or import a clip "
                           f"onto it first")
    cos = {}
    for k, fc in curves.items():
        co = np.empty(len(fc.keyframe_points) * 2, np.float32)
        fc.keyframe_points.foreach_get("co", co)
        cos[k] = co.reshape(-1, 2).astype(np.float64)
    frames = np.unique(np.concatenate([c[:, 0] for c in cos.values()]))
    local = np.empty((len(frames), len(names), 4))
    for b, name in enumerate(names):
        pose = np.array(obj.pose.bones[name].rotation_quaternion, np.float64)
        for i in range(4):
            fc = curves.get((b, i))
            if fc is None:
                local[:, b, i] = pose[i]
            elif len(cos[(b, i)]) == len(frames) and np.array_equal(cos[(b, i)][:, 0], frames):
                local[:, b, i] = cos[(b, i)][:, 1]
            else:
                local[:, b, i] = [fc.evaluate(f) for f in frames.tolist()]
    sk = skeleton(obj)
    idx = [sk.index(n) for n in names]
    return frames, solve.SourceHand(side, sk.rest[idx], sk.heads[idx], local)


def resolve_mapping(preset: str, target, custom: Mapping | None = None) -> Mapping:
    """The mapping to use: ``preset`` ("AUTO": detected from the target's bone names), or ``custom``."""
    names = [b.name for b in target.data.bones]
    if preset == "CUSTOM":
        if custom is None:
            raise CaptureError("the custom retarget mapping is empty: fill it in the Retarget panel (Fill from "
                               "preset) or load a mapping file")
        return custom
    if preset == "AUTO":
        found = detect(names)
        if found is None:
            raise CaptureError(f"{target.name}'s bone names match no retarget preset (Rigify, Mixamo, Unreal 5, VRM, "
                               f"VRoid): pick Custom in the Retarget panel and map its finger bones")
        preset = found
    if preset not in PRESETS:
        raise CaptureError(f"unknown retarget preset {preset!r}: use AUTO, CUSTOM or one of {', '.join(PRESETS)}")
    return from_preset(preset, names)


def _parent_world(scene, obj, bone: str, frames: np.ndarray) -> np.ndarray:
    """Armature-space rotations (F, 3, 3) of ``obj``'s pose bone ``bone`` on ``frames`` (evaluated; the scene's
    frame is put back)."""
    pb = obj.pose.bones[bone]
    keep = (scene.frame_current, scene.frame_subframe)
    out = np.empty((len(frames), 3, 3))
    try:
        for k, f in enumerate(frames.tolist()):
            whole = int(np.floor(f))
            scene.frame_set(whole, subframe=f - whole)
            out[k] = np.array(pb.matrix, np.float64)[:3, :3]
    finally:
        scene.frame_set(keep[0], subframe=keep[1])
    return maths.orthonormal(out)


@dataclasses.dataclass(frozen=True)
class RetargetPlan:
    """Everything `write` needs: target object name, the mapping used, and per hand (frames (F,), channels)."""

    target: str
    mapping: str
    hands: tuple  # ((source name, frames (F,), [keying.Channel]), ...)
    bones: tuple  # target bones keyed (their rotation channels are replaced)


def plan(scene, sources: list, target, mapping: Mapping, options: Options = Options()) -> RetargetPlan:
    """Read and check the source hands and the target, compute every key; changes nothing.

    sources: our hand armature objects (one per side at most). target: the character's armature object.
    """
    if target is None or target.type != "ARMATURE":
        raise CaptureError("the retarget target is not an armature: pick the character's armature as Target")
    if hand_side(target):
        raise CaptureError(f"{target.name} is a captured hand rig, not a character: pick the character's armature")
    if not sources:
        raise CaptureError("there is no captured hand to retarget: capture or import a clip first")
    sides = [hand_side(s) for s in sources]
    bad = [s.name for s, side in zip(sources, sides) if side is None]
    if bad:
        raise CaptureError(f"{', '.join(bad)} is not a Hand Capture hand rig: pick the captured hand armatures as "
                           f"source")
    if len(set(sides)) < len(sides):
        raise CaptureError(f"two source hands of the same side ({', '.join(s.name for s in sources)}): retarget one "
                           f"right and one left hand at a time")
    ad = target.animation_data
    if ad is not None and ad.use_tweak_mode:
        raise CaptureError(f"{target.name} is in NLA tweak mode: leave it (Tab in the NLA editor) and retarget again")
    skel = skeleton(target)
    slots = validate(mapping, skel, sides, options.fingers, wrist=options.wrist == "WRIST", target=target.name)
    obj_rot = maths.orthonormal(np.array(target.matrix_world, np.float64)[:3, :3])
    hands, keyed = [], []
    for src_obj, side in zip(sources, sides):
        frames, src = read_source(src_obj)
        parent_world = None
        if options.wrist == "WRIST":
            parent = skel.names[skel.parents[slots[side]["wrist"]]]
            parent_world = _parent_world(scene, target, parent, frames)
        res = solve.retarget_hand(src, skel, slots[side], options, parent_world, obj_rot)
        channels = []
        for k, name in enumerate(res.names):
            prop, values = solve.rotation_channels(res.quats[:, k], skel.modes[skel.index(name)])
            path = f'pose.bones["{_escape(name)}"].{prop}'
            channels += [keying.Channel(path, i, name, values[:, i]) for i in range(values.shape[1])]
        hands.append((src_obj.name, frames, channels))
        keyed += res.names
    return RetargetPlan(target.name, mapping.name, tuple(hands), tuple(keyed))


def _escape(name: str) -> str:
    import bpy

    return bpy.utils.escape_identifier(name)


def write(p: RetargetPlan):
    """The new action on the target (see the module's docstring); returns it. All or nothing: on an error the
    new action is removed and the target keeps its own."""
    import bpy

    obj = bpy.data.objects[p.target]
    ad = obj.animation_data
    old = ad.action if ad is not None else None
    old_slot = ad.action_slot if ad is not None else None
    act = old.copy() if old is not None else bpy.data.actions.new(f"{obj.name} hands")
    origin = (old.get(RETARGET_OF) or old.name) if old is not None else ""  # a re-run: the user's action
    try:
        if old is not None:
            act.name = f"{origin} hands"
            slot = act.slots.get(old_slot.identifier) if old_slot is not None else None
        else:
            slot = None
        if slot is None:
            slot = act.slots.new(id_type="OBJECT", name=obj.name)
        bag = keying.ensure_channelbag(act, slot)
        ours = {f'pose.bones["{_escape(n)}"].{prop}' for n in p.bones for prop in ROTATION_PATHS}
        for fc in [fc for fc in bag.fcurves if fc.data_path in ours]:
            bag.fcurves.remove(fc)
        for _, frames, channels in p.hands:
            keying.write_channels(act, slot, frames, channels)
        act[RETARGET_OF] = origin
    except BaseException:
        bpy.data.actions.remove(act)
        raise
    ad = obj.animation_data_create()
    ad.action = act
    ad.action_slot = slot
    if old is not None and not old.use_fake_user:
        old.use_fake_user = True  # no user left once ours is active: kept in the file for the NLA / going back
    return act


def retarget(scene, sources: list, target, preset: str = "AUTO", custom: Mapping | None = None,
             options: Options = Options()) -> tuple:
    """Plan, then write; (the new action, the mapping used)."""
    mapping = resolve_mapping(preset, target, custom)
    p = plan(scene, sources, target, mapping, options)
    return write(p), mapping



def detected_label(obj) -> str | None:
    """The label of the preset that fits ``obj``'s bone names (None: none fits) — cheap enough for a panel."""
    found = detect([b.name for b in obj.data.bones]) if obj is not None and obj.type == "ARMATURE" else None
    return PRESETS[found][0] if found else None
