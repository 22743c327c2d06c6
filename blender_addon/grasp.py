"""Grasp lock (issue 10 item 4): an object placed once in the captured hand follows it, keyed, over chosen frames.

The animator places the object where the hand holds it at one frame (the reference). `lock_plan` reads the hand
there: the palm (vertices skinned mostly to the wrist) and the contacts (vertices within ``touch_m`` of the
object's surface) are the anchors. On every frame of the range the hand's evaluated mesh gives the anchors'
new places; a weighted rigid fit (Kabsch, `rigid_fit`) of the reference anchors onto them is the hand's motion
G_f, and the object's world matrix is G_f @ M_ref. `write_lock` keys it on the object (location, rotation in
its rotation mode, scale; in its parent's space), replacing the object's own transform keys inside the range
and keeping those outside. Contact refinement (`contact`) then follows the keyed object like any other.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..core.errors import CaptureError
from . import scene as scene_mod

TOUCH_M = 0.005  # a hand vertex this near the object's surface at the reference frame is a contact


def rigid_fit(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Rigid transforms (T, 4, 4) that best map points src (P, 3) onto dst (T, P, 3) (weighted least squares,
    Kabsch with the reflection removed); weights (P,) >= 0 (None: equal)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    cs = w @ src  # (3,)
    cd = np.einsum("p,tpk->tk", w, dst)  # (T, 3)
    h = np.einsum("p,pi,tpj->tij", w, src - cs, dst - cd[:, None])  # (T, 3, 3) cross-covariance
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.einsum("tji,tkj->tik", vt, u)))  # det(V U^T)
    fix = np.repeat(np.eye(3)[None], len(dst), 0)
    fix[:, 2, 2] = d
    r = np.einsum("tji,tjk,tlk->til", vt, fix, u)  # V diag(1, 1, d) U^T
    out = np.repeat(np.eye(4)[None], len(dst), 0)
    out[:, :3, :3] = r
    out[:, :3, 3] = cd - np.einsum("tij,j->ti", r, cs)
    return out


@dataclasses.dataclass(frozen=True)
class LockPlan:
    """What `write_lock` keys: obj (name), frames (N,) int, basis (N, 4, 4) the object's matrix_basis per frame
    (its transform in its parent's space), hand (the mesh object followed), anchors (palm, contacts) counts,
    residual_mm (N,) the rigid fit's RMS error per frame (how rigidly the anchors moved)."""

    obj: str
    frames: np.ndarray
    basis: np.ndarray
    hand: str
    anchors: tuple
    residual_mm: np.ndarray


def _matrix(m) -> np.ndarray:
    return np.array([list(r) for r in m], np.float64)


def _mesh_world(obj, depsgraph) -> np.ndarray:
    from .skin import evaluated_vertices

    return evaluated_vertices(obj, depsgraph)


def _palm(hand_mesh) -> np.ndarray:
    """Ids of the hand mesh's vertices skinned mostly to the wrist bone (the palm)."""
    wrist = next((g.index for g in hand_mesh.vertex_groups if g.name.endswith(".wrist")), None)
    if wrist is None:
        raise CaptureError(f"{hand_mesh.name} has no wrist vertex group; capture or import the clip again")
    out = []
    for v in hand_mesh.data.vertices:
        best = max(v.groups, key=lambda g: g.weight, default=None)
        if best is not None and best.group == wrist:
            out.append(v.index)
    return np.asarray(out, np.int64)


def _distances(obj, points_world: np.ndarray, depsgraph) -> np.ndarray:
    """Distance (N,) of world points to ``obj``'s evaluated surface (bpy BVH tree)."""
    from mathutils import Vector
    from mathutils.bvhtree import BVHTree

    tree = BVHTree.FromObject(obj, depsgraph)
    inv = np.linalg.inv(_matrix(obj.matrix_world))
    local = points_world @ inv[:3, :3].T + inv[:3, 3]
    mw = _matrix(obj.matrix_world)
    out = np.full(len(local), np.inf)
    for i, p in enumerate(local):
        hit = tree.find_nearest(Vector(p))
        if hit[0] is not None:
            out[i] = np.linalg.norm(mw[:3, :3] @ (np.array(hit[0]) - p))
    return out


def hand_meshes(scene) -> list:
    """The captured hand meshes of the scene (the add-on's own, skinned to one of its armatures)."""
    return [o for o in scene.objects if o.type == "MESH" and o.parent is not None and o.parent.type == "ARMATURE"
            and scene_mod.TAG in o and scene_mod.is_owned(o, o[scene_mod.TAG])
            and scene_mod.is_owned(o.parent, o[scene_mod.TAG])]


def lock_plan(scene, view_layer, obj, first: int, last: int, touch_m: float = TOUCH_M) -> LockPlan:
    """Plan the lock of ``obj`` over scene frames ``first``..``last`` to the captured hand nearest to it at the
    scene's current frame, the reference (bpy reads; the frame is restored). Raises CaptureError for a bad
    range, an object of the add-on's, a constrained or linked object, no hand touching it."""
    import bpy

    if obj is None or obj.type != "MESH":
        raise CaptureError("select the mesh object the hand holds (the active object), placed in the hand")
    if scene_mod.TAG in obj:
        raise CaptureError(f"{obj.name} is part of a capture; select the object the hand holds")
    if obj.library is not None:
        raise CaptureError(f"{obj.name} is linked from a library and cannot be keyed here")
    if any(c.enabled for c in obj.constraints):
        raise CaptureError(f"{obj.name} has constraints, which would move it away from the keys: disable them, "
                           f"then lock")
    if not 0 < first <= last:
        raise CaptureError(f"lock frames must be 1 or more, first before last; got {first}..{last}")
    ref = scene.frame_current
    if not first <= ref <= last:
        raise CaptureError(f"the current frame {ref} (where the object is placed in the hand) must lie in the lock "
                           f"frames {first}..{last}")
    with bpy.context.temp_override(scene=scene, view_layer=view_layer):
        hands = hand_meshes(scene)
        dg = bpy.context.evaluated_depsgraph_get()
        best = None
        for h in hands:
            v = _mesh_world(h, dg)
            d = _distances(obj.evaluated_get(dg), v, dg)
            if best is None or d.min() < best[2].min():
                best = (h, v, d)
        if best is None:
            raise CaptureError("the capture has no hand mesh to lock to; capture or import the clip again")
        hand, v_ref, dist = best
        contacts = np.flatnonzero(dist <= touch_m)
        if contacts.size == 0:
            raise CaptureError(f"{obj.name} does not touch a captured hand at frame {ref} (nearest "
                               f"{dist.min() * 1000:.0f} mm away): place it in the hand at this frame, then lock")
        palm = _palm(hand)
        anchors = np.unique(np.concatenate([palm, contacts]))
        m_ref = _matrix(obj.evaluated_get(dg).matrix_world)
        frames = np.arange(first, last + 1)
        pts = np.empty((len(frames), len(anchors), 3))
        parent = np.empty((len(frames), 4, 4))
        try:
            for i, f in enumerate(frames):
                scene.frame_set(int(f))
                dg = bpy.context.evaluated_depsgraph_get()
                pts[i] = _mesh_world(hand.evaluated_get(dg), dg)[anchors]
                parent[i] = _parent_matrix(obj.evaluated_get(dg))
        finally:
            scene.frame_set(ref)
    g = rigid_fit(v_ref[anchors], pts)
    moved = np.einsum("tij,pj->tpi", g[:, :3, :3], v_ref[anchors]) + g[:, None, :3, 3]
    residual = np.sqrt(((moved - pts) ** 2).sum(-1).mean(-1)) * 1000.0
    world = g @ m_ref
    return LockPlan(obj=obj.name, frames=frames, basis=np.linalg.inv(parent) @ world, hand=hand.name,
                    anchors=(int(palm.size), int(contacts.size)), residual_mm=residual)


def _parent_matrix(obj) -> np.ndarray:
    """World matrix of ``obj``'s parent space (parent world @ parent inverse; identity without a parent)."""
    if obj.parent is None:
        return np.eye(4)
    return _matrix(obj.parent.matrix_world) @ _matrix(obj.matrix_parent_inverse)


_TRANSFORM = ("location", "rotation_quaternion", "rotation_euler", "rotation_axis_angle", "scale")


def _clear_range(obj, first: int, last: int) -> None:
    """Remove the object's own transform keys inside [first, last]."""
    from bpy_extras import anim_utils

    ad = obj.animation_data
    if ad is None or ad.action is None or ad.action_slot is None:
        return
    bag = anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)
    for fc in (bag.fcurves if bag is not None else ()):
        if fc.data_path in _TRANSFORM:
            for k in reversed(range(len(fc.keyframe_points))):
                if first - 1e-6 <= fc.keyframe_points[k].co.x <= last + 1e-6:
                    fc.keyframe_points.remove(fc.keyframe_points[k], fast=True)
            fc.update()


def write_lock(plan: LockPlan, scene) -> None:
    """Key the plan on its object (bpy; one call of the operator, so one undo step); ``scene`` then shows it."""
    import bpy
    from mathutils import Matrix

    obj = bpy.data.objects.get(plan.obj)
    if obj is None:
        raise CaptureError(f"the object {plan.obj!r} is gone; nothing was keyed")
    _clear_range(obj, int(plan.frames[0]), int(plan.frames[-1]))
    mode = obj.rotation_mode
    prev_e = prev_q = None
    for f, m in zip(plan.frames, plan.basis):
        loc, quat, scale = Matrix(m.tolist()).decompose()
        obj.location, obj.scale = loc, scale
        if mode == "QUATERNION":
            if prev_q is not None and quat.dot(prev_q) < 0:
                quat.negate()
            obj.rotation_quaternion = prev_q = quat
            path = "rotation_quaternion"
        elif mode == "AXIS_ANGLE":
            axis, angle = quat.to_axis_angle()
            obj.rotation_axis_angle = (angle, *axis)
            path = "rotation_axis_angle"
        else:
            prev_e = quat.to_euler(mode, prev_e) if prev_e is not None else quat.to_euler(mode)
            obj.rotation_euler = prev_e
            path = "rotation_euler"
        for p in ("location", path, "scale"):
            obj.keyframe_insert(p, frame=float(f), group="Grasp Lock")
    scene.frame_set(scene.frame_current)  # evaluate the new keys (the properties hold the last frame's values)
