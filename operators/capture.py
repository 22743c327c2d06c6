"""``hand_capture.capture_video``: track the hands of a video in the runtime, then build the rig."""
from __future__ import annotations

import os

import bpy

from ..blender_addon import CORE_ROOT, CaptureError, convert, job, prefs, props
from .jobrun import JobOperator, running

def report_outcome(op, outcome) -> None:
    for w in outcome.warnings:
        op.report({"WARNING"}, w)
    op.report({"INFO"}, outcome.info)


class HANDCAP_OT_capture_video(JobOperator, bpy.types.Operator):
    """Capture the hands in a video and build a keyed, skinned MANO hand rig with the video as camera background"""

    bl_idname = "hand_capture.capture_video"
    bl_label = "Capture Hands"
    bl_options = {"REGISTER", "UNDO"}

    __annotations__ = {
        **props.capture_properties(),
        "filter_glob": bpy.props.StringProperty(default=props.VIDEO_GLOB, options={"HIDDEN"}),
        "filter_movie": bpy.props.BoolProperty(default=True, options={"HIDDEN"}),
        "filter_folder": bpy.props.BoolProperty(default=True, options={"HIDDEN"}),
    }
    _browsing = False

    @classmethod
    def poll(cls, context):
        if running(cls.bl_idname):
            cls.poll_message_set("A capture is already running (Esc cancels it)")
            return False
        return context.scene is not None

    def invoke(self, context, event):
        if not self.filepath:
            self._browsing = True
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return self.start_modal(context)

    def execute(self, context):
        if self._browsing:  # back from the file browser in a UI session: run it modal, not blocking
            self._browsing = False
            context.scene.hand_capture.filepath = self.filepath
            return self.start_modal(context)
        return super().execute(context)

    def make_steps(self, context, wait):
        p = prefs.get(context)
        settings = props.settings_from(self, p.model_right if p else "", p.model_left if p else "")
        problems = settings.problems()
        if problems:
            raise CaptureError("; ".join(problems))
        python, _where = prefs.runtime_python(context)
        scene = context.scene
        return job.capture_steps(
            settings, python, CORE_ROOT, job.clip_path_for(settings.video, prefs.user_dir("clips")),
            scene, context.view_layer, props.scene_options_from(self),
            convert.units_per_metre(scene.unit_settings.scale_length), wait=wait,
            log_path=os.path.join(prefs.user_dir("logs"), "capture.log"), cache_dir=prefs.user_dir("cache"),
        )

    def finished(self, context, outcome):
        report_outcome(self, outcome)


classes = (HANDCAP_OT_capture_video,)
