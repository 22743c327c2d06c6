"""Contact refinement's result as bpy data: the refined hands' keys (`plan_refined`, numpy) written as a new,
active action per hand armature (`write_refined`, one bpy step, all or nothing).

Per hand a new Action "<captured action> contact" with the refined pose keys, the channels of the captured
action that refinement does not write, and the keyed custom properties ``contact_penetration_mm`` (mm) and
``contact_<region>`` (0/1) of the armature object, so they show as curves in the Graph Editor. The captured
action is kept with a fake user (to compare, or to blend in the NLA); a re-run replaces its earlier contact
action. Used by `contact.refine_steps`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..core.errors import CaptureError
from ..core.hand.load import load_model
from ..core.io.clip import ClipResult
from . import carry, keying, rig
from . import scene as scene_mod

# The clip's contact regions, in its order (core.contact.refine.REGIONS, docs/clip_format.md).
REGIONS = ("thumb", "index", "middle", "ring", "pinky", "palm")
PROP_PENETRATION = "contact_penetration_mm"
GROUP = "Contact"  # action group of the custom-property curves
CONTACT_TAG = "hand_capture_contact"  # on a contact action: the capture's key
CONTACT_OF = "hand_capture_contact_of"  # on a contact action: the name of the captured action it came from
CONTACT_ARMATURE = "hand_capture_armature"  # on a contact action: the armature it was made for


def region_prop(region: str) -> str:
    """Custom property of a region's contact flag: ``contact_thumb``."""
    return f"contact_{region}"


@dataclasses.dataclass(frozen=True)
class HandResult:
    """Keys of one refined hand: armature (object name), hand (clip index), keys (`keying.HandKeys`),
    penetration_mm (N,) and contact (N, 6) on the keys' frames."""

    armature: str
    hand: int
    keys: keying.HandKeys
    penetration_mm: np.ndarray
    contact: np.ndarray

    def prop_channels(self) -> tuple:
        """(penetration channel, [contact channels]) for `keying.write_channels`."""
        pen = keying.Channel(f'["{PROP_PENETRATION}"]', 0, GROUP, self.penetration_mm.astype(np.float64))
        flags = [keying.Channel(f'["{region_prop(r)}"]', 0, GROUP, self.contact[:, k].astype(np.float64))
                 for k, r in enumerate(REGIONS)]
        return pen, flags


def plan_refined(clip: ClipResult, armatures: dict, frames: np.ndarray, units: float) -> tuple:
    """HandResult per armature ({clip hand index: object name}) from the worker's refined ``clip`` (numpy; loads
    the hand models); frames (T,): the scene frame of each clip frame."""
    if clip.contact is None or clip.penetration_mm is None:
        raise CaptureError("the refined clip has no contact results (contact, penetration_mm): the capture runtime "
                           "is older than the add-on; set it up again in Preferences > Add-ons > Hand Capture")
    out = []
    for h, name in sorted(armatures.items()):
        side = clip.sides[h]
        model = load_model(side, clip.model_path(h))
        betas = np.asarray(clip.betas[h], np.float32)
        layout = rig.rig_layout(model.rest_joints(betas), model.shaped_vertices(betas)[model.tip_vertex_ids],
                                side, units)
        valid = np.asarray(clip.valid[h], bool)
        keys = keying.hand_keys(clip.global_orient[h], clip.hand_pose[h], clip.transl[h], valid, frames, layout,
                                units, cuts=clip.cuts)
        out.append(HandResult(name, h, keys, np.asarray(clip.penetration_mm[h], np.float64)[valid],
                              np.asarray(clip.contact[h], bool)[valid]))
    return tuple(out)


def _captured_action(arm, key: str):
    """(action, slot) the capture keyed on ``arm``: the action it made (named like the armature), else the
    active one when it is not a contact action; (None, None) when there is neither."""
    import bpy

    act = bpy.data.actions.get(arm.name)
    if act is None or not scene_mod.is_owned(act, key):
        ad = arm.animation_data
        act = ad.action if ad is not None and ad.action is not None and CONTACT_TAG not in ad.action else None
    if act is None:
        return None, None
    ad = arm.animation_data
    if ad is not None and ad.action is act and ad.action_slot is not None:
        return act, ad.action_slot
    return act, (act.slots[0] if len(act.slots) else None)


def _contact_actions(arm, key: str) -> list:
    """Earlier contact actions of ``arm`` (made by this module for the capture ``key``, names unchanged)."""
    import bpy

    return [a for a in bpy.data.actions
            if a.get(CONTACT_TAG) == key and a.get(scene_mod.TAG_NAME) == a.name and a.get(CONTACT_ARMATURE) == arm.name]


def write_refined(hands: tuple, key: str) -> dict:
    """Write the refined hands (HandResult per armature) as new, active actions (the one bpy step).

    All or nothing: the actions are made first and removed again on any error; then the commit, which cannot
    fail, adds the custom properties, assigns the actions, gives the captured ones a fake user and removes the
    earlier contact actions nothing else uses. Returns {armature: (new action name, captured action name or None)}.
    """
    import bpy

    made, todo = [], []
    try:
        for hr in hands:
            arm = bpy.data.objects.get(hr.armature)
            if arm is None or arm.type != "ARMATURE" or not scene_mod.is_owned(arm, key):
                raise CaptureError(f"the hand armature {hr.armature!r} was deleted or renamed while the refinement ran; "
                                   f"nothing was written")
            ad = arm.animation_data
            if ad is not None and ad.use_tweak_mode:
                raise CaptureError(f"{arm.name} is in NLA tweak mode: leave it (Tab in the NLA editor) and refine again")
            captured, cslot = _captured_action(arm, key)
            name = f"{captured.name if captured is not None else arm.name} contact"
            act = bpy.data.actions.new(name)
            made.append(act)
            slot = act.slots.new(id_type="OBJECT", name=arm.name)
            keying.write_channels(act, slot, hr.keys.frames, hr.keys.channels(), hold=hr.keys.hold)
            pen, flags = hr.prop_channels()
            keying.write_channels(act, slot, hr.keys.frames, [pen], interpolation="LINEAR")
            keying.write_channels(act, slot, hr.keys.frames, flags, interpolation="CONSTANT")
            if captured is not None and cslot is not None:
                ours = {(c.data_path, c.index) for c in (*hr.keys.channels(), pen, *flags)}
                carry.channels(captured, cslot, act, slot, ours)
            todo.append((arm, act, slot, captured, name, hr))
    except BaseException:
        if made:
            bpy.data.batch_remove(made)
        raise
    out = {}
    for arm, act, slot, captured, name, hr in todo:
        old = _contact_actions(arm, key)
        _add_props(arm)
        ad = arm.animation_data_create()
        ad.action = act
        ad.action_slot = slot
        if captured is not None and not captured.use_fake_user:
            captured.use_fake_user = True  # no user once the contact action is active: kept for the NLA
        gone = [a for a in old if a.users == 0]
        if gone:
            bpy.data.batch_remove(gone)
        act.name = name
        act[CONTACT_TAG] = key
        act[scene_mod.TAG_NAME] = act.name
        act[CONTACT_ARMATURE] = arm.name
        if captured is not None:
            act[CONTACT_OF] = captured.name
        out[arm.name] = (act.name, captured.name if captured is not None else None)
    return out


def _add_props(arm) -> None:
    """The armature object's contact custom properties (animatable floats), where missing."""
    if PROP_PENETRATION not in arm:
        arm[PROP_PENETRATION] = 0.0
        arm.id_properties_ui(PROP_PENETRATION).update(
            min=0.0, soft_max=20.0, description="Deepest hand vertex inside an object or the other hand (mm), "
                                                "after contact refinement")
    for r in REGIONS:
        p = region_prop(r)
        if p not in arm:
            arm[p] = 0.0
            arm.id_properties_ui(p).update(min=0.0, max=1.0, description=f"1 where the {r} is within 2 mm of a "
                                                                         f"surface after contact refinement")
