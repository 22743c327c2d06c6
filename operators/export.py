"""``hand_capture.export``: one armature's action (the hand rig, or a character it was retargeted onto) with its
skinned meshes to FBX, BVH or glTF (.glb), through Blender's bundled exporters (see `blender_addon.export`)."""
from __future__ import annotations

import os

import bpy
from bpy_extras.io_utils import ExportHelper

from ..blender_addon import CaptureError, export, scene as capture_scene

FORMAT_ITEMS = (
    ("FBX", "FBX", "Autodesk FBX: armature, skinned meshes and the action baked on every frame (Y up, -Z forward)"),
    ("BVH", "BVH", "Biovision motion: the skeleton and its rotations on every frame (Y up, -Z forward)"),
    ("GLTF", "glTF", "glTF 2.0 binary (.glb): armature, skinned meshes and the action sampled on every frame (Y up)"),
)


def target_armature(context, name: str = ""):
    """The armature to export: ``name``, else the active object when it is an armature (or a mesh it deforms),
    else the scene's only captured hand rig; CaptureError when none or several fit."""
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise CaptureError(f"no object named {name!r} to export: give the name of an armature in this file")
        return obj
    active = context.active_object
    if active is not None and active.type == "ARMATURE":
        return active
    if active is not None and active.type == "MESH":
        for m in active.modifiers:
            if m.type == "ARMATURE" and m.object is not None:
                return m.object
        if active.parent is not None and active.parent.type == "ARMATURE":
            return active.parent
    rigs = [o for o in context.view_layer.objects if o.type == "ARMATURE" and capture_scene.CLIP_FILE in o]
    if len(rigs) == 1:
        return rigs[0]
    found = "no captured hand rig" if not rigs else f"{len(rigs)} captured hand rigs"
    raise CaptureError(f"export needs one armature, and the scene has {found} and no armature is active: select "
                       f"the armature to export (the hand rig or your character)")


class HANDCAP_OT_export(bpy.types.Operator, ExportHelper):
    """Export an armature's action and its skinned meshes (the captured hand rig or a retargeted character) to
    FBX, BVH or glTF"""

    bl_idname = "hand_capture.export"
    bl_label = "Export Animation"
    bl_options = {"REGISTER"}

    format: bpy.props.EnumProperty(name="Format", items=FORMAT_ITEMS, default="FBX")
    target: bpy.props.StringProperty(name="Armature", description="Armature object to export (empty: the active "
                                     "armature, or the scene's only captured hand rig)")
    filter_glob: bpy.props.StringProperty(default="*.fbx;*.bvh;*.glb", options={"HIDDEN"})
    check_existing: bpy.props.BoolProperty(default=True, options={"HIDDEN"})

    @property
    def filename_ext(self):
        return export.EXTENSIONS[self.format]

    def invoke(self, context, event):
        try:
            obj = target_armature(context, self.target)
        except CaptureError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.target = obj.name
        if not self.filepath:
            folder = os.path.dirname(bpy.data.filepath) if bpy.data.filepath else ""
            self.filepath = os.path.join(folder, bpy.path.clean_name(obj.name) + self.filename_ext)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "format")
        layout.prop_search(self, "target", bpy.data, "objects")

    def execute(self, context):
        try:
            obj = target_armature(context, self.target)
            if not self.filepath:
                raise CaptureError("export needs a file path: choose where to write the file")
            out = export.export_armature(obj, self.format, self.filepath, context.scene, context.view_layer)
        except CaptureError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for w in out.warnings:
            self.report({"WARNING"}, w)
        meshes = f" and {len(out.meshes)} mesh{'es' if len(out.meshes) != 1 else ''}" if out.meshes else ""
        self.report({"INFO"}, f"Hand Capture: exported {out.armature}{meshes}, frames {out.frame_range[0]}.."
                              f"{out.frame_range[1]}, to {out.filepath}")
        return {"FINISHED"}


classes = (HANDCAP_OT_export,)
