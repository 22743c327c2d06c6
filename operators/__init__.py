"""Operators (``hand_capture.*``), one per file; the work happens in `blender_addon`."""
import bpy

from . import capture, import_clip, pick, refine_contact, runtime

classes = (*capture.classes, *import_clip.classes, *pick.classes, *refine_contact.classes, *runtime.classes)


# Registered in order, unregistered in reverse.
register, unregister = bpy.utils.register_classes_factory(classes)
