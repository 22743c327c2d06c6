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


# The capture runtime as last looked for: (ready, text). Draw code reads it and does no I/O; it is
# refreshed on registration, when the Python preference changes, and by every operator that needs the
# runtime (capture, set-up, check).
_status = {"runtime": (False, "the capture runtime has not been looked for yet")}


def runtime_python(context=None) -> tuple:
    """(interpreter, where) for the capture worker; raises CaptureError with the fix when there is none.

    Also refreshes `runtime_status`.
    """
    prefs = get(context)
    try:
        found = runtime.find_python(prefs.python_path if prefs else "", user_dir("runtime"))
    except CaptureError as exc:
        _status["runtime"] = (False, str(exc))
        raise
    _status["runtime"] = (True, f"Using {found[0]} ({found[1]})")
    return found


def refresh_runtime_status(context=None) -> tuple:
    """Look for the runtime again (file checks); returns the new `runtime_status`."""
    try:
        runtime_python(context)
    except CaptureError:
        pass
    return _status["runtime"]


def runtime_status() -> tuple:
    """(ready, text) of the capture runtime as last looked for; no I/O (for draw code)."""
    return _status["runtime"]


def _python_changed(self, context):
    refresh_runtime_status(context)


class HANDCAP_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    python_path: bpy.props.StringProperty(
        name="Python",
        description=("Python interpreter with torch and mediapipe that runs captures. Empty: the runtime made "
                     f"by Set up runtime. The environment variable {runtime.ENV_VAR} overrides it"),
        subtype="FILE_PATH",
        update=_python_changed,
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
        ready, text = runtime_status()
        col.label(text=text, icon="CHECKMARK" if ready else "ERROR")
        row = col.row()
        row.operator("hand_capture.setup_runtime", icon="IMPORT")
        row.operator("hand_capture.check_runtime", icon="VIEWZOOM")
        col.separator()
        col.label(text="Hand models (optional)")
        col.prop(self, "model_right")
        col.prop(self, "model_left")


classes = (HANDCAP_AddonPreferences,)


# Registered in order, unregistered in reverse.
_register, unregister = bpy.utils.register_classes_factory(classes)


def register():
    _register()
    refresh_runtime_status()
