"""``hand_capture.import_clip``: build the rig from a clip file that ``python -m core capture`` wrote."""
from __future__ import annotations

import bpy

from ..blender_addon import convert, job, props
from .capture import report_outcome
from .jobrun import JobOperator


class HANDCAP_OT_import_clip(JobOperator, bpy.types.Operator):
    """Build a keyed, skinned MANO hand rig from a Hand Capture clip file (.npz)"""

    bl_idname = "hand_capture.import_clip"
    bl_label = "Import Hand Clip"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(name="Clip File", subtype="FILE_PATH")
    filter_glob: bpy.props.StringProperty(default="*.npz", options={"HIDDEN"})
    match_fps: bpy.props.BoolProperty(name="Match Scene FPS", default=True)
    set_frame_range: bpy.props.BoolProperty(name="Set Frame Range", default=True)
    set_resolution: bpy.props.BoolProperty(name="Set Render Size", default=True)

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def make_steps(self, context, wait):
        scene = context.scene
        return job.import_steps(bpy.path.abspath(self.filepath), scene, context.view_layer,
                                props.scene_options_from(self),
                                convert.units_per_metre(scene.unit_settings.scale_length))

    def finished(self, context, outcome):
        report_outcome(self, outcome)


classes = (HANDCAP_OT_import_clip,)
