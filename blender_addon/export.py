"""Export one animated armature (with its skinned meshes) to FBX, BVH or glTF with Blender's bundled exporters.

`export_armature` runs ``bpy.ops.export_scene.fbx``, ``bpy.ops.export_anim.bvh`` or ``bpy.ops.export_scene.gltf``
on the armature and the meshes it deforms, with the options below, and puts everything it touched back: the
selection, the active object and its mode, the scene's frame range and current frame, the armature's action
slot, NLA mutes and pose position. BVH goes through a temporary copy of the armature, removed afterwards: no
new objects, actions or data stay behind.

Options (checked against the operator's properties first: Blender 4.5, 5.0 and 5.2 differ a little; the
options an export cannot do without are required, the others are passed where the operator has them):

- FBX: the armature and its meshes only (``use_selection``, ``object_types={ARMATURE, MESH}``);
  ``add_leaf_bones=False``; deform bones only when the rig flags some (``use_armature_deform_only``: the MANO
  rig's fingertip bones do not deform and are left out); the scene animation baked every frame over the action's
  frame range (the scene's range is set to it while exporting) with ``bake_anim_simplify_factor=0`` (no curve
  simplification), no NLA strips and no other actions, start and end keyed; axes ``-Z`` forward, ``Y`` up (FBX's
  Y-up convention, Blender's FBX defaults; Blender's FBX importer with its defaults puts it back exactly), bone
  axes Y primary and X secondary (Blender's own), unit scale applied (``FBX_SCALE_NONE``: scale 1 with the file's
  unit set to the scene's). FBX writes a bind pose (the rest pose) only for an armature that deforms a mesh:
  without one, the bones' default transforms are the pose at the action's first frame (the exporter's current
  frame), which importers take as the rest; `Exported.warnings` says so.
- BVH: every bone (BVH has no deform flag), the action's frame range, each bone's rotation mode (``NATIVE``:
  Euler bones keep their order, quaternion bones become XYZ Euler); Y up, -Z forward (the BVH convention, and
  what Blender's BVH importer assumes by default): the copy's rest pose is turned from Blender's Z up and the
  armature object's placement folded in (BVH stores armature space only), its uniform scale as ``global_scale``.
- glTF: a binary ``.glb``, the armature and its meshes (``use_selection``), only the armature's active action
  (``ACTIVE_ACTIONS``), sampled on every frame (``export_force_sampling``, ``export_frame_step=1``) over the
  action's range, keys kept as sampled (no animation size optimisation), deform bones only when the rig flags
  some, no leaf bones, ``+Y`` up (glTF's convention, ``export_yup``); modifiers are not applied (the mesh is
  exported skinned).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os

from ..core.errors import CaptureError

FORMATS = ("FBX", "BVH", "GLTF")
EXTENSIONS = {"FBX": ".fbx", "BVH": ".bvh", "GLTF": ".glb"}
# format -> (operator module, operator name, bundled add-on module, label)
_OPERATORS = {
    "FBX": ("export_scene", "fbx", "io_scene_fbx", "FBX"),
    "BVH": ("export_anim", "bvh", "io_anim_bvh", "BVH"),
    "GLTF": ("export_scene", "gltf", "io_scene_gltf2", "glTF 2.0"),
}


@dataclasses.dataclass(frozen=True)
class Exported:
    """What `export_armature` wrote: the file, its format, the armature and mesh names, the frame range (start,
    end), how many bones went in (deform bones only for FBX and glTF when the rig flags some), and what the user
    should know about the file (warnings)."""

    filepath: str
    format: str
    armature: str
    meshes: tuple
    frame_range: tuple
    n_bones: int
    warnings: tuple = ()


def exporter(fmt: str):
    """The bpy operator that exports ``fmt`` ("FBX", "BVH", "GLTF") and its property names; CaptureError when the
    bundled add-on that provides it is disabled or missing."""
    import bpy

    if fmt not in _OPERATORS:
        raise CaptureError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    mod, name, addon, label = _OPERATORS[fmt]
    op = getattr(getattr(bpy.ops, mod), name)
    try:
        props = {p.identifier: p for p in op.get_rna_type().properties}
    except (KeyError, AttributeError):
        raise CaptureError(f"Blender's {label} exporter (bpy.ops.{mod}.{name}) is not available: enable the bundled "
                           f"add-on '{addon}' in Preferences > Add-ons, then export again") from None
    return op, props


def operator_options(fmt: str, props: dict, required: dict, optional: dict) -> dict:
    """``required`` and ``optional`` keyword arguments that the operator's ``props`` ({identifier: property})
    accept; an optional one the operator lacks (or whose enum value it does not know) is left out, a required
    one raises CaptureError naming it."""
    import bpy

    def accepts(key, value):
        p = props.get(key)
        if p is None:
            return False
        if p.type == "ENUM":
            items = {i.identifier for i in p.enum_items}  # empty for an enum whose items a function gives
            values = value if isinstance(value, (set, frozenset)) else {value}
            return not items or values <= items
        return True

    out = {}
    for key, value in required.items():
        if not accepts(key, value):
            raise CaptureError(f"this Blender ({bpy.app.version_string})'s {_OPERATORS[fmt][3]} exporter has no "
                               f"option {key}={value!r}, which the export needs: export from Blender 4.5 or newer "
                               f"with its bundled exporter")
        out[key] = value
    out.update({k: v for k, v in optional.items() if accepts(k, v)})
    return out


def fbx_options(deform_only: bool) -> tuple:
    """(required, optional) keyword arguments of ``export_scene.fbx`` (see the module's docstring)."""
    required = dict(use_selection=True, object_types={"ARMATURE", "MESH"}, add_leaf_bones=False, bake_anim=True,
                    bake_anim_use_nla_strips=False, bake_anim_use_all_actions=False, bake_anim_simplify_factor=0.0,
                    use_armature_deform_only=deform_only)
    optional = dict(use_visible=False, use_active_collection=False, bake_anim_use_all_bones=True,
                    bake_anim_force_startend_keying=True, bake_anim_step=1.0, axis_forward="-Z", axis_up="Y",
                    primary_bone_axis="Y", secondary_bone_axis="X", global_scale=1.0, apply_unit_scale=True,
                    apply_scale_options="FBX_SCALE_NONE", bake_space_transform=False, use_mesh_modifiers=True,
                    armature_nodetype="NULL", use_custom_props=False, path_mode="AUTO", batch_mode="OFF",
                    check_existing=False)
    return required, optional


def bvh_options(frame_range: tuple, scale: float) -> tuple:
    """(required, optional) keyword arguments of ``export_anim.bvh``."""
    required = dict(frame_start=int(frame_range[0]), frame_end=int(frame_range[1]))
    optional = dict(rotate_mode="NATIVE", global_scale=float(scale), root_transform_only=False, check_existing=False)
    return required, optional


def gltf_options(deform_only: bool) -> tuple:
    """(required, optional) keyword arguments of ``export_scene.gltf``."""
    required = dict(export_format="GLB", use_selection=True, export_animations=True,
                    export_animation_mode="ACTIVE_ACTIONS", export_force_sampling=True, export_frame_step=1)
    optional = dict(use_visible=False, use_renderable=False, use_active_collection=False, use_active_scene=False,
                    export_frame_range=False, export_def_bones=deform_only, export_leaf_bone=False,
                    export_optimize_animation_size=False, export_optimize_animation_keep_anim_armature=True,
                    export_anim_slide_to_zero=False, export_bake_animation=False, export_nla_strips=False,
                    export_skins=True, export_yup=True, export_apply=False, export_cameras=False,
                    export_lights=False, export_reset_pose_bones=True, export_rest_position_armature=True,
                    export_anim_single_armature=True, export_hierarchy_flatten_bones=False,
                    export_armature_object_remove=False, will_save_settings=False, check_existing=False)
    return required, optional


# ---------------------------------------------------------------------------------------------- checks


def _active_slot(obj):
    """(action, slot) the armature plays; slot is None when the action has none for it yet but one fits."""
    ad = obj.animation_data
    action = ad.action if ad is not None else None
    if action is None:
        raise CaptureError(f"armature {obj.name!r} has no action to export: capture onto it or retarget onto it "
                           f"first, or assign an action in the Action Editor")
    slot = getattr(ad, "action_slot", None)
    if slot is not None or not hasattr(action, "slots"):
        return action, slot
    fits = [s for s in action.slots if getattr(s, "target_id_type", "OBJECT") in ("OBJECT", "UNSPECIFIED")]
    if len(fits) != 1:
        raise CaptureError(f"armature {obj.name!r} plays action {action.name!r} without a slot and the action has "
                           f"{len(fits)} slots it could use: pick one in the Action Editor's slot menu, then export "
                           f"again")
    return action, fits[0]


def frame_range(action) -> tuple:
    """(start, end) whole frames the action covers (its manual frame range when set)."""
    start, end = action.frame_range
    start, end = int(math.floor(start + 1e-6)), int(math.ceil(end - 1e-6))
    return start, max(end, start)


def skinned_meshes(obj, scene) -> list:
    """Mesh objects in ``scene`` that ``obj`` deforms (an Armature modifier on it) or parents."""
    out = []
    for o in scene.objects:
        if o.type != "MESH":
            continue
        deformed = any(m.type == "ARMATURE" and m.object == obj for m in o.modifiers)
        parented = o.parent is not None and (o.parent == obj or obj in _ancestors(o))
        if deformed or parented:
            out.append(o)
    return out


def _ancestors(o):
    p = o.parent
    while p is not None:
        yield p
        p = p.parent


# ---------------------------------------------------------------------------------------------- state


@contextlib.contextmanager
def _kept_state(scene, view_layer, obj):
    """Everything the export changes comes back afterwards: mode, active object, selection, hidden flags,
    frame range and current frame, the armature's slot, NLA mutes and pose position."""
    import bpy

    active = view_layer.objects.active
    mode = active.mode if active is not None and bpy.context.mode != "OBJECT" else None
    selected = [o for o in view_layer.objects if o.select_get(view_layer=view_layer)]
    hidden = {o.name: (o.hide_get(view_layer=view_layer), o.hide_viewport) for o in view_layer.objects}
    frames = (scene.frame_start, scene.frame_end, scene.frame_current, scene.frame_subframe)
    ad = obj.animation_data
    slot = getattr(ad, "action_slot", None) if ad is not None else None
    mutes = [(t, t.mute) for t in ad.nla_tracks] if ad is not None else []
    pose_position = obj.data.pose_position
    try:
        if mode is not None and bpy.ops.object.mode_set.poll():
            bpy.ops.object.mode_set(mode="OBJECT")
        yield
    finally:
        for o in view_layer.objects:
            if o.name in hidden:
                hide, hide_vp = hidden[o.name]
                if o.hide_viewport != hide_vp:
                    o.hide_viewport = hide_vp
                if o.hide_get(view_layer=view_layer) != hide:
                    o.hide_set(hide, view_layer=view_layer)
            o.select_set(False, view_layer=view_layer)
        for o in selected:
            o.select_set(True, view_layer=view_layer)
        view_layer.objects.active = active
        if ad is not None:
            if getattr(ad, "action_slot", None) != slot:
                ad.action_slot = slot
            for t, m in mutes:
                t.mute = m
        obj.data.pose_position = pose_position
        scene.frame_start, scene.frame_end = frames[0], frames[1]
        scene.frame_set(frames[2], subframe=frames[3])
        if mode is not None and active is not None and active.mode != mode:
            try:
                bpy.ops.object.mode_set(mode=mode)
            except RuntimeError:  # the object cannot enter that mode now: stay in Object mode
                pass


def _show(objs, view_layer) -> list:
    """Make ``objs`` visible and selectable for the exporter (the caller restores the flags); those that stay
    invisible (their collection is hidden or excluded)."""
    lost = []
    for o in objs:
        if o.hide_viewport:
            o.hide_viewport = False
        if o.hide_get(view_layer=view_layer):
            o.hide_set(False, view_layer=view_layer)
        if not o.visible_get(view_layer=view_layer):
            lost.append(o)
    return lost


def _select_only(objs, view_layer, active) -> None:
    for o in view_layer.objects:
        if o.select_get(view_layer=view_layer):
            o.select_set(False, view_layer=view_layer)
    for o in objs:
        o.select_set(True, view_layer=view_layer)
    view_layer.objects.active = active


# ---------------------------------------------------------------------------------------------- export


def export_armature(obj, fmt: str, filepath: str, scene=None, view_layer=None) -> Exported:
    """Export armature object ``obj``'s active action (with the meshes it deforms) to ``filepath`` (bpy).

    Args:
        obj: an armature object in ``view_layer`` with an action assigned.
        fmt: "FBX", "BVH" or "GLTF" (binary .glb); the file gets the format's extension (replacing another
            format's), see `Exported.filepath`.
        filepath: output file (its folder is made when missing).
        scene, view_layer: default the context's.
    Raises:
        CaptureError: no such exporter, not an armature, no action, not in the view layer, or the exporter failed.
    """
    import bpy

    scene = scene or bpy.context.scene
    view_layer = view_layer or bpy.context.view_layer
    fmt = fmt.upper()
    op, props = exporter(fmt)
    if obj is None or obj.type != "ARMATURE":
        found = "nothing" if obj is None else f"{obj.name!r}, a {obj.type.lower()}"
        raise CaptureError(f"export needs an armature, found {found}: select the hand rig or your character's "
                           f"armature")
    view_layer.update()  # objects linked since the last update are not in view_layer.objects before it
    if obj.name not in view_layer.objects:
        raise CaptureError(f"armature {obj.name!r} is not in the view layer {view_layer.name!r}: link it to a "
                           f"collection of scene {scene.name!r} that the view layer includes")
    action, slot = _active_slot(obj)
    start_end = frame_range(action)
    filepath = bpy.path.abspath(filepath)
    root, ext = os.path.splitext(filepath)
    if ext.lower() != EXTENSIONS[fmt]:  # the exporters would change it anyway (glTF), or write a misnamed file
        filepath = (root if ext.lower() in (*EXTENSIONS.values(), ".gltf") else filepath) + EXTENSIONS[fmt]
    if os.path.isdir(filepath):
        raise CaptureError(f"export path {filepath} is a folder: give a file name")
    os.makedirs(os.path.dirname(os.path.abspath(filepath)) or ".", exist_ok=True)
    deform = [b.name for b in obj.data.bones if b.use_deform]
    deform_only = 0 < len(deform) < len(obj.data.bones)
    meshes = skinned_meshes(obj, scene)

    with _kept_state(scene, view_layer, obj), bpy.context.temp_override(scene=scene, view_layer=view_layer):
        ad = obj.animation_data
        if slot is not None and getattr(ad, "action_slot", None) != slot:
            ad.action_slot = slot
        for t in ad.nla_tracks:  # the action alone, not what the NLA adds on top
            t.mute = True
        obj.data.pose_position = "POSE"
        lost = _show([obj, *meshes], view_layer)
        if obj in lost:
            raise CaptureError(f"armature {obj.name!r} is in a hidden or excluded collection: show its collection "
                               f"in the Outliner, then export again")
        meshes = [m for m in meshes if m not in lost]
        if fmt == "BVH":
            _export_bvh(op, props, obj, start_end, filepath, view_layer)
        else:
            _select_only([obj, *meshes], view_layer, obj)
            scene.frame_start, scene.frame_end = start_end  # the FBX take covers the scene's range
            scene.frame_set(start_end[0])  # FBX writes the bones' default transforms at the current frame
            required, optional = (fbx_options if fmt == "FBX" else gltf_options)(deform_only)
            _run(op, fmt, filepath, operator_options(fmt, props, required, optional))
    n_bones = len(deform) if deform_only and fmt != "BVH" else len(obj.data.bones)
    warnings = []
    if fmt == "FBX" and not meshes:
        warnings.append(f"armature {obj.name!r} has no skinned mesh, so the FBX has no bind pose: importers take the "
                        f"pose of frame {start_end[0]} as its rest (the motion itself is exact); export it with the "
                        f"character's mesh to keep its rest pose")
    return Exported(filepath=filepath, format=fmt, armature=obj.name, meshes=tuple(m.name for m in meshes),
                    frame_range=start_end, n_bones=n_bones, warnings=tuple(warnings))


def _run(op, fmt: str, filepath: str, options: dict) -> None:
    label = _OPERATORS[fmt][3]
    try:
        result = op(filepath=filepath, **options)
    except RuntimeError as exc:
        msg = str(exc).strip().splitlines()
        raise CaptureError(f"Blender's {label} exporter failed writing {filepath}: "
                           f"{msg[-1] if msg else 'no message'}") from None
    if "FINISHED" not in result or not os.path.isfile(filepath):
        raise CaptureError(f"Blender's {label} exporter did not write {filepath} ({', '.join(sorted(result))}): "
                           f"check that the folder is writable")


def _export_bvh(op, props, obj, start_end, filepath, view_layer) -> None:
    """BVH through a temporary copy whose rest pose is in Y-up axes with the object's placement folded in (the
    copy plays the same action and slot; it and its armature data are removed afterwards)."""
    import bpy
    from bpy_extras.io_utils import axis_conversion
    from mathutils import Matrix

    loc, rot, scale = obj.matrix_world.decompose()
    s = float(scale[0])
    if max(abs(scale[1] - s), abs(scale[2] - s)) > 1e-5 * max(abs(s), 1.0) or s <= 0:
        raise CaptureError(f"BVH keeps one uniform scale, but armature {obj.name!r} is scaled "
                           f"({scale[0]:g}, {scale[1]:g}, {scale[2]:g}): apply its scale (Object > Apply > Scale) or "
                           f"export FBX or glTF")
    to_y_up = axis_conversion(from_forward="Y", from_up="Z", to_forward="-Z", to_up="Y").to_4x4()
    # BVH writes armature space times global_scale: rest in C (T/s) R gives s C (R p + T/s) = C (T + R s p).
    fold = to_y_up @ Matrix.Translation(loc / s) @ rot.to_matrix().to_4x4()
    arm = obj.data.copy()
    tmp = obj.copy()
    tmp.data = arm
    try:
        tmp.parent = None
        tmp.matrix_world = Matrix.Identity(4)
        if tmp.animation_data is not None:
            for t in list(tmp.animation_data.nla_tracks):
                tmp.animation_data.nla_tracks.remove(t)
            tmp.animation_data.action = obj.animation_data.action
            if hasattr(tmp.animation_data, "action_slot"):
                tmp.animation_data.action_slot = obj.animation_data.action_slot
        arm.transform(fold)
        view_layer.layer_collection.collection.objects.link(tmp)
        _select_only([tmp], view_layer, tmp)
        required, optional = bvh_options(start_end, s)
        with bpy.context.temp_override(active_object=tmp, object=tmp, selected_objects=[tmp]):
            _run(op, "BVH", filepath, operator_options("BVH", props, required, optional))
    finally:
        bpy.data.objects.remove(tmp)
        bpy.data.armatures.remove(arm)
