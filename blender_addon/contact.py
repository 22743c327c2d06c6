"""Contact refinement from Blender (issue 10): the scene's mesh objects go to the worker's ``python -m core
refine``; the refined hands come back as a new action on each hand armature.

`refine_steps` is a step generator like `job.capture_steps`:

1. gather (bpy reads only, one step): the capture (`find_capture`: the hand armatures of the active
   capture and the clip file they were built from), the objects (`choose_objects`), each object's evaluated
   mesh (modifiers applied, triangulated, its scale baked in: `object_input`) and its world matrix on every
   clip frame (``scene.frame_set``, so keyed, parented and constrained objects are followed), relative to the
   hand armature and converted to the camera frame by `convert`; objects far from the hands are left out;
2. the worker: ``python -m core refine CLIP --object MESH.npz:TRANSFORMS.npy ... --json-progress`` with its
   inputs and output in a temporary folder, removed afterwards;
3. plan (numpy, `contact_keys.plan_refined`): keys of the refined pose, per-frame penetration and contact;
4. write (`contact_keys.write_refined`, one bpy step, all or nothing): per hand a new, active action with
   the refined keys and keyed contact custom properties; the captured action is kept.

Closing the generator (Esc) stops the worker and removes the temporary folder; nothing is written before the
last step. The refinement starts from the clip file, not from keys edited in Blender.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
import tempfile

import numpy as np

from ..core.errors import CaptureError
from ..core.io.clip import ClipResult, load_clip
from . import convert
from . import scene as scene_mod
from .contact_keys import REGIONS, plan_refined, write_refined
from .progress import Progress
from .worker import Worker, WorkerError, child_env

NEAR_M = 0.05  # an object whose box stays farther than this from every hand's joints on every frame is left out
RIGID_TOL = 1e-4  # scale or shear changing by more than this over the clip is refused


@dataclasses.dataclass(frozen=True)
class ContactSettings:
    """What to refine against. selected_only: only the selected mesh objects (else every visible one);
    pin / exclude: regions (of REGIONS) always / never pulled onto a surface; hand_hand: keep two hands apart."""

    selected_only: bool = False
    pin: tuple = ()
    exclude: tuple = ()
    hand_hand: bool = True

    def problems(self) -> list:
        out = [f"unknown hand region {r!r}: use {', '.join(REGIONS)}" for r in (*self.pin, *self.exclude)
               if r not in REGIONS]
        both = sorted(set(self.pin) & set(self.exclude))
        if both:
            out.append(f"the {both[0]} is both pinned and excluded: choose one")
        return out


def refine_argv(python: str, clip_file: str, objects: list, out_path: str, s: ContactSettings) -> list:
    """The worker's command line; objects: [(mesh .npz, transforms .npy)]."""
    argv = [python, "-m", "core", "refine", clip_file]
    for mesh, transforms in objects:
        argv += ["--object", f"{mesh}:{transforms}"]
    argv += ["--out", out_path, "--json-progress"]
    if s.pin:
        argv += ["--pin", ",".join(s.pin)]
    if s.exclude:
        argv += ["--exclude", ",".join(s.exclude)]
    if not s.hand_hand:
        argv.append("--no-hand-hand")
    return argv


# ---------------------------------------------------------------------------------------------- numpy


@dataclasses.dataclass(frozen=True)
class ObjectInput:
    """One object for the worker: name (the Blender object's); vertices (V, 3) float64 metres, the object's
    scale baked in; faces (F, 3) int64, counter-clockwise outward as in Blender; transforms (T, 4, 4) rigid
    mesh-to-camera (OpenCV camera frame, metres), one per clip frame."""

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    transforms: np.ndarray

    @property
    def static(self) -> bool:
        return bool(np.abs(self.transforms - self.transforms[:1]).max(initial=0.0) < 1e-9)


def _nearest_rotation(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    return u @ vt


def object_input(name: str, vertices: np.ndarray, faces: np.ndarray, affine: np.ndarray, ref: np.ndarray,
                 frames: np.ndarray | None = None) -> ObjectInput:
    """An object's mesh with its scale baked in and rigid per-frame transforms.

    Args:
        vertices (V, 3), faces (F, 3): the evaluated mesh in the object's local space.
        affine (T, 4, 4): object-to-camera matrices per clip frame (`convert.matrices_world_to_cam`), with scale.
        ref (4, 4): the same at the frame the mesh was taken; its scale and shear (the symmetric factor S of
            the polar decomposition L = R S) go into the vertices, R and the translation stay per frame.
        frames (T,): scene frames, for messages.
    Raises:
        CaptureError: the scale or shear changes during the clip (the worker moves objects rigidly).
    """
    lin = np.asarray(ref, np.float64)[:3, :3]
    rot = _nearest_rotation(lin)
    if np.linalg.det(rot) < 0:  # a mirrored object: the mirror goes into the vertices
        u, _, vt = np.linalg.svd(lin)
        rot = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    stretch = rot.T @ lin
    if abs(np.linalg.det(stretch)) < 1e-12:
        raise CaptureError(f"the object {name!r} has zero scale on an axis: give it a size, or leave it out")
    a = np.asarray(affine, np.float64)
    r_t = a[:, :3, :3] @ np.linalg.inv(stretch)
    err = np.abs(r_t @ r_t.transpose(0, 2, 1) - np.eye(3)).max((1, 2))
    bad = np.flatnonzero((err > RIGID_TOL) | (np.linalg.det(r_t) < 0))
    if bad.size:
        at = f"scene frame {frames[bad[0]]:g}" if frames is not None else f"clip frame {bad[0]}"
        raise CaptureError(f"the object {name!r} changes its scale or shear during the clip (at {at}); contact "
                           f"refinement moves objects rigidly: key its scale constant, or leave it out")
    tr = np.repeat(np.eye(4)[None], len(a), 0)
    tr[:, :3, :3] = np.stack([_nearest_rotation(r) for r in r_t]) if len(a) else r_t
    tr[:, :3, 3] = a[:, :3, 3]
    f = np.asarray(faces, np.int64)
    if np.linalg.det(stretch) < 0:
        f = f[:, ::-1]  # mirrored vertices: keep the faces' outward winding
    return ObjectInput(name, np.asarray(vertices, np.float64) @ stretch.T, np.ascontiguousarray(f), tr)


def near_hands(obj: ObjectInput, joints: np.ndarray, valid: np.ndarray, margin: float = NEAR_M) -> bool:
    """Whether ``obj``'s box comes within ``margin`` metres of a hand's joints' box on some frame.

    joints (H, T, 21, 3) camera frame, metres; valid (H, T) bool. Conservative: the object's local box corners
    are moved per frame (a box around a rotated box).
    """
    lo, hi = obj.vertices.min(0), obj.vertices.max(0)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    c = np.einsum("tij,kj->tki", obj.transforms[:, :3, :3], corners) + obj.transforms[:, None, :3, 3]  # (T, 8, 3)
    o_lo, o_hi = c.min(1), c.max(1)
    j = np.asarray(joints, np.float64)
    h_lo, h_hi = j.min(2) - margin, j.max(2) + margin  # (H, T, 3)
    overlap = np.all((o_lo[None] <= h_hi) & (h_lo <= o_hi[None]), -1) & np.asarray(valid, bool)
    return bool(overlap.any())


def clip_scene_frames(clip: ClipResult, scene_fps: float) -> np.ndarray:
    """Scene frame (T,) of each clip frame, as the import keyed them at this scene frame rate."""
    return convert.clip_to_scene_frames(clip.frame_index, clip.time, convert.source_fps(clip.fps, clip.frame_index),
                                        scene_fps)


@dataclasses.dataclass(frozen=True)
class Capture:
    """The capture to refine: key (ownership tag), clip_file, armatures {clip hand index: object name}
    (`find_capture` gives {object name: recorded index or None}; `resolve_hands` checks them against the clip)."""

    key: str
    clip_file: str
    armatures: dict


# ---------------------------------------------------------------------------------------------- bpy reads


def _owned_armature(obj):
    """The capture armature ``obj`` is or belongs to (its hand mesh), or None."""
    for o in (obj, getattr(obj, "parent", None)):
        if o is not None and o.type == "ARMATURE" and scene_mod.TAG in o and scene_mod.is_owned(o, o[scene_mod.TAG]):
            return o
    return None


def find_capture(scene, active=None, clips_dir: str | None = None) -> Capture:
    """The capture to refine: the one of the active object (a hand armature or its mesh), else the scene's only one.

    clips_dir: where the add-on keeps captured clips (a capture made before armatures recorded their clip file
    is found there). Raises CaptureError when there is none, several and none active, or its clip file is gone.
    """
    arms = [o for o in scene.objects if _owned_armature(o) is o]
    mine = _owned_armature(active) if active is not None else None
    if mine is not None and mine.name in scene.objects:
        key = mine[scene_mod.TAG]
    else:
        keys = sorted({o[scene_mod.TAG] for o in arms})
        if not keys:
            raise CaptureError("no captured hand in this scene: capture a video or import a clip file first")
        if len(keys) > 1:
            names = ", ".join(sorted(o.name for o in arms))
            raise CaptureError(f"this scene holds {len(keys)} captures ({names}): select a hand of the one to refine")
        key = keys[0]
    hands = [o for o in arms if o[scene_mod.TAG] == key]
    files = {str(o[scene_mod.CLIP_FILE]) for o in hands if scene_mod.CLIP_FILE in o}
    if not files and clips_dir:
        from .job import clip_path_for

        files = {clip_path_for(key, clips_dir)}
    clip_file = sorted(files)[0] if files else ""
    if not clip_file or not os.path.isfile(clip_file):
        where = f" ({clip_file})" if clip_file else ""
        raise CaptureError(f"the clip file of {hands[0].name}{where} is gone; contact refinement starts from it: "
                           f"import the clip file again (Import Clip File), or capture again")
    return Capture(key=key, clip_file=clip_file, armatures={o.name: o.get(scene_mod.CLIP_HAND) for o in hands})


def resolve_hands(capture: Capture, clip: ClipResult) -> Capture:
    """``capture`` with its armatures as {clip hand index: name}, checked against the clip's hands."""
    out = {}
    for name, h in capture.armatures.items():
        m = re.search(r"hand_([RL])(\d*)$", name)
        if h is None and m:  # made before the index was recorded: hand_R is the first right hand, hand_R2 the second
            same = [i for i, s in enumerate(clip.sides) if s == ("right" if m.group(1) == "R" else "left")]
            ordinal = int(m.group(2) or 1)
            h = same[ordinal - 1] if len(same) >= ordinal else None
        if h is None or not 0 <= int(h) < clip.n_hands:
            raise CaptureError(f"the armature {name!r} is not a hand of {os.path.basename(capture.clip_file)}: import "
                               f"the clip file again (Import Clip File)")
        out[int(h)] = name
    return dataclasses.replace(capture, armatures=out)


def _follows(obj, arms: set) -> bool:
    """True when ``obj`` moves with one of the hand armatures (parented, Armature modifier, constraint target)."""
    o = obj
    while o is not None:
        if o.name in arms:
            return True
        if any(getattr(m, "object", None) is not None and m.object.name in arms for m in o.modifiers
               if m.type == "ARMATURE"):
            return True
        if any(getattr(c, "target", None) is not None and c.target.name in arms for c in o.constraints):
            return True
        o = o.parent
    return False


def choose_objects(scene, view_layer, selected_only: bool, hand_armatures) -> list:
    """The mesh objects to refine against: visible (and selected, with ``selected_only``) meshes of the scene,
    never the add-on's own objects (hands, their copies) nor objects that move with a hand."""
    arms = set(hand_armatures)
    out = []
    for o in scene.objects:
        if o.type != "MESH" or scene_mod.TAG in o or not o.visible_get(view_layer=view_layer):
            continue
        if selected_only and not o.select_get(view_layer=view_layer):
            continue
        if _follows(o, arms):
            continue
        out.append(o)
    return out


def evaluated_triangles(obj, depsgraph) -> tuple:
    """``obj``'s evaluated mesh (modifiers applied) in its local space: vertices (V, 3) float64 and triangles
    (F, 3) int64, only the vertices the triangles use."""
    ev = obj.evaluated_get(depsgraph)
    mesh = ev.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        mesh.calc_loop_triangles()
        tri = np.empty(len(mesh.loop_triangles) * 3, np.int32)
        mesh.loop_triangles.foreach_get("vertices", tri)
    finally:
        ev.to_mesh_clear()
    tri = tri.reshape(-1, 3).astype(np.int64)
    used, inverse = np.unique(tri, return_inverse=True)
    return co.reshape(-1, 3).astype(np.float64)[used], inverse.reshape(-1, 3)


def _matrix(m) -> np.ndarray:
    return np.array([list(r) for r in m], np.float64)


def gather(capture: Capture, clip: ClipResult, scene, view_layer, settings: ContactSettings, units: float) -> tuple:
    """Read the objects and the hands' frame over the clip (bpy reads; the scene's frame is restored).

    Returns (inputs [ObjectInput], warnings, left out far from the hands: [name]). Raises CaptureError for an
    explicitly chosen object without faces, an object whose scale changes, hands moved apart, nothing to use.
    """
    import bpy

    frames = clip_scene_frames(clip, scene.render.fps / scene.render.fps_base)
    arm_names = list(capture.armatures.values())
    warnings, far = [], []
    with bpy.context.temp_override(scene=scene, view_layer=view_layer):
        objs = choose_objects(scene, view_layer, settings.selected_only, arm_names)
        dg = bpy.context.evaluated_depsgraph_get()
        meshes, names = [], []
        for o in objs:
            v, f = evaluated_triangles(o, dg)
            if len(f) == 0:
                if settings.selected_only:
                    raise CaptureError(f"the selected object {o.name!r} has no faces, so nothing can touch it: give it "
                                       f"faces, or deselect it")
                warnings.append(f"{o.name} has no faces; it was left out")
                continue
            meshes.append((v, f))
            names.append(o.name)
        arms = [scene.objects[n] for n in arm_names]
        ref_obj = [_matrix(scene.objects[n].evaluated_get(dg).matrix_world) for n in names]
        ref_arm = _matrix(arms[0].evaluated_get(dg).matrix_world)
        world = np.empty((len(names), len(frames), 4, 4))
        hand = np.empty((len(arms), len(frames), 4, 4))
        saved = (scene.frame_current, scene.frame_subframe)
        try:
            for t, fr in enumerate(frames):
                whole = math.floor(fr)
                scene.frame_set(int(whole), subframe=float(fr - whole))
                dg = bpy.context.evaluated_depsgraph_get()
                for i, n in enumerate(names):
                    world[i, t] = _matrix(scene.objects[n].evaluated_get(dg).matrix_world)
                for i, a in enumerate(arms):
                    hand[i, t] = _matrix(a.evaluated_get(dg).matrix_world)
        finally:
            scene.frame_set(saved[0], subframe=saved[1])
    moved = np.abs(hand - hand[:1]).max((2, 3)) > 1e-6 * max(1.0, np.abs(hand).max())
    if moved.any():
        i, t = map(int, np.argwhere(moved)[0])
        raise CaptureError(f"the hand armatures {arm_names[0]} and {arm_names[i]} were moved apart (at scene frame "
                           f"{frames[t]:g}); both must keep the capture's placement for the hands to meet as captured")
    valid = np.asarray(clip.valid, bool)
    inputs = []
    for i, n in enumerate(names):
        affine = convert.matrices_world_to_cam(world[i], hand[0], units)
        ref = convert.matrices_world_to_cam(ref_obj[i], ref_arm, units)
        obj = object_input(n, meshes[i][0], meshes[i][1], affine, ref, frames)
        if near_hands(obj, clip.joints, valid):
            inputs.append(obj)
        else:
            far.append(n)
    two_hands = clip.n_hands == 2 and settings.hand_hand
    if not inputs and not two_hands:
        why = f" ({', '.join(far)} {'stays' if len(far) == 1 else 'stay'} over {NEAR_M * 100:g} cm from the hand)" \
            if far else ""
        what = "selected mesh object" if settings.selected_only else "visible mesh object"
        raise CaptureError(f"no {what} comes near the captured hand to refine against{why}: place the object at "
                           f"the hand" + ("" if settings.selected_only else ", or show it"))
    return inputs, warnings, far


def write_inputs(inputs: list, folder: str) -> list:
    """Write each object as ``NN_<name>.npz`` (vertices, faces) and ``NN_<name>.npy`` (transforms; one (4, 4) for a
    static object) into ``folder``; [(mesh path, transforms path)]."""
    out = []
    for i, obj in enumerate(inputs):
        stem = os.path.join(folder, f"{i:02d}_" + re.sub(r"[^A-Za-z0-9_.-]", "_", obj.name))
        np.savez(stem + ".npz", vertices=obj.vertices, faces=obj.faces)
        np.save(stem + ".npy", obj.transforms[0] if obj.static else obj.transforms)
        out.append((stem + ".npz", stem + ".npy"))
    return out


# ---------------------------------------------------------------------------------------------- the job


@dataclasses.dataclass(frozen=True)
class RefineOutcome:
    """What a refinement made: actions {armature: (contact action, captured action or None)}, objects used,
    warnings, info (one line for the user)."""

    actions: dict
    objects: tuple
    warnings: tuple
    info: str


_SPAN = (0.05, 0.9)  # the worker's share of the job


def refine_steps(settings: ContactSettings, python: str, core_root: str, scene, view_layer, active=None,
                 wait: float = 0.0, log_path: str | None = None, cache_dir: str | None = None,
                 clips_dir: str | None = None, work_dir: str | None = None):
    """Refine the active capture's hands against the scene's objects (step generator -> RefineOutcome).

    Reads the scene in its first step (the capture, objects, per-frame transforms), runs the worker, then
    writes in its last step. active: the active object (picks the capture). work_dir: parent folder of the
    temporary folder (default the system's). Raises CaptureError for bad settings, no capture or objects, a
    worker error (WorkerError) and a bad result; nothing is written then, and closing the generator early stops
    the worker and leaves the scene as it was.
    """
    from .job import SceneTarget

    problems = settings.problems()
    if problems:
        raise CaptureError("; ".join(problems))
    target = SceneTarget.of(scene, view_layer)
    active_name = active.name if active is not None else None
    del scene, view_layer, active
    yield Progress("gather", message="reading the scene's objects", fraction=0.0)
    scene, view_layer = target.resolve()
    capture = find_capture(scene, scene.objects.get(active_name) if active_name else None, clips_dir)
    clip = load_clip(capture.clip_file)
    capture = resolve_hands(capture, clip)
    units = convert.units_per_metre(scene.unit_settings.scale_length)
    inputs, warnings, far = gather(capture, clip, scene, view_layer, settings, units)
    fps = scene.render.fps / scene.render.fps_base
    del scene, view_layer
    folder = tempfile.mkdtemp(prefix="hand_capture_refine_", dir=work_dir)
    worker = None
    try:
        yield Progress("gather", message="writing the objects for the worker", fraction=0.03)
        objects = write_inputs(inputs, folder)
        out_path = os.path.join(folder, "refined.npz")
        extra = {"HANDCAP_CACHE": cache_dir, "PYTHONPYCACHEPREFIX": os.path.join(cache_dir, "pycache")} \
            if cache_dir else {}
        worker = Worker(refine_argv(python, capture.clip_file, objects, out_path, settings), name="contact worker",
                        cwd=folder, env=child_env(pythonpath=core_root, extra=extra), log_path=log_path)
        last = Progress("refine", message="starting the contact worker", fraction=_SPAN[0])
        yield last
        while not worker.finished:
            for last in _progress_of(worker.poll(wait)):
                yield last
            yield last
        for last in _progress_of(worker.poll()):
            yield last
        try:
            done = worker.finish()
        except WorkerError as exc:
            if "No module named" in str(exc) or "invalid choice: 'refine'" in str(exc):
                raise WorkerError(f"{exc}. The capture runtime {python} is not ready for contact refinement: press "
                                  f"Set up runtime in Preferences > Add-ons > Hand Capture", exc.log_tail) from None
            raise
        yield Progress("load", message="reading the refined clip", fraction=_SPAN[1])
        refined = load_clip(str(done.get("out") or out_path))
    finally:
        if worker is not None:
            worker.cancel()
        shutil.rmtree(folder, ignore_errors=True)
    if refined.n_hands != clip.n_hands or tuple(refined.sides) != tuple(clip.sides):
        raise CaptureError(f"the refined clip has hands {refined.sides}, the capture {clip.sides}; nothing was written")
    yield Progress("plan", message="planning the keys", fraction=0.93)
    hands = plan_refined(refined, capture.armatures, clip_scene_frames(refined, fps), units)
    yield Progress("write", message="writing the contact actions", fraction=0.97)
    target.resolve()  # the scene must still exist
    actions = write_refined(hands, capture.key)
    parts = []
    for hr in hands:
        new, old = actions[hr.armature]
        deepest = float(hr.penetration_mm.max(initial=0.0))
        touching = int(hr.contact.any(1).sum())
        kept = f", the captured {old!r} kept" if old else ""
        parts.append(f"{hr.armature}: action {new!r} active{kept}; deepest penetration {deepest:.1f} mm, contact on "
                     f"{touching} of {hr.keys.n_keys} frames")
    used = ", ".join(o.name for o in inputs) or "none (the two hands only)"
    left = f"; left out as far from the hands: {', '.join(far)}" if far else ""
    return RefineOutcome(actions=actions, objects=tuple(o.name for o in inputs),
                         warnings=tuple(warnings) + tuple(worker.warnings),
                         info=f"Hand Capture contact: {'; '.join(parts)} (objects: {used}{left})")


def _progress_of(events):
    for ev in events:
        if ev.kind == "progress":
            d = ev.data
            done, total = int(d.get("done", 0) or 0), int(d.get("total", 0) or 0)
            frac = _SPAN[0] + (_SPAN[1] - _SPAN[0]) * (done / total if total else 0.0)
            eta = float(d.get("eta_s", -1.0) or -1.0) if done < total else 0.0  # 0 from the worker: unknown
            yield Progress("refine", done, total, 0.0, eta, frac, "refining contact")
