"""Operators (``hand_capture.*``), one per file; the work happens in `blender_addon`."""
import bpy

from . import capture, import_clip, pick, runtime

classes = (*capture.classes, *import_clip.classes, *pick.classes, *runtime.classes)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
