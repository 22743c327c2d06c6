"""From a clip to the scene: plan everything in numpy (`plan_scene`), then write bpy data once (`apply_plan`).

What lands in the scene, in a collection named after the clip: per hand an armature (`rig`), a skinned
mesh (`skin`) and an Action with one slot (`keying`); a camera with the video's intrinsics and the
video as its background; optionally the scene's fps, frame range and render size.

Ownership: everything made here carries ``id["hand_capture_clip"] = <clip key>`` and
``id["hand_capture_name"] = <its name>``. A re-run for the same clip replaces the IDs whose tag matches
and whose name is still the recorded one, so the user's own objects, keys and actions, and their
duplicates or renamed copies of ours, are never touched (an old action or movie clip that something
else still uses is kept). New data is created first; only when all of
it exists are the old IDs removed (a failure removes the new IDs and leaves the scene as it was).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..core.io.clip import ClipResult
from ..core.errors import CaptureError
from ..core.hand.model import HandModel
from . import convert, keying, rig, skin

TAG = "hand_capture_clip"
TAG_NAME = "hand_capture_name"


@dataclasses.dataclass(frozen=True)
class SceneOptions:
    """How the scene follows the clip.

    match_fps: set the scene's fps to the video's (else keys keep real time at the scene's fps).
    set_frame_range: set the scene's start/end to the keyed frames.
    set_resolution: set the render size to the video's (needed for the camera overlay to line up).
    set_camera: make the capture camera the scene camera.
    """

    match_fps: bool = True
    set_frame_range: bool = True
    set_resolution: bool = True
    set_camera: bool = True


@dataclasses.dataclass(frozen=True)
class HandPlan:
    """One hand: rig layout, mesh arrays and keys (numpy), plus how many clip frames it was keyed on."""

    side: str
    rig: rig.RigLayout
    skin: skin.SkinMesh
    keys: keying.HandKeys
    n_frames: int


@dataclasses.dataclass(frozen=True)
class ScenePlan:
    """Everything `apply_plan` writes, computed before any bpy data changes.

    key: ownership tag value (the source's normalised absolute path); name: collection / name stem;
    hands: HandPlan per hand; camera: CameraIntrinsics; video_path: background movie or None;
    frame_range: (start, end) scene frames; fps: (fps, fps_base) to set, or None; options: SceneOptions;
    warnings: messages for the user about partial results.
    """

    key: str
    name: str
    hands: tuple
    camera: convert.CameraIntrinsics
    video_path: str | None
    frame_range: tuple
    fps: tuple | None
    options: SceneOptions
    warnings: tuple


@dataclasses.dataclass(frozen=True)
class AppliedScene:
    """Names of what `apply_plan` made: collection, camera, {side: armature}, {side: mesh}, {side: action}."""

    collection: str
    camera: str
    armatures: dict
    meshes: dict
    actions: dict
    frame_range: tuple


def clip_key(source: str) -> str:
    """Ownership key of a clip: its source's normalised absolute path."""
    return os.path.normcase(os.path.abspath(source))


def clip_name(source: str) -> str:
    """Collection name of a clip: the source's file (or folder) name without extension."""
    base = os.path.basename(os.path.normpath(source))
    return os.path.splitext(base)[0] or "hand_capture"


def plan_scene(clip: ClipResult, models: dict, scene_fps: float, units: float = 1.0,
               options: SceneOptions = SceneOptions()) -> ScenePlan:
    """Plan the scene for ``clip``.

    Args:
        clip: the captured clip.
        models: {side: HandModel} for every side in the clip.
        scene_fps: the scene's current frame rate (used when not matching the video's).
        units: scene units per metre.
        options: SceneOptions.
    Raises:
        CaptureError: no hand was found on any frame.
    """
    warnings = []
    video_fps = convert.source_fps(clip.fps, clip.frame_index)
    target_fps = video_fps if options.match_fps else scene_fps
    frames = convert.clip_to_scene_frames(clip.frame_index, clip.time, video_fps, target_fps)
    if not options.match_fps and abs(video_fps - scene_fps) > 1e-3:
        warnings.append(f"the video runs at {video_fps:g} fps and the scene at {scene_fps:g} fps: keys keep real "
                        f"time, so the video background drifts from the hand")
    t_count = clip.n_frames
    hands = []
    for h, side in enumerate(clip.sides):
        valid = np.asarray(clip.valid[h], bool)
        n_valid = int(valid.sum())
        if n_valid == 0:
            warnings.append(f"the {side} hand was not found on any frame; no rig was made for it")
            continue
        if n_valid < t_count:
            warnings.append(f"{t_count - n_valid} of {t_count} frames had no {side} hand; they were not keyed")
        model: HandModel = models[side]
        betas = np.asarray(clip.betas[h], np.float32)
        v_rest = model.shaped_vertices(betas)
        layout = rig.rig_layout(model.rest_joints(betas), v_rest[model.tip_vertex_ids], side, units)
        mesh = skin.skin_mesh(model, betas, units)
        if mesh.has_pose_correctives:
            warnings.append(f"the {side} hand model ({model.name}) has pose-corrective shapes, which Blender's "
                            f"Armature modifier does not apply; the mesh may differ slightly from the capture")
        keys = keying.hand_keys(clip.global_orient[h], clip.hand_pose[h], clip.transl[h], valid, frames, layout, units)
        hands.append(HandPlan(side=side, rig=layout, skin=mesh, keys=keys, n_frames=t_count))
    if not hands:
        raise CaptureError(f"no hand was found in any of the {t_count} frames of {os.path.basename(clip.source)}: "
                           f"check that the hands are visible and well lit, or lower the detection confidence")
    K = np.asarray(clip.K, np.float64)
    if t_count > 1 and np.abs(K - K[:1]).max() > 1e-6 * max(1.0, np.abs(K[0]).max()):
        warnings.append("the clip has per-frame intrinsics; the camera uses the first frame's")
    video = clip.source if os.path.isfile(clip.source) else None
    if video is None:
        warnings.append(f"source video {clip.source} not found; the camera has no background")
    keyed = np.concatenate([hp.keys.frames for hp in hands])
    return ScenePlan(
        key=clip_key(clip.source),
        name=clip_name(clip.source),
        hands=tuple(hands),
        camera=convert.intrinsics_to_camera(K[0], clip.image_size),
        video_path=video,
        frame_range=(int(np.floor(frames.min())), int(np.ceil(frames.max()))) if keyed.size else (1, 1),
        fps=convert.fps_to_scene(video_fps) if options.match_fps else None,
        options=options,
        warnings=tuple(warnings),
    )


# ---------------------------------------------------------------------------------------------- bpy


def is_owned(idb, key: str) -> bool:
    """True when ``idb`` was made by a capture of ``key`` and still has the name it was given."""
    return idb.get(TAG) == key and idb.get(TAG_NAME) == idb.name


def owned_ids(key: str) -> dict:
    """Everything owned by ``key`` (see `is_owned`): {"objects", "actions", "collections", "movieclips": [...]}."""
    import bpy

    return {
        "objects": [o for o in bpy.data.objects if is_owned(o, key)],
        "actions": [a for a in bpy.data.actions if is_owned(a, key)],
        "collections": [c for c in bpy.data.collections if is_owned(c, key)],
        "movieclips": [m for m in bpy.data.movieclips if is_owned(m, key)],
    }


def _tag(idb, key: str) -> None:
    idb[TAG] = key
    idb[TAG_NAME] = idb.name


def _movieclip(path: str, reuse: list):
    """A movie clip of ``path``: one of ours (``reuse``) showing it, else a new one; (clip, is_new)."""
    import bpy

    for mc in reuse:
        if os.path.normcase(bpy.path.abspath(mc.filepath)) == os.path.normcase(os.path.abspath(path)):
            return mc, False
    mc = bpy.data.movieclips.load(path, check_existing=False)
    return mc, True


def write_camera(plan: ScenePlan, name: str, collection, movieclip):
    """Create the capture camera (intrinsics from the plan, the movie clip as background)."""
    import bpy
    from mathutils import Matrix

    cam = bpy.data.cameras.new(name)
    c = plan.camera
    cam.sensor_fit = c.sensor_fit
    cam.sensor_width = c.sensor_mm
    cam.sensor_height = c.sensor_mm
    cam.lens = c.lens_mm
    cam.shift_x = c.shift_x
    cam.shift_y = c.shift_y
    cam.clip_start = 0.01
    cam.clip_end = 100.0
    if movieclip is not None:
        cam.show_background_images = True
        bg = cam.background_images.new()
        bg.source = "MOVIE_CLIP"
        bg.clip = movieclip
        bg.alpha = 1.0
        bg.display_depth = "BACK"
        bg.frame_method = "FIT"
        bg.use_camera_clip = False
    obj = bpy.data.objects.new(name, cam)
    obj.matrix_world = Matrix(convert.CAMERA_MATRIX_WORLD.tolist())
    collection.objects.link(obj)
    return obj


def _remove(ids: list) -> None:
    """Remove IDs and the object data left without users."""
    import bpy

    ids = [i for i in ids if i is not None]
    data = [o.data for o in ids if isinstance(o, bpy.types.Object) and o.data is not None]
    bpy.data.batch_remove(ids)
    orphans = [d for d in data if d.users == 0]
    if orphans:
        bpy.data.batch_remove(orphans)


def apply_plan(plan: ScenePlan, scene, view_layer) -> AppliedScene:
    """Write the plan into ``scene`` (the one bpy step); replaces the previous capture of the same clip."""
    import bpy

    old = owned_ids(plan.key)
    created = []  # new IDs, removed again if anything fails
    linked = None  # a kept collection linked into this scene, unlinked again on failure
    try:
        # 1. Collection: keep ours if it exists (it may hold the user's objects too), else a new one.
        coll = old["collections"][0] if old["collections"] else None
        if coll is None:
            coll = bpy.data.collections.new(plan.name)
            created.append(coll)
        if coll not in scene.collection.children_recursive:
            scene.collection.children.link(coll)
            linked = coll
        # 2. Camera with the video behind it.
        mc, mc_new = (None, False)
        if plan.video_path:
            mc, mc_new = _movieclip(plan.video_path, old["movieclips"])
            if mc_new:
                created.append(mc)
        cam = write_camera(plan, f"{plan.name}_camera", coll, mc)
        created.append(cam)
        # 3. Hands: armature, skinned mesh, action.
        arms, meshes, actions = {}, {}, {}
        for hp in plan.hands:
            stem = f"{plan.name}_{rig.rig_name(hp.side)}"
            arm = rig.write_armature(hp.rig, stem, coll, view_layer)
            created.append(arm)
            mesh = skin.write_mesh(hp.skin, f"{stem}_mesh", coll, arm)
            created.append(mesh)
            act = keying.write_action(hp.keys, stem, arm)
            created.append(act)
            arms[hp.side], meshes[hp.side], actions[hp.side] = arm, mesh, act
    except BaseException:
        if linked is not None and linked not in created:
            scene.collection.children.unlink(linked)
        _remove([i for i in created if not isinstance(i, bpy.types.Collection)])
        for c in (i for i in created if isinstance(i, bpy.types.Collection)):
            bpy.data.collections.remove(c)
        raise
    # 4. Remove the previous capture's objects, then its actions and movie clips unless something else
    #    (a user's duplicate, a fake user) still uses them; then take their names.
    _remove(old["objects"])
    _remove([i for i in old["actions"] + old["movieclips"] if i is not mc and i.users == 0])
    cam.name = cam.data.name = f"{plan.name}_camera"
    for side in arms:
        stem = f"{plan.name}_{rig.rig_name(side)}"
        arms[side].name = arms[side].data.name = stem
        meshes[side].name = meshes[side].data.name = f"{stem}_mesh"
        actions[side].name = stem
    for idb in [coll, cam, *arms.values(), *meshes.values(), *actions.values()] + ([mc] if mc_new else []):
        _tag(idb, plan.key)
    # 5. Scene settings.
    o = plan.options
    if plan.fps is not None:
        scene.render.fps, scene.render.fps_base = plan.fps
    if o.set_frame_range:
        scene.frame_start, scene.frame_end = plan.frame_range
    if o.set_resolution:
        scene.render.resolution_x, scene.render.resolution_y = plan.camera.resolution
        scene.render.resolution_percentage = 100
        scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    if o.set_camera:
        scene.camera = cam
    return AppliedScene(
        collection=coll.name,
        camera=cam.name,
        armatures={s: a.name for s, a in arms.items()},
        meshes={s: m.name for s, m in meshes.items()},
        actions={s: a.name for s, a in actions.items()},
        frame_range=plan.frame_range,
    )
