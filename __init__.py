"""Hand Capture: video of hands -> keyed, skinned MANO hand rig. This file only registers.

Layers: `core` (numpy/torch, no bpy; its heavy parts run in a worker process), `blender_addon` (clips to
bpy data, the worker, preferences), `operators`, `panels`.
"""
from .blender_addon import prefs, props
from . import operators, panels

_MODULES = (prefs, props, operators, panels)


def register():
    for m in _MODULES:
        m.register()


def unregister():
    for m in reversed(_MODULES):
        m.unregister()
