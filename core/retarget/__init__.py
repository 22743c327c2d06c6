"""Retargeting (issue 11): captured hands onto character rigs, numpy only (Blender's own Python runs it).

Modules: `rigs` (presets by bone-name pattern: Rigify generated rig and metarig, Mixamo, Unreal 5 mannequin,
VRM 1.0, VRoid; detection; side and end-bone names), `mapping` (`Skeleton`, `Mapping`, `validate`, the JSON
preset file), `solve` (the rest-aligned rotations in each target bone's local frame, wrist modes, rotation
modes), `maths` (quaternions, Euler angles in Blender's conventions, rigid alignment). The add-on's
`blender_addon/retarget.py` reads the rigs from bpy and writes the keys.
"""
