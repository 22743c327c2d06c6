"""What the user added to a capture, carried over to the capture that replaces it (bpy; used by
`scene.apply_plan` on a re-run): bones added to our armature, the channels our action does not key,
materials on our mesh, and every reference to our old objects (`hand_over`); `not_carried` words what
cannot be kept."""
from __future__ import annotations

import numpy as np

from . import keying, rig


_BONE_FLAGS = ("use_connect", "use_deform", "use_inherit_rotation", "inherit_scale", "use_local_location",
               "use_relative_parent", "envelope_distance", "envelope_weight", "head_radius", "tail_radius",
               "bbone_segments", "hide_select")
_POSE_VALUES = ("rotation_mode", "location", "rotation_quaternion", "rotation_euler", "rotation_axis_angle", "scale")


def bones(old_arm, new_arm, ours: set, view_layer) -> list:
    """Copy the bones the user added to ``old_arm`` (not in ``ours``) into ``new_arm``; their names."""
    from mathutils import Matrix

    extra = [b for b in old_arm.data.bones if b.name not in ours]
    if not extra:
        return []
    rest = [(b.name, b.parent.name if b.parent else None, b.head_local.copy(), b.tail_local.copy(),
             Matrix(b.matrix_local), {f: getattr(b, f) for f in _BONE_FLAGS if hasattr(b, f)},
             [c.name for c in getattr(b, "collections", ())]) for b in extra]
    data = new_arm.data
    with rig.edit_bones(new_arm, view_layer) as ebones:
        made = {}
        for name, _parent, head, tail, matrix, _flags, _colls in rest:
            eb = ebones.new(name)
            eb.head, eb.tail = head, tail
            eb.matrix = matrix  # its roll (the length stays head-to-tail) ...
            eb.head, eb.tail = head, tail  # ... and exactly the user's head and tail
            made[name] = eb
        for name, parent, _head, _tail, _matrix, flags, colls in rest:
            eb = made[name]
            eb.parent = made.get(parent) or ebones.get(parent) if parent else None
            for f, v in flags.items():
                if hasattr(eb, f):
                    setattr(eb, f, v)
            for cname in colls:
                (data.collections.get(cname) or data.collections.new(cname)).assign(eb)
    for name, *_ in rest:
        src, dst = old_arm.pose.bones[name], new_arm.pose.bones[name]
        for f in _POSE_VALUES:
            setattr(dst, f, getattr(src, f))
        for k in src.keys():
            dst[k] = src[k]
    return [name for name, *_ in rest]


_KEY_ARRAYS = (("co", 2, np.float32), ("handle_left", 2, np.float32), ("handle_right", 2, np.float32),
               ("interpolation", 1, np.int32), ("easing", 1, np.int32), ("handle_left_type", 1, np.int32),
               ("handle_right_type", 1, np.int32), ("type", 1, np.int32), ("amplitude", 1, np.float32),
               ("back", 1, np.float32), ("period", 1, np.float32))
_FCURVE_FLAGS = ("extrapolation", "mute", "hide", "lock", "color_mode", "color", "auto_smoothing", "select")


def _copy_rna(src, dst) -> None:
    """Copy the plain (not pointer, not collection, writable) RNA properties of ``src`` onto ``dst``."""
    for prop in src.bl_rna.properties:
        if prop.is_readonly or prop.type in {"POINTER", "COLLECTION"} or prop.identifier == "rna_type":
            continue
        try:
            setattr(dst, prop.identifier, getattr(src, prop.identifier))
        except (AttributeError, TypeError, ValueError):
            pass


def _copy_fcurve(src, bag) -> None:
    """``src`` (its keys exactly, handles, interpolation, flags and modifiers) as a new F-curve in ``bag``."""
    fc = keying._new_fcurve(bag, keying.Channel(src.data_path, src.array_index, src.group.name if src.group else "",
                                                None))
    n = len(src.keyframe_points)
    if n:
        fc.keyframe_points.add(n)
        for attr, width, dtype in _KEY_ARRAYS:
            buf = np.empty(n * width, dtype)
            src.keyframe_points.foreach_get(attr, buf)
            fc.keyframe_points.foreach_set(attr, buf)
    for f in _FCURVE_FLAGS:
        if hasattr(src, f):
            setattr(fc, f, getattr(src, f))
    for mod in src.modifiers:
        _copy_rna(mod, fc.modifiers.new(mod.type))


def channels(old_action, old_slot, action, slot, ours: set) -> int:
    """Copy the F-curves of ``old_action``'s ``old_slot`` that our keys do not write into ``action``'s ``slot``.

    ``ours``: {(data_path, index)} the new capture keys. Returns how many F-curves were copied.
    """
    from bpy_extras import anim_utils

    old_bag = anim_utils.action_get_channelbag_for_slot(old_action, old_slot)
    curves = old_bag.fcurves if old_bag is not None else ()
    extra = [fc for fc in curves if (fc.data_path, fc.array_index) not in ours]
    if extra:
        bag = keying.ensure_channelbag(action, slot)
        for fc in extra:
            _copy_fcurve(fc, bag)
    return len(extra)


def materials(old_mesh, new_mesh) -> None:
    """The user's materials on our old mesh, on the new one (same slots; per-face indices when the faces match)."""
    if old_mesh.type != "MESH" or not old_mesh.data.materials or new_mesh.data.materials:
        return
    for m in old_mesh.data.materials:
        new_mesh.data.materials.append(m)
    old_p, new_p = old_mesh.data.polygons, new_mesh.data.polygons
    if len(old_p) == len(new_p):
        idx = np.empty(len(old_p), np.int32)
        old_p.foreach_get("material_index", idx)
        new_p.foreach_set("material_index", idx)


def not_carried(old_obj, new_obj) -> list:
    """Warnings for what the user added to one of our objects and the re-run cannot keep."""
    out = []
    for kind, old_items, new_items in (("modifier", old_obj.modifiers, new_obj.modifiers),
                                       ("constraint", old_obj.constraints, new_obj.constraints)):
        for item in old_items:
            if item.name not in new_items:
                out.append(f"the {kind} {item.name!r} on the replaced {old_obj.name} is not on the new one")
    ad = old_obj.animation_data
    for track in (ad.nla_tracks if ad is not None else ()):
        out.append(f"the NLA track {track.name!r} on the replaced {old_obj.name} is not on the new one (its actions "
                   f"are kept)")
    if old_obj.type == "ARMATURE":
        for pb in old_obj.pose.bones:
            if pb.constraints and pb.name in new_obj.pose.bones and not new_obj.pose.bones[pb.name].constraints:
                out.append(f"the constraints of bone {pb.name!r} on the replaced {old_obj.name} are not on the new one")
    return out


def hand_over(old_obj, new_obj) -> None:
    """Make everything that uses ``old_obj`` use ``new_obj``: its collections (the user may have linked our
    object into their own), then every other reference (``ID.user_remap``: parents, modifiers,
    constraints, drivers, the scene camera). Collections go first and by hand, since remapping an object
    into a collection that already holds the new one can list it twice (Blender 5.2)."""
    for coll in list(old_obj.users_collection):
        try:
            if new_obj.name not in coll.objects:
                coll.objects.link(new_obj)
            coll.objects.unlink(old_obj)
        except RuntimeError:  # a collection linked from a library cannot change
            pass
    old_obj.user_remap(new_obj)
