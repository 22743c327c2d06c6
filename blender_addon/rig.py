"""The hand armature: its rest layout in numpy (`rig_layout`), then the bpy armature (`write_armature`).

Bones: MANO's 16 joints (``hand_R.wrist``, ``hand_R.index1`` ... ``hand_R.thumb3``) plus five
non-deforming fingertip bones (``hand_R.index4`` ...), named from `core.hand.model`'s tables.
Each bone's rest frame: +Y along the bone (head to tail), +Z towards the back of the hand, so +X is
across the finger and curling a finger is a rotation about its bones' local X axis.
"""
from __future__ import annotations

import contextlib
import dataclasses

import numpy as np

from ..core.hand.model import FINGERS, MANO21_JOINTS, MANO21_PARENTS, N_JOINTS
from . import convert

SIDE_SUFFIX = {"right": "R", "left": "L"}
TIP_LENGTH = 0.5  # fingertip bone length, relative to the last segment of its finger


def bone_name(side: str, joint: str) -> str:
    """``("right", "index1")`` -> ``"hand_R.index1"``."""
    return f"hand_{SIDE_SUFFIX[side]}.{joint}"


def rig_name(side: str, ordinal: int = 1) -> str:
    """Object name stem of one hand: ``hand_R`` / ``hand_L``; the second hand slot of one side (two people's
    right hands in one clip) is ``hand_R2``."""
    return f"hand_{SIDE_SUFFIX[side]}" + (str(ordinal) if ordinal > 1 else "")


@dataclasses.dataclass(frozen=True)
class RigLayout:
    """Rest layout of one hand's armature in armature space (= world: the armature sits at the origin).

    Fields (21 bones: MANO_JOINTS order, then the tips in TIP_NAMES order):
        side: "right" / "left".
        names (21,) str: bone names.
        parents (21,) int64: parent bone index, -1 for the wrist.
        heads (21, 3) float64: bone heads, scene units; heads[:16] are MANO's rest joints.
        tails (21, 3) float64: bone tails, scene units.
        rest_rot (21, 3, 3) float64: bone rest rotations, columns = the bone's local X, Y, Z axes.
        connected (21,) bool: head sits on the parent's tail.
        deform (21,) bool: the 16 MANO bones deform, the tips do not.
    """

    side: str
    names: tuple
    parents: np.ndarray
    heads: np.ndarray
    tails: np.ndarray
    rest_rot: np.ndarray
    connected: np.ndarray
    deform: np.ndarray


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def back_of_hand(joints: np.ndarray, side: str) -> np.ndarray:
    """Unit normal (3,) pointing out of the back of the hand, from rest joints (16, 3) in any frame.

    For a right hand (index1 - wrist) x (pinky1 - wrist) points out of the palm; a left hand is
    its mirror image, so the same product points out of the back.
    """
    n = np.cross(joints[1] - joints[0], joints[7] - joints[0])
    return _unit(n) * (-1.0 if side == "right" else 1.0)


def rig_layout(rest_joints_cam: np.ndarray, rest_tips_cam: np.ndarray, side: str, units: float = 1.0) -> RigLayout:
    """Rest layout of one hand.

    Args:
        rest_joints_cam (16, 3): shaped rest joints, metres, model (= camera) frame, MANO order.
        rest_tips_cam (5, 3): shaped rest fingertip vertices, thumb, index, middle, ring, pinky.
        side: "right" or "left".
        units: scene units per metre.
    Returns:
        RigLayout in world axes.
    """
    # 1. Joints and tips to the world, in MANO-21 order (16 joints, then tips).
    j21 = convert.points_cam_to_world(np.concatenate([rest_joints_cam, rest_tips_cam], 0), units)
    n = len(MANO21_JOINTS)
    parents = MANO21_PARENTS.copy()
    # 2. Tails: the wrist points at middle1; a finger joint at the next joint of its finger (the last
    #    one at the tip); a tip bone continues its finger by TIP_LENGTH of the last segment.
    tails = np.zeros((n, 3))
    tails[0] = j21[4]
    connected = np.zeros(n, bool)
    for chain, tip in FINGERS.values():
        seq = list(chain) + [tip]
        for a, b in zip(seq[:-1], seq[1:]):
            tails[a] = j21[b]
        for b in seq[1:]:
            connected[b] = True
        last = seq[-2]
        tails[tip] = j21[tip] + TIP_LENGTH * (j21[tip] - j21[last])
    # 3. Rest frames: Y along the bone, Z towards the back of the hand, X = Y x Z.
    back = back_of_hand(j21[:N_JOINTS], side)
    y = _unit(tails - j21)
    z = _unit(back[None] - np.sum(back[None] * y, -1, keepdims=True) * y)
    x = np.cross(y, z)
    rest_rot = np.stack([x, y, z], -1)
    return RigLayout(
        side=side,
        names=tuple(bone_name(side, j) for j in MANO21_JOINTS),
        parents=parents,
        heads=j21,
        tails=tails,
        rest_rot=rest_rot,
        connected=connected,
        deform=np.arange(n) < N_JOINTS,
    )


@contextlib.contextmanager
def edit_bones(obj, view_layer):
    """``obj`` (an armature in the view layer's scene) in edit mode, yielding its edit bones; Object mode,
    the active object and the selection come back afterwards. Edit mode needs the object in the view
    layer: it is linked to the scene's master collection for the while, in case its own collection is
    excluded from the view layer."""
    import bpy

    master = view_layer.layer_collection.collection
    extra_link = obj.name not in master.objects
    if extra_link:
        master.objects.link(obj)
    prev_active = view_layer.objects.active
    prev_selected = [o for o in view_layer.objects if o.select_get(view_layer=view_layer)]
    try:
        if bpy.context.mode != "OBJECT" and prev_active is not None:
            bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = obj
        bpy.ops.object.mode_set(mode="EDIT")
        try:
            yield obj.data.edit_bones
        finally:
            bpy.ops.object.mode_set(mode="OBJECT")
    finally:
        if extra_link:
            master.objects.unlink(obj)
        view_layer.objects.active = prev_active
        for o in prev_selected:
            o.select_set(True, view_layer=view_layer)


def write_armature(layout: RigLayout, name: str, collection, view_layer):
    """Create the armature object ``name`` in ``collection`` (bpy); returns the object.

    Bones are created in edit mode; ``view_layer`` is used to make the object active for that and
    its previous active object and mode are restored.
    """
    import bpy

    arm = bpy.data.armatures.new(name)
    arm.display_type = "OCTAHEDRAL"
    obj = bpy.data.objects.new(name, arm)
    obj.show_in_front = True
    collection.objects.link(obj)
    with edit_bones(obj, view_layer) as edit:
        ebones = []
        for i, bname in enumerate(layout.names):
            eb = edit.new(bname)
            eb.head = layout.heads[i].tolist()
            eb.tail = layout.tails[i].tolist()
            eb.align_roll(layout.rest_rot[i][:, 2].tolist())
            eb.use_deform = bool(layout.deform[i])
            ebones.append(eb)
        for i, eb in enumerate(ebones):
            p = int(layout.parents[i])
            if p >= 0:
                eb.parent = ebones[p]
                eb.use_connect = bool(layout.connected[i])
    return obj


def read_rest_rotations(obj, names) -> np.ndarray:
    """Rest rotations (N, 3, 3) of an armature object's bones ``names`` (bpy read-back, in that order)."""
    bones = obj.data.bones
    m = np.empty(len(bones) * 16, np.float32)
    bones.foreach_get("matrix_local", m)  # column-major 4x4 per bone
    m = m.reshape(-1, 4, 4).transpose(0, 2, 1)[:, :3, :3].astype(np.float64)
    index = {b.name: i for i, b in enumerate(bones)}
    return m[[index[n] for n in names]]
