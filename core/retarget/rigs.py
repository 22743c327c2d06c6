"""Character rig presets: which target bone takes each of our hand's joints, by name pattern, and detection of
the preset that fits a rig from its bone names.

Slots (the source side of a mapping, per hand): ``wrist`` (the hand bone), ``<finger>1..3`` for the five
fingers (our rig's MANO joints: ``thumb1`` is the thumb's CMC joint, so it takes Rigify ``thumb.01``,
Mixamo ``Thumb1``, Unreal ``thumb_01``, VRM 1.0 ``ThumbMetacarpal``), and ``<finger>0`` for the metacarpals of
index ... pinky, which have no MANO source and are held at rest. End bones (Mixamo ``...4``, ``_end``) are
never mapped.
"""
from __future__ import annotations

import re

from ..errors import CaptureError

FINGER_NAMES = ("thumb", "index", "middle", "ring", "pinky")
FINGER_SLOTS = tuple(f"{f}{n}" for f in FINGER_NAMES for n in (1, 2, 3))
META_SLOTS = tuple(f"{f}0" for f in FINGER_NAMES[1:])
SLOTS = ("wrist",) + META_SLOTS + FINGER_SLOTS
SIDES = ("right", "left")


def _rigify(side: str, generated: bool) -> dict:
    s = "L" if side == "left" else "R"
    out = {"wrist": f"hand_fk.{s}" if generated else f"hand.{s}"}
    for f in FINGER_NAMES:
        for n in (1, 2, 3):
            out[f"{f}{n}"] = f"thumb.0{n}.{s}" if f == "thumb" else f"f_{f}.0{n}.{s}"
    if not generated:  # the metarig's palm bones; the generated rig's palm controls are not in the finger chains
        out.update({f"{f}0": f"palm.0{i}.{s}" for i, f in enumerate(FINGER_NAMES[1:], 1)})
    return out


def _mixamo(side: str, prefix: str = "mixamorig:") -> dict:
    hand = f"{prefix}{'Left' if side == 'left' else 'Right'}Hand"
    out = {"wrist": hand}
    for f in FINGER_NAMES:
        for n in (1, 2, 3):
            out[f"{f}{n}"] = f"{hand}{f.capitalize()}{n}"
    return out


def _unreal(side: str) -> dict:
    s = "l" if side == "left" else "r"
    out = {"wrist": f"hand_{s}"}
    for f in FINGER_NAMES:
        for n in (1, 2, 3):
            out[f"{f}{n}"] = f"{f}_0{n}_{s}"
    out.update({f"{f}0": f"{f}_metacarpal_{s}" for f in FINGER_NAMES[1:]})
    return out


_VRM_FINGER = {"thumb": "Thumb", "index": "Index", "middle": "Middle", "ring": "Ring", "pinky": "Little"}


def _vrm(side: str) -> dict:
    out = {"wrist": f"{side}Hand"}
    for f, name in _VRM_FINGER.items():
        parts = ("Metacarpal", "Proximal", "Distal") if f == "thumb" else ("Proximal", "Intermediate", "Distal")
        for n, part in enumerate(parts, 1):
            out[f"{f}{n}"] = f"{side}{name}{part}"
    return out


def _vroid(side: str) -> dict:
    s = "L" if side == "left" else "R"
    out = {"wrist": f"J_Bip_{s}_Hand"}
    for f, name in _VRM_FINGER.items():
        for n in (1, 2, 3):
            out[f"{f}{n}"] = f"J_Bip_{s}_{name}{n}"
    return out


# Preset id -> (label, function(side) -> {slot: bone name}). Detection tries them in this order.
PRESETS = {
    "RIGIFY": ("Rigify (generated rig)", lambda side: _rigify(side, True)),
    "RIGIFY_META": ("Rigify metarig", lambda side: _rigify(side, False)),
    "MIXAMO": ("Mixamo", _mixamo),
    "UNREAL": ("Unreal 5 mannequin", _unreal),
    "VRM": ("VRM 1.0 humanoid", _vrm),
    "VROID": ("VRoid", _vroid),
}
_MIXAMO_PREFIX = re.compile(r"^(.*?)(?:Left|Right)HandIndex1$")


def mixamo_prefix(bone_names) -> str:
    """The namespace of Mixamo bone names (``mixamorig:``, ``mixamorig1:`` or none), from ``...HandIndex1``."""
    for n in bone_names:
        m = _MIXAMO_PREFIX.match(n)
        if m:
            return m.group(1)
    return "mixamorig:"


def preset_bones(preset: str, side: str, bone_names=()) -> dict:
    """{slot: target bone name} of ``preset`` for one ``side`` ("right" / "left"); ``bone_names`` (the rig's)
    fix a preset's variable parts (the Mixamo namespace)."""
    if preset not in PRESETS:
        raise CaptureError(f"unknown rig preset {preset!r}: use one of {', '.join(PRESETS)}")
    if preset == "MIXAMO":
        return _mixamo(side, mixamo_prefix(bone_names))
    return PRESETS[preset][1](side)


def detect(bone_names) -> str | None:
    """The preset whose finger bones (all 15 of at least one hand) the rig has, the most matching names winning;
    None when no preset fits. A generated Rigify rig is told from its metarig by its ``DEF-`` finger bones."""
    names = set(bone_names)
    best, best_score = None, 0
    for preset in PRESETS:
        if preset == "RIGIFY" and not any(f"DEF-f_index.01.{s}" in names for s in "LR"):
            continue
        if preset == "RIGIFY_META" and any(f"DEF-f_index.01.{s}" in names for s in "LR"):
            continue
        score, complete = 0, False
        for side in SIDES:
            bones = preset_bones(preset, side, names)
            fingers = sum(bones[s] in names for s in FINGER_SLOTS)
            complete |= fingers == len(FINGER_SLOTS)
            score += sum(b in names for b in bones.values())
        if complete and score > best_score:
            best, best_score = preset, score
    return best


_LEFT = re.compile(r"(^|[^a-z])left|Left|(^|[._\-: ])[Ll]($|[._\-: ])|[a-z0-9](L)$")
_RIGHT = re.compile(r"(^|[^a-z])right|Right|(^|[._\-: ])[Rr]($|[._\-: ])|[a-z0-9](R)$")


def side_of(name: str) -> str | None:
    """The side a bone name says ("left" / "right"), None when it says none or both: ``.L``, ``_l``, ``L_``,
    ``Left``, ``left``, ``J_Bip_L_``, ``HandL``."""
    left, right = bool(_LEFT.search(name)), bool(_RIGHT.search(name))
    if left == right:
        return None
    return "left" if left else "right"


_END = re.compile(r"(_end|\.end|end|_tip|\.tip|nub|_null|[a-z]4)$", re.IGNORECASE)
_SIDE_TOKEN = re.compile(r"([._\-: ](L|R|l|r))$|^(L|R|l|r)[._\-: ]")


def looks_like_end(name: str) -> bool:
    """Whether a bone name reads as a chain's end / tip bone (``...Index4``, ``_end``, ``_tip``, ``Nub``), side
    tokens aside."""
    return bool(_END.search(_SIDE_TOKEN.sub("", name)))
