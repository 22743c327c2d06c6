"""``hand_capture.setup_runtime`` (make the capture runtime with pip) and ``hand_capture.check_runtime``."""
from __future__ import annotations

import sys

import bpy

from ..blender_addon import prefs, runtime
from .jobrun import JobOperator, running


class HANDCAP_OT_setup_runtime(JobOperator, bpy.types.Operator):
    """Download and install the capture runtime (torch, MediaPipe; about 1 GB) into the add-on's user folder"""

    bl_idname = "hand_capture.setup_runtime"
    bl_label = "Set up Runtime"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        if running(cls.bl_idname):
            cls.poll_message_set("The runtime is being set up (Esc cancels it)")
            return False
        return True

    def make_steps(self, context, wait):
        return runtime.setup_steps(prefs.user_dir("runtime"), base_python=sys.executable, wait=wait)

    def finished(self, context, python):
        prefs.refresh_runtime_status(context)
        self.report({"INFO"}, f"Capture runtime ready: {python}")


class HANDCAP_OT_check_runtime(JobOperator, bpy.types.Operator):
    """Check that the capture runtime's Python can import torch and MediaPipe"""

    bl_idname = "hand_capture.check_runtime"
    bl_label = "Check Runtime"
    bl_options = {"REGISTER"}

    def make_steps(self, context, wait):
        python, where = prefs.runtime_python(context)
        self._python = f"{python} ({where})"
        return runtime.check_steps(python, wait=wait)

    def finished(self, context, version):
        self.report({"INFO"}, f"Capture runtime OK: {self._python}, torch {version}")


classes = (HANDCAP_OT_setup_runtime, HANDCAP_OT_check_runtime)
