"""Key arrays from a clip's MANO pose (`hand_keys`), written in bulk to a slotted Action (`write_action`).

Pose maths: a bone with rest rotation B (armature space, columns = local axes) whose joint turns by
R (a rotation in armature axes, about the bone's head, relative to its parent) has the pose-bone
rotation ``q = B^T R B``. The wrist's location is the camera translation in its rest axes, ``B^T t``.
With the armature at the world origin, Blender's chain ``parent pose @ parent rest^-1 @ rest @ basis``
then reproduces MANO's ``G_i = G_parent [R_i | J_i - R_i J_i]`` exactly.

Keys go through `bpy_extras.anim_utils.action_ensure_channelbag_for_slot`, ``keyframe_points.add``
and one ``foreach_set("co")`` per F-curve: no per-key Python.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..core.hand.model import N_JOINTS
from . import convert
from .rig import RigLayout


@dataclasses.dataclass(frozen=True)
class Channel:
    """One F-curve: ``data_path[index]`` in action group ``group``, values (N,) at the keys' frames."""

    data_path: str
    index: int
    group: str
    values: np.ndarray


@dataclasses.dataclass(frozen=True)
class HandKeys:
    """Keys of one hand.

    frames (N,) float64: scene frames of the keyed (valid) clip frames.
    quats (16, N, 4) float64: pose-bone rotations (w, x, y, z), sign-continuous along N.
    root_location (N, 3) float64: wrist pose-bone location, scene units, in its rest axes.
    bone_names (16,) str.
    hold (N,) bool: keys held constant up to the next one (the next key lies in another shot, past a
        scene cut: no blending of two shots' hands); the other keys are Bezier.
    """

    frames: np.ndarray
    quats: np.ndarray
    root_location: np.ndarray
    bone_names: tuple
    hold: np.ndarray | None = None

    @property
    def n_keys(self) -> int:
        return int(self.frames.shape[0])

    def channels(self) -> list:
        """F-curves: the wrist's location (3), then every bone's rotation_quaternion (4 each)."""
        wrist = self.bone_names[0]
        out = [Channel(f'pose.bones["{wrist}"].location', i, wrist, self.root_location[:, i]) for i in range(3)]
        for b, name in enumerate(self.bone_names):
            path = f'pose.bones["{name}"].rotation_quaternion'
            out += [Channel(path, i, name, self.quats[b, :, i]) for i in range(4)]
        return out


def pose_quats(aa_world: np.ndarray, rest_rot: np.ndarray) -> np.ndarray:
    """Pose-bone quaternions (..., 16, 4) from joint rotations (..., 16, 3) axis-angle about armature axes.

    q_i = quat(B_i^T R_i B_i) = conj(b_i) * quat(R_i) * b_i with b_i = quat(B_i), B = rest_rot (16, 3, 3);
    quaternion products instead of matrices (about 10x faster for a clip).
    """
    b = convert.rotmat_to_quat(rest_rot)  # (16, 4)
    return convert.quat_multiply(convert.quat_multiply(convert.quat_conjugate(b), convert.aa_to_quat(aa_world)), b)


def hand_keys(
    global_orient: np.ndarray,
    hand_pose: np.ndarray,
    transl: np.ndarray,
    valid: np.ndarray,
    frames: np.ndarray,
    layout: RigLayout,
    units: float = 1.0,
    cuts: tuple = (),
) -> HandKeys:
    """Keys of one hand on its valid frames.

    Args:
        global_orient (T, 3): wrist axis-angle, radians, camera frame.
        hand_pose (T, 15, 3): local axis-angles of MANO joints 1..15, model (camera) axes.
        transl (T, 3): metres, camera frame.
        valid (T,) bool: frames to key; the others are skipped.
        frames (T,) float: scene frame of each clip frame.
        layout: the hand's RigLayout (rest rotations).
        units: scene units per metre.
        cuts: clip frame positions where a new shot starts (`ClipResult.cuts`): a key whose next key
            lies past a cut is held (`HandKeys.hold`).
    """
    keep = np.flatnonzero(np.asarray(valid, bool))
    # key k is held when a shot starts after it and at or before key k + 1: c in (keep[k], keep[k + 1]]
    hold = np.zeros(len(keep), bool)
    if len(keep) > 1 and len(cuts):
        shot = np.searchsorted(np.asarray(cuts), keep, side="right")  # shot index of each key
        hold[:-1] = shot[1:] != shot[:-1]
    aa = np.concatenate([np.asarray(global_orient)[keep, None, :], np.asarray(hand_pose)[keep]], 1)  # (N, 16, 3)
    rest = layout.rest_rot[:N_JOINTS]
    q = pose_quats(convert.aa_cam_to_world(aa), rest)  # (N, 16, 4)
    q = q * np.where(q[:1, :, :1] < 0, -1.0, 1.0)  # first key with w >= 0
    quats = convert.quats_sign_continuous(q, axis=0)
    t_world = convert.points_cam_to_world(np.asarray(transl)[keep], units)  # (N, 3)
    root_loc = t_world @ rest[0]  # B0^T t, row-vector form
    return HandKeys(
        frames=np.asarray(frames, np.float64)[keep],
        quats=np.ascontiguousarray(quats.transpose(1, 0, 2)),
        root_location=root_loc,
        bone_names=layout.names[:N_JOINTS],
        hold=hold,
    )


def ensure_channelbag(action, slot):
    """The channelbag of ``slot`` in ``action``'s first layer and keyframe strip, made when missing (bpy).

    Blender 5.0+ has ``bpy_extras.anim_utils.action_ensure_channelbag_for_slot``; 4.4 and 4.5 have the same
    layered-action API underneath it (layers, keyframe strips, ``strip.channelbag(slot, ensure=True)``).
    """
    from bpy_extras import anim_utils

    if hasattr(anim_utils, "action_ensure_channelbag_for_slot"):
        return anim_utils.action_ensure_channelbag_for_slot(action, slot)
    layer = action.layers[0] if action.layers else action.layers.new("Layer")
    strip = layer.strips[0] if layer.strips else layer.strips.new(type="KEYFRAME")
    return strip.channelbag(slot, ensure=True)


def _new_fcurve(bag, ch):
    """``bag.fcurves.new`` in its channel group (Blender 4.5's ``new`` takes no ``group_name``: set the group)."""
    try:
        return bag.fcurves.new(ch.data_path, index=ch.index, group_name=ch.group)
    except TypeError:
        fc = bag.fcurves.new(ch.data_path, index=ch.index)
        if ch.group:
            fc.group = bag.groups.get(ch.group) or bag.groups.new(ch.group)
        return fc


def write_channels(action, slot, frames: np.ndarray, channels: list, interpolation: str = "BEZIER",
                   hold: np.ndarray | None = None) -> None:
    """Write ``channels`` keyed at ``frames`` (N,) into ``action``'s channelbag for ``slot`` (bpy).

    Per F-curve: ``fcurves.new``, ``keyframe_points.add(N)``, one ``foreach_set("co")``, one
    ``update()`` (sorts and computes the handles). New keys are Bezier with auto-clamped handles;
    another ``interpolation``, or keys to ``hold`` (N,) bool (constant up to the next key), cost one more
    ``foreach_set``.
    """
    held = hold is not None and bool(np.any(hold))
    bag = ensure_channelbag(action, slot)
    n = int(frames.shape[0])
    co = np.empty((n, 2), np.float32)
    co[:, 0] = frames
    flat = co.reshape(-1)
    interp = None
    for ch in channels:
        fc = _new_fcurve(bag, ch)
        if n == 0:
            continue
        fc.keyframe_points.add(n)
        co[:, 1] = ch.values
        fc.keyframe_points.foreach_set("co", flat)
        if interpolation != "BEZIER" or held:
            if interp is None:
                items = fc.keyframe_points[0].bl_rna.properties["interpolation"].enum_items
                interp = np.full(n, items[interpolation].value, np.int32)
                if held:
                    interp[np.asarray(hold, bool)] = items["CONSTANT"].value
            fc.keyframe_points.foreach_set("interpolation", interp)
        fc.update()


def write_action(keys: HandKeys, name: str, armature_obj, slot_name: str | None = None):
    """Create Action ``name`` with one slot for ``armature_obj``, keyed with ``keys``, and assign it."""
    import bpy

    action = bpy.data.actions.new(name)
    slot = action.slots.new(id_type="OBJECT", name=slot_name or armature_obj.name)
    write_channels(action, slot, keys.frames, keys.channels(), hold=keys.hold)
    ad = armature_obj.animation_data_create()
    ad.action = action
    ad.action_slot = slot
    return action
