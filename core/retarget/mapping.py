"""A mapping from our hand rig's joints to a character's bones (per side), its check against the character's
skeleton, and its preset file (JSON).

`Skeleton` is the character's rest skeleton as arrays (the add-on reads it from bpy); `validate` finds every
problem of a mapping at once and raises one `CaptureError` sentence naming the bones.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ..errors import CaptureError
from .rigs import FINGER_NAMES, META_SLOTS, PRESETS, SIDES, SLOTS, looks_like_end, preset_bones, side_of

FILE_FORMAT = "hand_capture.retarget_mapping"


@dataclasses.dataclass(frozen=True)
class Skeleton:
    """A character's rest skeleton, armature space.

    names (N,) str; parents (N,) int64 (-1 for a root); rest (N, 3, 3) float64 bone rest rotations (columns =
    the bone's local X, Y, Z axes: ``Bone.matrix_local``); heads (N, 3) float64 rest heads, scene units;
    modes (N,) str: pose-bone rotation modes (QUATERNION, XYZ ... ZYX, AXIS_ANGLE).
    """

    names: tuple
    parents: np.ndarray
    rest: np.ndarray
    heads: np.ndarray
    modes: tuple

    def index(self, name: str) -> int:
        return self.names.index(name)

    def has_children(self) -> np.ndarray:
        """(N,) bool: the bone has at least one child."""
        out = np.zeros(len(self.names), bool)
        p = self.parents[self.parents >= 0]
        out[p] = True
        return out

    def is_ancestor(self, a: int, b: int) -> bool:
        """Whether bone ``a`` is a (strict) ancestor of bone ``b``."""
        p = int(self.parents[b])
        while p >= 0:
            if p == a:
                return True
            p = int(self.parents[p])
        return False


@dataclasses.dataclass(frozen=True)
class Mapping:
    """Target bone names per side and slot (`rigs.SLOTS`); an empty or absent slot is not mapped.

    name: the preset id it came from, or "CUSTOM". bones: {"right": {slot: bone}, "left": {slot: bone}}.
    """

    name: str
    bones: dict

    def bone(self, side: str, slot: str) -> str:
        return self.bones.get(side, {}).get(slot, "") or ""


def from_preset(preset: str, bone_names=()) -> Mapping:
    """The mapping of ``preset`` for both sides (`rigs.PRESETS`), completed with the rig's ``bone_names``."""
    return Mapping(preset, {side: preset_bones(preset, side, bone_names) for side in SIDES})


def validate(mapping: Mapping, skel: Skeleton, sides, fingers=FINGER_NAMES, wrist: bool = False,
             target: str = "the character") -> dict:
    """Check ``mapping`` on ``skel`` for the hands ``sides`` and the enabled ``fingers``; {side: {slot: bone
    index}} of the slots to use (the wrist always: its head anchors the hands' rest alignment).

    Refused, all problems in one CaptureError sentence: slots left empty, bones the rig lacks, bones named
    for the other side, end / tip bones with no children, a finger's bones not one chain (metacarpal above
    the first bone, each bone above the next), a bone mapped twice.
    """
    index = {n: i for i, n in enumerate(skel.names)}
    has_children = skel.has_children()
    empty, missing, wrong, leaf, chain, twice = [], [], [], [], [], []
    used, out = {}, {}
    for side in sides:
        slots = {}
        wanted = ["wrist"] + [s for s in SLOTS if s[:-1] in fingers]
        for slot in wanted:
            name = mapping.bone(side, slot)
            if not name:
                if slot not in META_SLOTS:
                    empty.append(f"{side} {slot}")
                continue
            if name not in index:
                missing.append(name)
                continue
            i = index[name]
            if side_of(name) not in (None, side):
                wrong.append(f"{name} (for the {side} {slot})")
            if slot != "wrist" and not has_children[i] and looks_like_end(name):
                leaf.append(name)
            if name in used and used[name] != (side, slot):
                twice.append(name)
            used[name] = (side, slot)
            slots[slot] = i
        for f in fingers:
            seq = [f"{f}{n}" for n in (0, 1, 2, 3) if f"{f}{n}" in slots]
            for a, b in zip(seq[:-1], seq[1:]):
                if not skel.is_ancestor(slots[a], slots[b]):
                    chain.append(f"{skel.names[slots[a]]} -> {skel.names[slots[b]]}")
        out[side] = slots
    parts = []
    for label, items in (("not mapped", empty), ("missing from the rig", missing), ("named for the other side", wrong),
                         ("end bones that move nothing", leaf), ("not one chain (the first is not a parent of the "
                                                                 "second)", chain), ("mapped twice", twice)):
        if items:
            parts.append(f"{label}: {', '.join(dict.fromkeys(items))}")
    if parts:
        label = PRESETS[mapping.name][0] if mapping.name in PRESETS else "custom"
        raise CaptureError(f"the {label} mapping does not fit {target} ({'; '.join(parts)}): fix "
                           f"these bones in the Retarget mapping or pick another preset; nothing was changed")
    if wrist:
        for side in sides:
            if skel.parents[out[side]["wrist"]] < 0:
                raise CaptureError(f"the hand bone {skel.names[out[side]['wrist']]} of {target} has no parent (no "
                                   f"forearm) to turn the wrist against: use Fingers Only; nothing was changed")
    return out


def to_json(mapping: Mapping) -> str:
    """The mapping as a preset file's text."""
    bones = {side: {s: b for s, b in mapping.bones.get(side, {}).items() if b} for side in SIDES}
    return json.dumps({"format": FILE_FORMAT, "version": 1, "name": mapping.name, "bones": bones}, indent=2)


def from_json(text: str, source: str = "the preset file") -> Mapping:
    """A mapping from a preset file's text; unknown slots or sides are refused."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CaptureError(f"{source} is not a retarget mapping (JSON error: {exc}): save one from the Retarget "
                           f"panel") from None
    if not isinstance(data, dict) or data.get("format") != FILE_FORMAT or not isinstance(data.get("bones"), dict):
        raise CaptureError(f"{source} is not a retarget mapping (no \"format\": \"{FILE_FORMAT}\" with \"bones\"): "
                           f"save one from the Retarget panel")
    bad = [f"{side}.{slot}" for side, m in data["bones"].items() for slot in (m if isinstance(m, dict) else {"?": 0})
           if side not in SIDES or slot not in SLOTS]
    if bad:
        raise CaptureError(f"{source} names unknown slots {', '.join(bad)}: slots are {', '.join(SLOTS)} per side "
                           f"(right, left)")
    name = str(data.get("name") or "CUSTOM")
    return Mapping(name if name in PRESETS else "CUSTOM",
                   {side: {k: str(v) for k, v in data["bones"].get(side, {}).items()} for side in SIDES})


def save(mapping: Mapping, path) -> Path:
    path = Path(path)
    path.write_text(to_json(mapping) + "\n", encoding="utf-8")
    return path


def load(path) -> Mapping:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CaptureError(f"cannot read the retarget mapping {path} ({exc.strerror}): pick an existing preset "
                           f"file") from None
    return from_json(text, str(path))
