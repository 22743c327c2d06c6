"""``hand_capture.setup_runtime`` (make the capture runtime with uv from the shipped lock files) and
``hand_capture.check_runtime``."""
from __future__ import annotations

import sys

import bpy

from ..blender_addon import prefs, runtime
from .jobrun import JobOperator, running


class HANDCAP_OT_setup_runtime(JobOperator, bpy.types.Operator):
    """Download and install the capture runtime (Python 3.11, torch, MediaPipe; up to 3 GB) in the user folder"""

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
        return _then_refresh(runtime.setup_steps(prefs.user_dir("runtime"), base_python=sys.executable, wait=wait))

    def finished(self, context, python):
        prefs.refresh_runtime_status(context)
        self.report({"INFO"}, f"Capture runtime ready: {python}")


def _then_refresh(steps):
    """``steps``, then the runtime status looked for again however they end (done, failed or cancelled: the
    set-up removes the ready stamp first, so the preferences must not go on saying "ready")."""
    try:
        return (yield from steps)
    finally:
        prefs.refresh_runtime_status()


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
