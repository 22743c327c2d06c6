"""Operators (``hand_capture.*``), one per file; the work happens in `blender_addon`."""
import bpy

from . import capture, import_clip, pick, runtime

classes = (*capture.classes, *import_clip.classes, *pick.classes, *runtime.classes)


# Registered in order, unregistered in reverse.
register, unregister = bpy.utils.register_classes_factory(classes)
