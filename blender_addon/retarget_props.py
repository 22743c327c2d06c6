"""Retarget settings saved with the .blend (``Scene.hand_capture.retarget``): the character, the preset, the
custom mapping the user edits (one row per hand and slot), fingers, strength, wrist mode; the same options on
the retarget operator (defined once here)."""
from __future__ import annotations

import bpy

from ..core.retarget.mapping import Mapping
from ..core.retarget.rigs import FINGER_NAMES, PRESETS, SIDES, SLOTS

MAPPING_ITEMS = (("AUTO", "Automatic", "The preset that fits the character's bone names"),
                 *((k, label, f"{label} bone names") for k, (label, _) in PRESETS.items()),
                 ("CUSTOM", "Custom", "The mapping edited in the Retarget panel (saved with the file)"))
FINGER_ITEMS = tuple((f.upper(), f.capitalize(), f"Retarget the {f}") for f in FINGER_NAMES)
WRIST_ITEMS = (("FINGERS", "Fingers Only", "Key the fingers; the character's hand keeps its own animation"),
               ("WRIST", "Fingers and Wrist", "Also key the hand bone, turning against the character's forearm as "
                                              "the captured wrist turned"))
ORIENTATION_ITEMS = (("FACING", "Facing the Camera", "The performer faced the camera as the character faces the "
                                                     "front view (-Y)"),
                     ("FIRST_PERSON", "First Person", "The camera saw the hands from the performer's eyes"),
                     ("REST", "Rest to Rest", "The captured rest hand is the character's rest hand"))


def option_properties() -> dict:
    """Fingers, strength, wrist mode, orientation (fresh definitions per call)."""
    p = bpy.props
    return {
        "fingers": p.EnumProperty(name="Fingers", items=FINGER_ITEMS, options={"ENUM_FLAG"},
                                  default={i[0] for i in FINGER_ITEMS}, description="Fingers to retarget"),
        "strength": p.FloatProperty(name="Strength", default=1.0, min=0.0, max=1.0, subtype="FACTOR",
                                    description="From the character's rest pose (0) to the captured motion (1)"),
        "wrist": p.EnumProperty(name="Wrist", items=WRIST_ITEMS, default="FINGERS"),
        "orientation": p.EnumProperty(name="Camera", items=ORIENTATION_ITEMS, default="FACING",
                                      description="Where the camera was relative to the performer (for the wrist)"),
    }


OPTION_KEYS = tuple(option_properties())


class HandCaptureRetargetBone(bpy.types.PropertyGroup):
    """One row of the custom mapping: our hand's slot -> the character's bone."""

    __annotations__ = {
        "side": bpy.props.EnumProperty(name="Side", items=tuple((s.upper(), s.capitalize(), "") for s in SIDES)),
        "slot": bpy.props.StringProperty(name="Joint", description="Our hand's joint (wrist, thumb1 ... pinky3, "
                                                                   "index0 ... pinky0 = metacarpals, held at rest)"),
        "bone": bpy.props.StringProperty(name="Bone", description="The character's bone (empty: not mapped)"),
    }


class HandCaptureRetargetSettings(bpy.types.PropertyGroup):
    """Scene.hand_capture.retarget."""

    __annotations__ = {
        "target": bpy.props.PointerProperty(name="Character", type=bpy.types.Object,
                                            poll=lambda self, o: o.type == "ARMATURE",
                                            description="The character's armature"),
        "mapping": bpy.props.EnumProperty(name="Mapping", items=MAPPING_ITEMS, default="AUTO"),
        "bones": bpy.props.CollectionProperty(type=HandCaptureRetargetBone),
        **option_properties(),
    }


def custom_mapping(settings) -> Mapping | None:
    """The panel's custom mapping (None when it has no rows)."""
    if not len(settings.bones):
        return None
    bones = {side: {} for side in SIDES}
    for row in settings.bones:
        if row.slot in SLOTS:
            bones[row.side.lower()][row.slot] = row.bone
    return Mapping("CUSTOM", bones)


def set_custom_mapping(settings, mapping: Mapping) -> None:
    """Fill the panel's custom mapping with every slot of both sides from ``mapping``."""
    settings.bones.clear()
    for side in SIDES:
        for slot in SLOTS:
            row = settings.bones.add()
            row.side, row.slot, row.bone = side.upper(), slot, mapping.bone(side, slot)


def copy_options(src, dst) -> None:
    for k in OPTION_KEYS:
        setattr(dst, k, getattr(src, k))


classes = (HandCaptureRetargetBone, HandCaptureRetargetSettings)


FINGER_ITEMS_ORDER = tuple(i[0] for i in FINGER_ITEMS)


def mapping_label(name: str) -> str:
    """A mapping's name for people: the preset's label, or "custom"."""
    return PRESETS[name][0] if name in PRESETS else "custom"
