"""Panels: what the user sees; they read `Scene.hand_capture` and call operators."""
import bpy

from . import main

classes = main.classes


# Registered in order, unregistered in reverse.
register, unregister = bpy.utils.register_classes_factory(classes)
