"""Blender side of Hand Capture: clips from `core` become bpy data (rig, skin, keys, camera); runs the core's worker.

Numpy first, bpy last: `rig`, `skin`, `keying` and `scene.plan_scene` compute arrays; `scene.apply_plan`
writes them. `convert` is the only module that converts between the camera frame and Blender.
Nothing here imports torch. `operators/` and `panels/` reach the core only through this package
(`CaptureError`, `CORE_ROOT`).
"""
import os

try:
    from ..core.errors import CaptureError  # noqa: F401  (re-exported for operators/ and panels/)
except ImportError:
    # Imported as a top-level package by ``python -m blender_addon.apply`` in a checkout: apply.py re-imports
    # itself inside a parent package (its ``_hosted``); nothing else is used from this one.
    if "." in __name__:
        raise

# The extension's own package (``bl_ext.<repo>.hand_capture``): AddonPreferences.bl_idname and
# bpy.utils.extension_path_user take it.
ADDON_PACKAGE = __package__.rpartition(".")[0]
# The folder holding the ``core`` package (the extension's root): the capture worker runs ``-m core`` there.
CORE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
