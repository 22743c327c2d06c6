"""Operators (``hand_capture.*``), one per file; the work happens in `blender_addon`."""
import bpy

from . import capture, export, grasp_lock, import_clip, pick, refine_contact, retarget, runtime

classes = (*capture.classes, *import_clip.classes, *pick.classes, *refine_contact.classes, *grasp_lock.classes,
           *runtime.classes, *export.classes, *retarget.classes)


# Registered in order, unregistered in reverse.
register, unregister = bpy.utils.register_classes_factory(classes)
