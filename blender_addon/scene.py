"""From a clip to the scene: plan everything in numpy (`plan_scene`), then write bpy data once (`apply_plan`).

What lands in the scene, in a collection named after the clip: per hand an armature (`rig`), a skinned
mesh (`skin`) and an Action with one slot (`keying`); a camera with the video's intrinsics and the
video as its background; optionally the scene's fps, frame range and render size.

Ownership: everything made here carries ``id["hand_capture_clip"] = <clip key>`` and
``id["hand_capture_name"] = <its name>``. A re-run for the same clip replaces the IDs whose tag matches
and whose name is still the recorded one, so the user's own objects, keys and actions, and their
duplicates or renamed copies of ours, are never touched (an old action or movie clip that something
else still uses is kept).

A re-run keeps what the user added to the capture it replaces (`carry`): bones they added to our armature, the
keys of every channel our action does not write (their bones, the tip bones, the armature object's own
transform), and everything of theirs that pointed at our old objects (a prop parented to a hand bone,
an Armature modifier, a constraint, the scene camera) now points at the new ones. Data of the user's that
only the replaced capture used (their material on our mesh, their action on our armature) gets a fake
user so that saving the file does not drop it.

All or nothing: new data is created first, under a context override for the job's scene (the window may
show another one); any failure removes every ID made since the start and restores the scene settings,
leaving the scene as it was. Only when everything exists does the commit run, which cannot fail: it
repoints the user's references, removes the old IDs and gives the new ones their names.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..core.io.clip import ClipResult
from ..core.errors import CaptureError
from ..core.hand.model import HandModel
from . import carry, convert, keying, rig, skin

TAG = "hand_capture_clip"
TAG_NAME = "hand_capture_name"
# On each hand armature: the clip file it was built from and the hand's index in that clip (contact
# refinement sends that clip to the worker).
CLIP_FILE = "hand_capture_clip_file"
CLIP_HAND = "hand_capture_hand"


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
    ordinal: int = 1  # 2 for the second slot of one side (two people's same-side hands in one clip)

    @property
    def key(self) -> str:
        """Key of this hand in `AppliedScene`'s dicts: its side, ``"right2"`` for a side's second slot."""
        return self.side if self.ordinal == 1 else f"{self.side}{self.ordinal}"

    @property
    def rig_name(self) -> str:
        """Object name stem: ``hand_R``, ``hand_L``, ``hand_R2`` for a side's second slot."""
        return rig.rig_name(self.side, self.ordinal)


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
    """Names of what `apply_plan` made: collection, camera, {side: armature}, {side: mesh}, {side: action}
    (a side's second hand slot under ``"right2"`` / ``"left2"``, see `HandPlan.key`);
    warnings: what the user should know about their own data (kept with a fake user)."""

    collection: str
    camera: str
    armatures: dict
    meshes: dict
    actions: dict
    frame_range: tuple
    warnings: tuple = ()


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
        ordinal = clip.sides[:h + 1].count(side)  # 2: a second hand of this side (two people's right hands)
        who = side if ordinal == 1 else f"second {side}"
        valid = np.asarray(clip.valid[h], bool)
        n_valid = int(valid.sum())
        if n_valid == 0:
            warnings.append(f"the {who} hand was not found on any frame; no rig was made for it")
            continue
        if n_valid < t_count:
            warnings.append(f"{t_count - n_valid} of {t_count} frames had no {who} hand; they were not keyed")
        model: HandModel = models[side]
        betas = np.asarray(clip.betas[h], np.float32)
        v_rest = model.shaped_vertices(betas)
        layout = rig.rig_layout(model.rest_joints(betas), v_rest[model.tip_vertex_ids], side, units)
        mesh = skin.skin_mesh(model, betas, units)
        if mesh.has_pose_correctives:
            warnings.append(f"the {side} hand model ({model.name}) has pose-corrective shapes, which Blender's "
                            f"Armature modifier does not apply; the mesh may differ slightly from the capture")
        keys = keying.hand_keys(clip.global_orient[h], clip.hand_pose[h], clip.transl[h], valid, frames, layout, units,
                                cuts=clip.cuts)
        hands.append(HandPlan(side=side, rig=layout, skin=mesh, keys=keys, n_frames=t_count, ordinal=ordinal))
    if not hands:
        raise CaptureError(f"no hand was found in any of the {t_count} frames of {os.path.basename(clip.source)}: "
                           f"check that the hands are visible and well lit, or lower the detection confidence")
    K = np.asarray(clip.K, np.float64)
    sizes = np.asarray(clip.image_sizes if getattr(clip, "image_sizes", None) is not None
                       else np.asarray(clip.image_size)[None], np.int64)
    if (sizes != sizes[:1]).any():  # photos of different sizes: one camera, one render size
        shown = ", ".join(f"{w}x{h}" for w, h in dict.fromkeys(map(tuple, sizes.tolist())))
        warnings.append(f"the photos have different sizes ({shown}); the camera uses the first frame's size "
                        f"({sizes[0, 0]}x{sizes[0, 1]}) and intrinsics, so the hands of other frames may not line up "
                        f"with their photo, and no image-sequence background is possible for mixed sizes")
    elif t_count > 1 and np.abs(K - K[:1]).max() > 1e-6 * max(1.0, np.abs(K[0]).max()):
        warnings.append("the clip has per-frame intrinsics; the camera uses the first frame's")
    video = clip.source if os.path.isfile(clip.source) else None
    if video is None:
        warnings.append(f"source video {clip.source} not found; the camera has no background")
    keyed = np.concatenate([hp.keys.frames for hp in hands])
    return ScenePlan(
        key=clip_key(clip.source),
        name=clip_name(clip.source),
        hands=tuple(hands),
        camera=convert.intrinsics_to_camera(K[0], sizes[0]),
        video_path=video,
        frame_range=(int(np.floor(frames.min())), int(np.ceil(frames.max()))) if keyed.size else (1, 1),
        fps=convert.fps_to_scene(video_fps) if options.match_fps else None,
        options=options,
        warnings=tuple(warnings),
    )


# ---------------------------------------------------------------------------------------------- bpy


def hand_slot_key(sides, h: int) -> str:
    """Key of clip hand ``h`` in `AppliedScene`'s dicts (see `HandPlan.key`): its side, ``"right2"`` for the
    second hand of one side."""
    side = sides[h]
    ordinal = list(sides[:h + 1]).count(side)
    return side if ordinal == 1 else f"{side}{ordinal}"


def record_clip_file(applied: AppliedScene, sides, clip_path: str) -> None:
    """Write the clip file and each hand's index in it onto the armatures ``applied`` made (bpy)."""
    import bpy

    for h in range(len(sides)):
        arm = bpy.data.objects.get(applied.armatures.get(hand_slot_key(sides, h), ""))
        if arm is not None:
            arm[CLIP_FILE] = os.path.abspath(clip_path)
            arm[CLIP_HAND] = h


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


def _every_id():
    """Every ID in bpy.data (all of its ID collections)."""
    import bpy

    for prop in bpy.data.bl_rna.properties:
        if prop.type == "COLLECTION":
            yield from getattr(bpy.data, prop.identifier)


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


def _user_counts() -> dict:
    """{session_uid: (ID, users)} of every ID in use."""
    return {i.session_uid: (i, i.users) for i in _every_id() if i.users > 0}


# -- scene settings (restored when applying fails)

def _scene_settings(scene) -> dict:
    r = scene.render
    return {"fps": (r.fps, r.fps_base), "range": (scene.frame_start, scene.frame_end),
            "resolution": (r.resolution_x, r.resolution_y, r.resolution_percentage, r.pixel_aspect_x, r.pixel_aspect_y),
            "camera": scene.camera}


def _set_scene_settings(scene, values: dict) -> None:
    r = scene.render
    r.fps, r.fps_base = values["fps"]
    scene.frame_start, scene.frame_end = values["range"]
    r.resolution_x, r.resolution_y, r.resolution_percentage, r.pixel_aspect_x, r.pixel_aspect_y = values["resolution"]
    scene.camera = values["camera"]


def _planned_settings(plan: ScenePlan, scene, cam) -> dict:
    out = _scene_settings(scene)
    o = plan.options
    if plan.fps is not None:
        out["fps"] = plan.fps
    if o.set_frame_range:
        out["range"] = plan.frame_range
    if o.set_resolution:
        out["resolution"] = (*plan.camera.resolution, 100, 1.0, 1.0)
    if o.set_camera:
        out["camera"] = cam
    return out


def apply_plan(plan: ScenePlan, scene, view_layer) -> AppliedScene:
    """Write the plan into ``scene`` (the one bpy step); replaces the previous capture of the same clip.

    All or nothing: on any exception every ID made here is removed again and the scene's settings are
    restored, then the exception propagates. See the module's docstring for what a re-run keeps.
    """
    import bpy

    # The job's scene and view layer, whichever one the window shows: the user may have switched scenes
    # while the job ran, or a script runs it for another scene. Building the armature goes through edit
    # mode, whose operator takes the active object from the window's scene, so the window shows the job's
    # scene for this one step (nothing is drawn in between) and then the user's one again.
    win = bpy.context.window
    shown = (win.scene, win.view_layer) if win is not None else None
    try:
        if shown is not None and (shown[0] != scene or shown[1] != view_layer):
            win.scene = scene
            win.view_layer = view_layer
        with bpy.context.temp_override(scene=scene, view_layer=view_layer):
            mode = _user_mode(view_layer)
            try:
                return _apply(plan, scene, view_layer)
            finally:
                _restore_mode(view_layer, mode)
    finally:
        if shown is not None and (win.scene != shown[0] or win.view_layer != shown[1]):
            win.scene = shown[0]
            win.view_layer = shown[1]


def _user_mode(view_layer):
    """(active object, its mode) when the user is in a mode other than Object mode, else None."""
    import bpy

    active = view_layer.objects.active
    return (active, active.mode) if active is not None and bpy.context.mode != "OBJECT" else None


def _restore_mode(view_layer, mode) -> None:
    """Put the user back into the mode they were in (writing the rig needs Object mode)."""
    import bpy

    if mode is None:
        return
    obj, name = mode
    try:
        if obj.name not in view_layer.objects or obj.mode == name:
            return
        view_layer.objects.active = obj
        bpy.ops.object.mode_set(mode=name)
    except (ReferenceError, RuntimeError, TypeError):  # the object is gone or cannot enter that mode now
        pass


def _apply(plan: ScenePlan, scene, view_layer) -> AppliedScene:
    import bpy

    old = owned_ids(plan.key)
    old_by_name = {o.name: o for o in old["objects"]}
    before = {i.session_uid for i in _every_id()}
    saved = _scene_settings(scene)
    linked = None  # a kept collection linked into this scene, unlinked again on failure
    try:
        # 1. Collection: keep ours if it exists (it may hold the user's objects too), else a new one.
        coll = old["collections"][0] if old["collections"] else None
        if coll is None:
            coll = bpy.data.collections.new(plan.name)
        if coll not in scene.collection.children_recursive:
            scene.collection.children.link(coll)
            linked = coll
        # 2. Camera with the video behind it.
        mc, mc_new = (None, False)
        if plan.video_path:
            mc, mc_new = _movieclip(plan.video_path, old["movieclips"])
        cam_name = f"{plan.name}_camera"
        cam = write_camera(plan, cam_name, coll, mc)
        new_by_name = {cam_name: cam}
        # 3. Hands: armature (with the bones the user added to the old one), skinned mesh (with the user's
        #    materials), action (with the old action's channels that this capture does not key).
        arms, meshes, actions, stems = {}, {}, {}, {}
        for hp in plan.hands:
            stem = f"{plan.name}_{hp.rig_name}"
            arm = rig.write_armature(hp.rig, stem, coll, view_layer)
            old_arm = old_by_name.get(stem)
            if old_arm is not None and old_arm.type == "ARMATURE":
                carry.bones(old_arm, arm, set(hp.rig.names), view_layer)
            mesh = skin.write_mesh(hp.skin, f"{stem}_mesh", coll, arm)
            act = keying.write_action(hp.keys, stem, arm, slot_name=stem)  # arm has a temporary name
            old_ad = old_arm.animation_data if old_arm is not None else None
            if old_ad is not None and old_ad.action is not None and old_ad.action_slot is not None \
                    and is_owned(old_ad.action, plan.key):
                ours = {(ch.data_path, ch.index) for ch in hp.keys.channels()}
                carry.channels(old_ad.action, old_ad.action_slot, act, arm.animation_data.action_slot, ours)
            old_mesh = old_by_name.get(f"{stem}_mesh")
            if old_mesh is not None:
                carry.materials(old_mesh, mesh)
            arms[hp.key], meshes[hp.key], actions[hp.key] = arm, mesh, act
            stems[hp.key] = stem
            new_by_name[stem], new_by_name[f"{stem}_mesh"] = arm, mesh
        warnings = [w for name, o in old_by_name.items() if name in new_by_name
                    for w in carry.not_carried(o, new_by_name[name])]
        # 4. Scene settings.
        _set_scene_settings(scene, _planned_settings(plan, scene, cam))
        in_use = _user_counts()
    except BaseException:
        try:
            _set_scene_settings(scene, saved)
            if linked is not None and linked.session_uid in before:
                scene.collection.children.unlink(linked)
        finally:  # every ID made since the start, also what a writer made before it failed
            made = [i for i in _every_id() if i.session_uid not in before]
            _remove([i for i in made if not isinstance(i, bpy.types.Collection)])
            for c in (i for i in made if isinstance(i, bpy.types.Collection)):
                bpy.data.collections.remove(c)
        raise
    # 5. Commit (nothing here fails): what pointed at an old object (the user's props, modifiers,
    #    constraints, the scene camera) points at its new counterpart; remove the previous capture's
    #    objects, then its actions and movie clips unless something else (a user's duplicate, a fake user)
    #    still uses them; then take their names.
    for name, o in old_by_name.items():
        if name in new_by_name and new_by_name[name].type == o.type:
            carry.hand_over(o, new_by_name[name])
    removed = {o.session_uid for o in old["objects"]} | {o.data.session_uid for o in old["objects"] if o.data}
    _remove(old["objects"])
    gone = [i for i in old["actions"] + old["movieclips"] if i is not mc and i.users == 0]
    removed |= {i.session_uid for i in gone}
    _remove(gone)
    # The user's data that only the old capture used would be dropped on save: keep it with a fake user.
    for uid, (idb, _users) in in_use.items():
        if uid not in removed and not isinstance(idb, bpy.types.Object) and idb.users == 0 and not idb.use_fake_user:
            idb.use_fake_user = True
            warnings.append(f"{type(idb).__name__} {idb.name!r} was used only by the replaced capture; it is kept "
                            f"with a fake user")
    cam.name = cam.data.name = cam_name
    for key, stem in stems.items():
        arms[key].name = arms[key].data.name = stem
        meshes[key].name = meshes[key].data.name = f"{stem}_mesh"
        actions[key].name = stem
    for idb in [coll, cam, *arms.values(), *meshes.values(), *actions.values()] + ([mc] if mc_new else []):
        _tag(idb, plan.key)
    return AppliedScene(
        collection=coll.name,
        camera=cam.name,
        armatures={s: a.name for s, a in arms.items()},
        meshes={s: m.name for s, m in meshes.items()},
        actions={s: a.name for s, a in actions.items()},
        frame_range=plan.frame_range,
        warnings=tuple(warnings),
    )
