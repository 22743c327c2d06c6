"""Add-on preferences (machine settings): the capture runtime's Python and optional official MANO files."""
from __future__ import annotations

import os

import bpy

from ..core.errors import CaptureError
from . import ADDON_PACKAGE, runtime


def user_dir(sub: str) -> str:
    """A writable folder for the add-on's user data (runtime, clips, logs), created if missing."""
    try:
        return bpy.utils.extension_path_user(ADDON_PACKAGE, path=sub, create=True)
    except ValueError:  # not loaded as an extension (a development checkout)
        return bpy.utils.user_resource("DATAFILES", path=os.path.join("hand_capture", sub), create=True)


def get(context=None):
    """The add-on's preferences, or None when it is not enabled as an add-on."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


def runtime_python(context=None) -> tuple:
    """(interpreter, where) for the capture worker; raises CaptureError with the fix when there is none."""
    prefs = get(context)
    return runtime.find_python(prefs.python_path if prefs else "", user_dir("runtime"))


class HANDCAP_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    python_path: bpy.props.StringProperty(
        name="Python",
        description=("Python interpreter with torch and mediapipe that runs captures. Empty: the runtime made "
                     f"by Set up runtime. The environment variable {runtime.ENV_VAR} overrides it"),
        subtype="FILE_PATH",
    )
    model_right: bpy.props.StringProperty(
        name="Right Hand Model",
        description="Official MANO_RIGHT.pkl (or a hand model .npz); empty for the bundled open hand model",
        subtype="FILE_PATH",
    )
    model_left: bpy.props.StringProperty(
        name="Left Hand Model",
        description="Official MANO_LEFT.pkl (or a hand model .npz); empty for the bundled open hand model",
        subtype="FILE_PATH",
    )

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.label(text="Capture runtime (runs the hand tracking outside Blender)")
        col.prop(self, "python_path")
        try:
            py, where = runtime.find_python(self.python_path, user_dir("runtime"))
            col.label(text=f"Using {py} ({where})", icon="CHECKMARK")
        except CaptureError as exc:
            col.label(text=str(exc), icon="ERROR")
        row = col.row()
        row.operator("hand_capture.setup_runtime", icon="IMPORT")
        row.operator("hand_capture.check_runtime", icon="VIEWZOOM")
        col.separator()
        col.label(text="Hand models (optional)")
        col.prop(self, "model_right")
        col.prop(self, "model_left")


classes = (HANDCAP_AddonPreferences,)


# Registered in order, unregistered in reverse.
register, unregister = bpy.utils.register_classes_factory(classes)
