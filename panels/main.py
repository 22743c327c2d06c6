"""3D Viewport > Sidebar > Hand Capture: video, frames, hands, camera, options, runtime, the Capture button, and
contact refinement."""
from __future__ import annotations

import bpy

from ..blender_addon import prefs, props, retarget, retarget_props


class _Sidebar:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Hand Capture"

    def split_layout(self):
        """The panel's layout with labels left of their fields and no keyframe decorators."""
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        return layout


class HANDCAP_PT_main(_Sidebar, bpy.types.Panel):
    bl_label = "Hand Capture"

    def draw(self, context):
        s = context.scene.hand_capture
        layout = self.split_layout()
        row = layout.row(align=True)
        row.prop(s, "filepath", text="Video")
        row.operator("hand_capture.pick_video", text="", icon="FILEBROWSER")
        col = layout.column(align=True)
        col.prop(s, "frame_first", text="Frames")
        col.prop(s, "frame_last", text="Last")
        col.prop(s, "stride", text="Step")
        layout.row().prop(s, "hands", expand=True)
        if not prefs.runtime_status()[0]:  # as last looked for: draw does no I/O
            box = layout.box()
            box.label(text="No capture runtime yet", icon="ERROR")
            box.operator("hand_capture.setup_runtime", icon="IMPORT")
        big = layout.row()
        big.scale_y = 1.5
        op = big.operator("hand_capture.capture_video", icon="REC")
        props.copy_settings(s, op)
        layout.operator("hand_capture.import_clip", text="Import Clip File", icon="IMPORT")


class HANDCAP_PT_camera(_Sidebar, bpy.types.Panel):
    bl_label = "Camera"
    bl_parent_id = "HANDCAP_PT_main"

    def draw(self, context):
        s = context.scene.hand_capture
        layout = self.split_layout()
        layout.prop(s, "camera", text="Lens")
        if s.camera == "FOV":
            layout.prop(s, "fov")
        elif s.camera == "FOCAL_MM":
            layout.prop(s, "focal_mm")
        elif s.camera == "PIXELS":
            col = layout.column(align=True)
            for k in ("fx", "fy", "cx", "cy"):
                col.prop(s, k)


class HANDCAP_PT_options(_Sidebar, bpy.types.Panel):
    bl_label = "Options"
    bl_parent_id = "HANDCAP_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.hand_capture
        layout = self.split_layout()
        col = layout.column(heading="Scene")
        col.prop(s, "match_fps")
        col.prop(s, "set_frame_range")
        col.prop(s, "set_resolution")
        layout.prop(s, "min_confidence")
        layout.prop(s, "detector")
        layout.prop(s, "model")
        layout.prop(s, "with_vertices")


class HANDCAP_PT_contact(_Sidebar, bpy.types.Panel):
    bl_label = "Contact"
    bl_parent_id = "HANDCAP_PT_main"

    def draw(self, context):
        s = context.scene.hand_capture
        layout = self.split_layout()
        layout.prop(s, "contact_selected_only")
        layout.prop(s, "contact_hand_hand")
        col = layout.column(heading="Pin")
        col.prop(s, "contact_pin")
        col = layout.column(heading="Exclude")
        col.prop(s, "contact_exclude")
        big = layout.row()
        big.scale_y = 1.5
        op = big.operator("hand_capture.refine_contact", icon="MOD_PHYSICS")
        props.copy_contact_settings(s, op)
        layout.separator()
        col = layout.column(align=True)
        col.prop(s, "grasp_first")
        col.prop(s, "grasp_last")
        op = layout.operator("hand_capture.grasp_lock", icon="LOCKED")
        op.frame_first, op.frame_last = s.grasp_first, s.grasp_last


class HANDCAP_PT_retarget(_Sidebar, bpy.types.Panel):
    bl_label = "Retarget"
    bl_parent_id = "HANDCAP_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        r = context.scene.hand_capture.retarget
        layout = self.split_layout()
        layout.prop(r, "target")
        layout.prop(r, "mapping")
        if r.target is not None and r.mapping == "AUTO":
            found = retarget.detected_label(r.target)
            layout.label(text=f"Detected: {found}" if found else "No preset fits: use Custom",
                         icon="CHECKMARK" if found else "ERROR")
        row = layout.row(align=True)
        row.operator("hand_capture.retarget_fill", icon="PRESET")
        row.operator("hand_capture.retarget_load", text="", icon="FILEBROWSER")
        row.operator("hand_capture.retarget_save", text="", icon="FILE_TICK")
        if r.mapping == "CUSTOM":
            box = layout.box()
            box.use_property_split = False
            for item in r.bones:
                row = box.row(align=True)
                row.label(text=f"{item.side.lower()} {item.slot}")
                if r.target is not None and r.target.type == "ARMATURE":
                    row.prop_search(item, "bone", r.target.data, "bones", text="")
                else:
                    row.prop(item, "bone", text="")
        layout.row().prop(r, "fingers", expand=True)
        layout.prop(r, "strength")
        layout.prop(r, "wrist")
        if r.wrist == "WRIST":
            layout.prop(r, "orientation")
        big = layout.row()
        big.scale_y = 1.5
        big.enabled = r.target is not None
        op = big.operator("hand_capture.retarget", icon="ARMATURE_DATA")
        op.target = r.target.name if r.target is not None else ""
        op.mapping = r.mapping
        retarget_props.copy_options(r, op)


class HANDCAP_PT_export(_Sidebar, bpy.types.Panel):
    bl_label = "Export"
    bl_parent_id = "HANDCAP_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        arm = obj if obj is not None and obj.type == "ARMATURE" else None
        layout.label(text=f"Armature: {arm.name}" if arm else "Select the armature to export",
                     icon="ARMATURE_DATA" if arm else "INFO")
        row = layout.row(align=True)
        row.enabled = arm is not None
        for fmt, text in (("FBX", "FBX"), ("BVH", "BVH"), ("GLTF", "glTF")):
            op = row.operator("hand_capture.export", text=text, icon="EXPORT")
            op.format = fmt
            op.target = arm.name if arm else ""


classes = (HANDCAP_PT_main, HANDCAP_PT_camera, HANDCAP_PT_options, HANDCAP_PT_contact, HANDCAP_PT_retarget,
           HANDCAP_PT_export)
