"""Retarget maths: our hand rig's captured rotations -> a character's finger (and wrist) bone rotations, batched
over frames and bones, numpy only.

Frames of reference. Each rig has its own armature space; a bone's rest rotation ``T0`` (its
``matrix_local``, columns = local X, Y, Z) and its animated armature-space rotation ``W(f)``. Blender poses a
bone inheriting rotation as ``W_b = W_p · T0_p⁻¹ · T0_b · L_b``, so its local (pose-bone) rotation is

    L_b(f) = T0_b⁻¹ · T0_p · W_p(f)⁻¹ · W_b(f)                                          (local_rotations)

(bones between p and b held at rest cancel, so p may be the nearest animated ancestor).

Fingers, relative to the hand. The source's finger rotations are taken with its wrist held at rest
(``Srel_b = S0_w · S_w(f)⁻¹ · S_b(f)``); the rest alignment ``A`` (a rotation, `hand_alignment`) maps our
rig's rest hand onto the character's (wrist-to-knuckle directions and the palm's normal). The rest-aligned
formula ``R_target(f) = R_source(f) · R_source,rest⁻¹ · R_target,rest``, in the character's space, is

    W_b(f) = A · Srel_b(f) · S0_b⁻¹ · A⁻¹ · T0_b

and `local_rotations` turns it into each target bone's local rotation against its parent's animated rotation
(the previous finger bone's result; the first finger bone's parent chain is the character's own hand, so a
finger moves with whatever the character's hand does). Target bone rolls and rest poses (T, A, curled) enter
through ``T0``. Metacarpals with no source are keyed at rest.

Wrist (mode WRIST). The hand bone's armature-space rotation is the source wrist seen from the character:
``H(f) = M · S_w(f) · S0_w⁻¹ · A⁻¹ · T0_h`` where ``M`` maps the capture's space (the camera's world: Z up,
camera looking down +Y) into the character's armature space (`wrist_orientation`), then its local rotation
against the character's animated forearm (the hand bone's parent, evaluated by the caller).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import CaptureError
from ..hand.model import MANO_JOINTS, MANO_PARENTS
from . import maths
from .mapping import Skeleton
from .rigs import FINGER_NAMES

WRIST_MODES = ("FINGERS", "WRIST")
# Camera-to-character orientations: how the capture's space maps onto the character's (Blender characters stand
# Z up facing -Y).
ORIENTATIONS = ("FACING", "FIRST_PERSON", "REST")
KNUCKLE_FINGERS = ("index", "middle", "ring", "pinky")


@dataclasses.dataclass(frozen=True)
class SourceHand:
    """One captured hand on our rig (MANO_JOINTS order), armature space.

    side: "right" / "left". rest (16, 3, 3): bone rest rotations. heads (16, 3): rest heads, scene units.
    local (F, 16, 4): pose-bone quaternions (w, x, y, z) on the retargeted frames.
    """

    side: str
    rest: np.ndarray
    heads: np.ndarray
    local: np.ndarray


@dataclasses.dataclass(frozen=True)
class Options:
    """fingers: the enabled fingers (`rigs.FINGER_NAMES`); strength in [0, 1]: every keyed rotation slerped from
    rest (0) to the retargeted one (1); wrist: "FINGERS" (fingers only) or "WRIST" (also the hand bone, against
    the character's forearm); orientation: camera-to-character (`ORIENTATIONS`), for WRIST:
    FACING (the performer faced the camera as the character faces the front view), FIRST_PERSON (the camera saw
    the hands from the performer's eyes), REST (our rig's rest wrist is the character's rest hand)."""

    fingers: tuple = FINGER_NAMES
    strength: float = 1.0
    wrist: str = "FINGERS"
    orientation: str = "FACING"

    def __post_init__(self):
        if self.wrist not in WRIST_MODES or self.orientation not in ORIENTATIONS:
            raise CaptureError(f"unknown wrist mode {self.wrist!r} / orientation {self.orientation!r}: use "
                               f"{' or '.join(WRIST_MODES)} and one of {', '.join(ORIENTATIONS)}")
        if not 0.0 <= self.strength <= 1.0:
            raise CaptureError(f"retarget strength {self.strength} is outside 0..1: pick a strength from 0 to 1")
        bad = [f for f in self.fingers if f not in FINGER_NAMES]
        if bad:
            raise CaptureError(f"unknown fingers {', '.join(bad)}: pick from {', '.join(FINGER_NAMES)}")


def source_world(rest: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Armature-space rotations (F, 16, 3, 3) of our rig's bones: rest (16, 3, 3), local (F, 16, 4) quaternions.

    W_0 = T0_0 · L_0; W_b = W_p · T0_p⁻¹ · T0_b · L_b (MANO_PARENTS order: a parent precedes its children).
    """
    lm = maths.quat_to_mat(local)
    w = np.empty_like(lm)
    w[:, 0] = rest[0] @ lm[:, 0]
    for b in range(1, len(MANO_JOINTS)):
        p = MANO_PARENTS[b]
        w[:, b] = w[:, p] @ (rest[p].T @ rest[b]) @ lm[:, b]
    return w


def local_rotations(world: np.ndarray, rest: np.ndarray, parent_world: np.ndarray, parent_rest: np.ndarray) -> np.ndarray:
    """Local (pose-bone) rotations (F, B, 3, 3) of bones whose armature-space rotations are ``world`` (F, B, 3, 3),
    with rest rotations ``rest`` (B, 3, 3), parents' animated rotations ``parent_world`` (F, B, 3, 3) and the
    parents' rest rotations ``parent_rest`` (B, 3, 3): L = rest⁻¹ · parent_rest · parent_world⁻¹ · world."""
    return (np.swapaxes(rest, -1, -2) @ parent_rest) @ np.swapaxes(parent_world, -1, -2) @ world


def hand_alignment(src: SourceHand, skel: Skeleton, slots: dict) -> np.ndarray:
    """Rest alignment A (3, 3): the rotation from our rig's armature space to the character's that best maps our
    rest hand onto the character's: wrist -> knuckle directions (index ... pinky, the first finger bones' heads;
    the thumb's too when fewer than two are mapped) and the palm's normal (their first and last, weighted 2).

    slots: {slot: bone index} of one side (`mapping.validate`); needs ``wrist``.
    """
    fingers = [f for f in KNUCKLE_FINGERS if f"{f}1" in slots]
    if len(fingers) < 2:
        fingers = [f for f in FINGER_NAMES if f"{f}1" in slots]
    if len(fingers) < 2:
        raise CaptureError("the retarget needs at least two fingers enabled to line the hands up at rest: enable "
                           "more fingers")
    sw = src.heads[0]
    tw = skel.heads[slots["wrist"]]
    s = np.stack([src.heads[MANO_JOINTS.index(f"{f}1")] - sw for f in fingers])
    t = np.stack([skel.heads[slots[f"{f}1"]] - tw for f in fingers])
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    ns, nt = np.cross(s[0], s[-1]), np.cross(t[0], t[-1])
    s = np.concatenate([s, (ns / np.linalg.norm(ns))[None]])
    t = np.concatenate([t, (nt / np.linalg.norm(nt))[None]])
    return maths.kabsch(s, t, np.r_[np.ones(len(fingers)), 2.0])


def wrist_orientation(orientation: str, object_rot: np.ndarray, align: np.ndarray) -> np.ndarray:
    """M (3, 3): the capture's space -> the character's armature space. object_rot (3, 3): the character
    armature object's world rotation; align (3, 3): `hand_alignment` (used by REST)."""
    if orientation == "REST":
        return align
    turn = np.eye(3) if orientation == "FACING" else maths.axis_rotation(2, np.pi)
    return object_rot.T @ turn


@dataclasses.dataclass(frozen=True)
class HandResult:
    """One hand's target rotations: names (B,) target bones, slots (B,) their slots, quats (F, B, 4) local
    rotations (w, x, y, z), sign-continuous over F; align (3, 3) the rest alignment used."""

    names: tuple
    slots: tuple
    quats: np.ndarray
    align: np.ndarray


def retarget_hand(src: SourceHand, skel: Skeleton, slots: dict, options: Options = Options(),
                  parent_world: np.ndarray | None = None, object_rot: np.ndarray | None = None) -> HandResult:
    """Local rotations of the character's bones for one captured hand.

    Args:
        src: the captured hand (F frames).
        skel: the character's skeleton.
        slots: {slot: bone index} of this side, from `mapping.validate` (the enabled fingers, the wrist).
        options: fingers, strength, wrist mode and orientation.
        parent_world (F, 3, 3): the animated armature-space rotation of the hand bone's parent (the forearm) on
            the same frames; needed for wrist mode WRIST.
        object_rot (3, 3): the character armature object's world rotation (WRIST with FACING / FIRST_PERSON).
    Returns:
        HandResult: the wrist bone first when keyed, then per enabled finger its metacarpal (at rest) and the
        three finger bones.
    """
    n_frames = src.local.shape[0]
    a = hand_alignment(src, skel, slots)
    s_world = source_world(src.rest, src.local)  # (F, 16, 3, 3)
    s_rel = src.rest[0] @ np.swapaxes(s_world[:, :1], -1, -2) @ s_world  # wrist held at rest
    d_src = s_rel @ np.swapaxes(src.rest, -1, -2)  # (F, 16, 3, 3): each bone's turn from rest, hand-relative
    entries = []  # (slot, bone, source joint or -1, parent entry or -1)
    for f in options.fingers:
        prev = -1
        for n in (0, 1, 2, 3):
            slot = f"{f}{n}"
            if slot not in slots:
                continue
            entries.append((slot, slots[slot], MANO_JOINTS.index(slot) if n else -1, prev if n else -1))
            if n:
                prev = len(entries) - 1
    bones = np.array([e[1] for e in entries], np.int64)
    t0 = skel.rest[bones]  # (B, 3, 3)
    world = np.empty((n_frames, len(entries), 3, 3))
    eye = np.broadcast_to(np.eye(3), (n_frames, 3, 3))
    for k, (_, b, j, _) in enumerate(entries):
        world[:, k] = (a @ d_src[:, j] @ a.T @ t0[k]) if j >= 0 else t0[k]
    pw = np.empty_like(world)
    pr = np.empty((len(entries), 3, 3))
    for k, (_, _, j, pe) in enumerate(entries):
        if pe >= 0:  # the previous finger bone: animated (bones between them at rest cancel)
            pw[:, k], pr[k] = world[:, pe], t0[pe]
        else:  # the first finger bone / metacarpal: its parents are the character's own hand chain
            pw[:, k], pr[k] = eye, np.eye(3)
    local = local_rotations(world, t0, pw, pr)
    names = [skel.names[e[1]] for e in entries]
    used = [e[0] for e in entries]
    if options.wrist == "WRIST":
        h = slots["wrist"]
        p = int(skel.parents[h])
        if parent_world is None or p < 0:
            raise CaptureError(f"the wrist mode needs the hand bone {skel.names[h]}'s parent (forearm) rotation: "
                               f"use Fingers Only")
        m = wrist_orientation(options.orientation, np.eye(3) if object_rot is None else object_rot, a)
        src_rest_w = src.rest[0]
        hw = m @ s_world[:, 0] @ src_rest_w.T @ a.T @ skel.rest[h]  # (F, 3, 3)
        lw = local_rotations(hw[:, None], skel.rest[h][None], np.asarray(parent_world)[:, None], skel.rest[p][None])
        local = np.concatenate([lw, local], 1)
        names, used = [skel.names[h]] + names, ["wrist"] + used
    q = maths.mat_to_quat(local)
    if options.strength < 1.0:
        q = maths.quat_power(q, options.strength)
    return HandResult(tuple(names), tuple(used), maths.sign_continuous(q, axis=0), a)


def rotation_channels(quats: np.ndarray, mode: str) -> tuple:
    """A bone's rotation keys in its own rotation mode: (pose-bone property, values (F, k)).

    quats (F, 4) local rotations; mode QUATERNION -> rotation_quaternion (F, 4); XYZ ... ZYX -> rotation_euler
    (F, 3), unwrapped over F; AXIS_ANGLE -> rotation_axis_angle (F, 4) (angle, x, y, z).
    """
    if mode == "QUATERNION":
        return "rotation_quaternion", maths.sign_continuous(quats, axis=0)
    if mode == "AXIS_ANGLE":
        return "rotation_axis_angle", maths.quat_to_axis_angle(quats)
    if mode in maths.EULER_ORDERS:
        return "rotation_euler", np.unwrap(maths.mat_to_euler(maths.quat_to_mat(quats), mode), axis=0)
    raise CaptureError(f"unknown bone rotation mode {mode!r}")
