"""Hand Capture: video of hands -> keyed, skinned MANO hand rig. This file only registers.

Layers: `core` (numpy/torch, no bpy; its heavy parts run in a worker process), `blender_addon` (clips to
bpy data, the worker, preferences), `operators`, `panels`.
"""
from .blender_addon import prefs, props
from . import operators, panels
from .operators import jobrun

_MODULES = (prefs, props, operators, panels)


def register():
    for m in _MODULES:
        m.register()


def unregister():
    # Blender frees a running modal operator of an unregistered class without calling its cancel: end the
    # running jobs (their workers) and their timers first.
    jobrun.stop_all()
    for m in reversed(_MODULES):
        m.unregister()
