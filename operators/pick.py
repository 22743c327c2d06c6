"""``hand_capture.pick_video``: choose the panel's video in a file browser filtered to videos."""
from __future__ import annotations

import bpy

from ..blender_addon import props


class HANDCAP_OT_pick_video(bpy.types.Operator):
    """Choose the video to capture"""

    bl_idname = "hand_capture.pick_video"
    bl_label = "Choose Video"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    filepath: bpy.props.StringProperty(name="Video", subtype="FILE_PATH")
    filter_glob: bpy.props.StringProperty(default=props.VIDEO_GLOB, options={"HIDDEN"})
    filter_movie: bpy.props.BoolProperty(default=True, options={"HIDDEN"})
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        context.scene.hand_capture.filepath = self.filepath
        return {"FINISHED"}


classes = (HANDCAP_OT_pick_video,)
