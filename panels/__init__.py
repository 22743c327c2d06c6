"""Panels: what the user sees; they read `Scene.hand_capture` and call operators."""
import bpy

from . import main

classes = main.classes


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
