"""Never lose work: every way a job can be interrupted or raced leaves the user's data as it was.

Each case runs in real bpy (the installed extension):

- the previous capture's armature, mesh, camera, action or collection deleted or renamed, the scene
  deleted or switched, an undo, edit mode, while a capture re-run runs: it finishes without touching
  anything of the user's (renamed objects are theirs) or stops with a CaptureError, never a traceback;
- cancel (closing the job) after every step, of a capture and an import, and a failure inside every
  part of the one step that writes: the scene is exactly as before (`fingerprint`);
- the worker killed (its own SIGKILL, a crash, a real ``os.kill`` of a running worker, the real
  runtime): a clear report, the scene unchanged, no clip half-written at the output path;
- a re-run replaces only the add-on's own data: the user's objects, actions, keys on other channels
  and bones they added to the rig, props parented to a hand bone, their material, all kept exactly;
- each operator is one undo step (real undo works headless: ``bpy.ops.ed.undo``), a failed one none;
- save, close, reopen keeps the captured rig, keys, camera background and the panel's settings;
- disabling and re-enabling the add-on (twice) leaks no handlers, timers, classes or running jobs.

Modal operators and timers never run headless, so jobs are driven here step by step, as the modal
operator's timer would drive them.
"""
from __future__ import annotations

import addon_utils
import os
import signal
import threading
import time
from pathlib import Path

import bmesh
import bpy
import numpy as np
import pytest

from helpers import EXT_MODULE, WORKER_PYTHON, ext_module, make_user_content, scene_snapshot, write_clip

RIG_R, RIG_L = "tiny_hand_R", "tiny_hand_L"  # what a capture of tiny.mp4 makes (and tiny_camera, collection tiny)


# ----------------------------------------------------------------------------------------- fingerprint


def _b(values) -> bytes:
    return np.asarray(values, np.float64).tobytes()


def _props(idb) -> dict:
    return {k: str(idb[k]) for k in idb.keys()}


def _mat(m) -> bytes:
    return _b([list(r) for r in m])


def _fcurve(fc) -> tuple:
    n = len(fc.keyframe_points)
    arrays = []
    for attr, width in (("co", 2), ("handle_left", 2), ("handle_right", 2), ("interpolation", 1),
                        ("handle_left_type", 1), ("handle_right_type", 1), ("easing", 1)):
        buf = np.empty(n * width, np.float32 if width == 2 else np.int32)
        fc.keyframe_points.foreach_get(attr, buf)
        arrays.append(buf.tobytes())
    return (fc.group.name if fc.group else None, fc.extrapolation, fc.mute, len(fc.modifiers), *arrays)


def action_curves(action) -> dict:
    """{(slot identifier, data_path, index): F-curve fingerprint} of every channelbag of ``action``."""
    out = {}
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                for fc in bag.fcurves:
                    out[(bag.slot.identifier, fc.data_path, fc.array_index)] = _fcurve(fc)
    return out


def _anim(idb):
    ad = idb.animation_data
    if ad is None:
        return None
    return (ad.action.name if ad.action else None, ad.action_slot.identifier if ad.action_slot else None,
            [(t.name, [(s.name, s.action.name if s.action else None) for s in t.strips]) for t in ad.nla_tracks])


def _selected(obj, view_layer):
    try:
        return obj.select_get(view_layer=view_layer)
    except RuntimeError:  # not in the view layer
        return None


def fingerprint() -> dict:
    """The whole file as a capture could change it, compared by value: every object (type, data, parent,
    transform, collections, custom properties, animation, modifiers, constraints, materials, selection),
    bones, meshes, actions (every key with its handles and interpolation), cameras with their
    backgrounds, collections, movie clips, materials, the scene's settings and Hand Capture settings,
    the active object and the mode. `helpers.scene_snapshot` is part of it."""
    fp = {"snapshot": scene_snapshot()}
    vl = bpy.context.view_layer
    for o in bpy.data.objects:
        fp[("OB", o.name)] = (
            o.type, o.data.name if o.data else None, o.parent.name if o.parent else None, o.parent_type,
            o.parent_bone, _mat(o.matrix_basis), _mat(o.matrix_parent_inverse),
            sorted(c.name for c in o.users_collection), _props(o), _anim(o),
            [(m.name, m.type, getattr(getattr(m, "object", None), "name", None)) for m in o.modifiers],
            [(c.name, c.type, getattr(getattr(c, "target", None), "name", None), getattr(c, "subtarget", ""))
             for c in o.constraints],
            [(s.link, s.material.name if s.material else None) for s in o.material_slots],
            sorted(g.name for g in o.vertex_groups), o.mode, _selected(o, vl))
        if o.type == "ARMATURE":
            fp[("POSE", o.name)] = [(p.name, p.rotation_mode, _b(p.location), _b(p.rotation_quaternion), _b(p.scale))
                                   for p in o.pose.bones]
    for a in bpy.data.armatures:
        fp[("AR", a.name)] = [(b.name, b.parent.name if b.parent else None, _b(b.head_local), _b(b.tail_local),
                               _mat(b.matrix_local), b.use_deform, b.use_connect) for b in a.bones]
    for m in bpy.data.meshes:
        co = np.empty(len(m.vertices) * 3, np.float32)
        m.vertices.foreach_get("co", co)
        fp[("ME", m.name)] = (len(m.vertices), len(m.polygons), co.tobytes(),
                              [x.name if x else None for x in m.materials], m.users)
    for a in bpy.data.actions:
        fp[("AC", a.name)] = (a.users, a.use_fake_user, [s.identifier for s in a.slots], _props(a), action_curves(a))
    for c in bpy.data.cameras:
        fp[("CA", c.name)] = (c.lens, c.sensor_width, c.shift_x, c.shift_y, c.show_background_images,
                              [(bg.source, bg.clip.name if bg.clip else None) for bg in c.background_images])
    for c in bpy.data.collections:
        fp[("GR", c.name)] = (sorted(o.name for o in c.objects), sorted(x.name for x in c.children), _props(c))
    for m in bpy.data.movieclips:
        fp[("MC", m.name)] = (os.path.normpath(bpy.path.abspath(m.filepath)), m.users, _props(m))
    for m in bpy.data.materials:
        fp[("MA", m.name)] = (m.users, m.use_fake_user)
    sc = bpy.context.scene
    hc = sc.hand_capture
    fp["settings"] = _group(hc)
    fp["scene"] = (sc.name, [s.name for s in bpy.data.scenes], sc.render.resolution_percentage,
                   sc.render.pixel_aspect_x, sc.render.pixel_aspect_y, sorted(c.name for c in sc.collection.children))
    fp["context"] = (vl.objects.active.name if vl.objects.active else None, bpy.context.mode)
    return fp


def _group(g) -> dict:
    """A PropertyGroup's values by name; nested groups and collections as their values, IDs by name."""
    out = {}
    for k in g.bl_rna.properties.keys():
        if k == "rna_type":
            continue
        v = getattr(g, k)
        if isinstance(v, bpy.types.PropertyGroup):
            v = _group(v)
        elif isinstance(v, bpy.types.bpy_prop_collection):
            v = [_group(x) for x in v]
        elif isinstance(v, bpy.types.ID):
            v = v.name
        out[k] = v
    return out


def _short(v) -> str:
    return repr(v if not isinstance(v, bytes) else f"<{len(v)} bytes {hash(v) & 0xffff:04x}>")[:200]


def assert_same(before: dict, after: dict) -> None:
    """Equal fingerprints; on failure, name the entries that differ and how (not a wall of bytes)."""
    diff = []
    for k in sorted(set(before) | set(after), key=str):
        a, b = before.get(k), after.get(k)
        if a != b:
            if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
                parts = [f"[{i}] {_short(x)} -> {_short(y)}" for i, (x, y) in enumerate(zip(a, b)) if x != y]
            elif isinstance(a, dict) and isinstance(b, dict):
                parts = [f"[{i}] {_short(a.get(i))} -> {_short(b.get(i))}" for i in sorted(set(a) | set(b), key=str)
                         if a.get(i) != b.get(i)][:5]
            else:
                parts = [f"{_short(a)} -> {_short(b)}"]
            diff.append(f"{k}: {'; '.join(parts)}")
    assert not diff, "changed:\n" + "\n".join(diff)


def user_part(fp: dict) -> dict:
    """The entries of a fingerprint that belong to the user's content (`make_user_content` and friends)."""
    return {k: v for k, v in fp.items() if isinstance(k, tuple) and k[1].startswith(("User", "My"))}


# ----------------------------------------------------------------------------------------- helpers


def mods():
    return ext_module("blender_addon.job"), ext_module("blender_addon.prefs"), ext_module("blender_addon.scene")


def capture_job(video, out, scene=None, wait=0.05):
    """A capture of ``video`` by the (fake) runtime, as a step generator (what the modal operator ticks)."""
    job, prefs, _ = mods()
    scene = scene or bpy.context.scene
    layer = bpy.context.view_layer if scene == bpy.context.scene else scene.view_layers[0]
    return job.capture_steps(job.CaptureSettings(video=str(video)), prefs.runtime_python()[0], str(out.parent),
                             str(out), scene, layer, wait=wait)


def run(steps, on_step=None, limit_s=60.0):
    """Drive a job to its end, calling ``on_step(i, progress)`` after each step; its result."""
    deadline = time.monotonic() + limit_s
    i = 0
    while True:
        try:
            p = next(steps)
        except StopIteration as stop:
            return stop.value
        i += 1
        if on_step is not None:
            on_step(i, p)
        assert time.monotonic() < deadline, "the job never finished"


def check_capture(n_frames: int, sides=("right", "left")) -> None:
    """The capture of tiny.mp4 is complete: rig, mesh, keys, camera with the video behind it, all tagged."""
    _, _, scene_mod = mods()
    key = bpy.data.collections["tiny"][scene_mod.TAG]
    for side in sides:
        stem = RIG_R if side == "right" else RIG_L
        arm, mesh = bpy.data.objects[stem], bpy.data.objects[f"{stem}_mesh"]
        assert scene_mod.is_owned(arm, key) and scene_mod.is_owned(mesh, key)
        assert len(arm.data.bones) >= 21 and mesh.parent == arm and mesh.modifiers["Armature"].object == arm
        act = arm.animation_data.action
        assert scene_mod.is_owned(act, key)
        curves = action_curves(act)
        ours = [v for k, v in curves.items() if "rotation_quaternion" in k[1] and ".index4" not in k[1]
                and k[1].startswith(f'pose.bones["hand_{stem[-1]}.')]
        assert len(ours) == 16 * 4 and all(len(v[4]) == n_frames * 2 * 4 for v in ours)  # co: (frame, value) float32
    cam = bpy.data.objects["tiny_camera"]
    assert scene_mod.is_owned(cam, key) and bpy.context.scene.camera == cam
    coll = bpy.data.collections["tiny"]
    assert len(coll.objects) == len({o.name for o in coll.objects}) and cam.name in coll.objects
    assert cam.data.background_images[0].clip is not None


@pytest.fixture
def video_clip(tmp_path, synth_models, tiny_video):
    """Two different two-hand clips of tiny.mp4: 6 frames (the earlier capture) and 8 frames (the re-run)."""
    paths = []
    for sub, n, seed in (("a", 6, 0), ("b", 8, 3)):
        (tmp_path / sub).mkdir()
        paths.append(write_clip(tmp_path / sub, synth_models, source=tiny_video, n_frames=n, seed=seed)[0])
    return tuple(paths)


@pytest.fixture
def previous(scene, video_clip):
    """The user's own content and an earlier capture of tiny.mp4 (the one a re-run replaces)."""
    make_user_content()
    bpy.ops.hand_capture.import_clip(filepath=str(video_clip[0]))
    return video_clip


# ----------------------------------------------------------------------------------------- cancel


def test_cancel_after_every_step_of_a_capture_changes_nothing(previous, fake_runtime, tmp_path, tiny_video):
    """Close the capture job after 1, 2, 3, ... steps, and at the first step of every stage (starting, in the
    worker's detect and fit, reading the clip, planning, just before the write), which is what Esc does:
    the file is exactly as before, no clip is half-written; the job that runs to its end writes the whole
    capture. (How many steps the worker's part takes depends on timing, hence the stages as well.)"""
    job, _, _ = mods()
    fake_runtime("ok", previous[1])
    before = fingerprint()
    out = tmp_path / "clips" / "tiny.npz"

    def cancelled(stop) -> bool:
        """Run a job until ``stop(i, progress)``, close it, check nothing changed; False if it ended first."""
        steps = capture_job(tiny_video, out)
        i = 0
        while True:
            try:
                p = next(steps)
            except StopIteration:
                return False
            i += 1
            if stop(i, p):
                break
        steps.close()
        assert_same(before, fingerprint())
        assert not Path(job.partial_path(str(out))).exists()
        return True

    stages = ("start", "detect", "fit", "load", "plan", "scene")
    for stage in stages:
        assert cancelled(lambda i, p: p.stage == stage), stage
    for k in range(1, 400):
        if not cancelled(lambda i, p: i == k):
            break
    else:
        pytest.fail("the capture never finished")
    assert k > len(stages)
    check_capture(8)


@pytest.mark.parametrize("rerun", [False, True], ids=["first", "rerun"])
def test_cancel_after_every_step_of_an_import_changes_nothing(scene, video_clip, rerun):
    """Close an import after each of its steps (a first capture, and a re-run over an earlier one): the file
    is exactly as before; the import that runs to its end writes the whole capture."""
    job, _, _ = mods()
    make_user_content()
    if rerun:
        bpy.ops.hand_capture.import_clip(filepath=str(video_clip[0]))
    before = fingerprint()
    for k in range(1, 10):
        steps = job.import_steps(str(video_clip[1]), scene, bpy.context.view_layer)
        try:
            for _ in range(k):
                next(steps)
        except StopIteration:
            break
        steps.close()
        assert_same(before, fingerprint())
    assert k == 4  # load, plan, scene, then the write
    check_capture(8)


def _fail_after(real, when=1):
    """``real`` that raises MemoryError after its ``when``-th call has done its work (a half-made result)."""
    calls = []

    def wrapped(*a, **kw):
        out = real(*a, **kw)
        calls.append(1)
        if len(calls) == when:
            raise MemoryError("simulated failure inside the write")
        return out

    return wrapped


def _partial_mesh(real):
    """A mesh writer that makes its object, then fails before returning it (nobody holds what it made)."""

    def wrapped(skin_mesh, name, collection, armature_obj):
        real(skin_mesh, name, collection, armature_obj)
        raise MemoryError("simulated failure inside the write")

    return wrapped


WRITE_PARTS = [
    ("scene", "write_camera", 1), ("scene", "_movieclip", 1),
    ("rig", "write_armature", 1), ("rig", "write_armature", 2),
    ("skin", "write_mesh", 1), ("skin", "write_mesh", 2), ("skin", "write_mesh", "partial"),
    ("keying", "write_action", 1), ("keying", "write_action", 2),
    ("carry", "bones", 1), ("carry", "channels", 2),
    ("scene", "_set_scene_settings", 1), ("scene", "_user_counts", 1),
]


@pytest.mark.parametrize("module, func, when", WRITE_PARTS, ids=[f"{m}.{f}-{w}" for m, f, w in WRITE_PARTS])
def test_failure_inside_every_part_of_the_write_rolls_back(previous, monkeypatch, module, func, when):
    """The write is one step; an exception anywhere inside it (after the part has made its data) removes
    everything it made and restores the scene's settings, so the previous capture and the user's content
    are exactly as before."""
    mod = ext_module(f"blender_addon.{module}")
    real = getattr(mod, func)
    monkeypatch.setattr(mod, func, _partial_mesh(real) if when == "partial" else _fail_after(real, when))
    # the carry-over parts run only when the old rig has something of the user's
    arm = bpy.data.objects[RIG_R]
    arm.location = (0.0, 0.0, 1.0)
    arm.keyframe_insert("location", frame=1)
    _add_user_bone(arm, "prop")
    before = fingerprint()
    with pytest.raises(RuntimeError, match="simulated failure inside the write"):
        bpy.ops.hand_capture.import_clip(filepath=str(previous[1]))
    assert_same(before, fingerprint())


# ----------------------------------------------------------------------------------------- while a job runs


def _data(kind):
    return {"OB": bpy.data.objects, "AC": bpy.data.actions, "GR": bpy.data.collections, "MC": bpy.data.movieclips}[kind]


def _delete(kind, name):
    return lambda: _data(kind).remove(_data(kind)[name])


def _rename(kind, name, new):
    def act():
        _data(kind)[name].name = new

    return act


RACES = {
    "delete-armature": _delete("OB", RIG_R), "delete-mesh": _delete("OB", f"{RIG_R}_mesh"),
    "delete-camera": _delete("OB", "tiny_camera"), "delete-action": _delete("AC", RIG_L),
    "delete-collection": _delete("GR", "tiny"), "delete-user-cube": _delete("OB", "UserCube"),
    "rename-armature": _rename("OB", RIG_R, "MyRig"), "rename-mesh": _rename("OB", f"{RIG_L}_mesh", "MyMesh"),
    "rename-camera": _rename("OB", "tiny_camera", "MyCamera"), "rename-action": _rename("AC", RIG_L, "MyAction"),
    "rename-collection": _rename("GR", "tiny", "MyTake"),
    # Not "delete-movieclip": Blender 4.5-5.2 leave the camera background's pointer to a removed movie clip
    # dangling (bpy.data.movieclips.remove), so what happens next is undefined whatever the add-on does.
    "rename-movieclip": _rename("MC", "tiny.mp4", "MyFootage"),
}


@pytest.mark.parametrize("when", ["worker", "before-write"])
@pytest.mark.parametrize("race", sorted(RACES))
def test_our_objects_deleted_or_renamed_while_a_capture_runs(previous, fake_runtime, tmp_path, tiny_video, race, when):
    """While a re-run's worker runs (or just before its write) the user deletes or renames the previous
    capture's objects: the job still finishes with a complete capture; what the user renamed is theirs and
    kept exactly as it was; the user's own content is untouched."""
    fake_runtime("ok", previous[1])
    trigger = "detect" if when == "worker" else "scene"
    done = []

    def on_step(i, p):
        if p.stage == trigger and not done:
            RACES[race]()
            done.append(fingerprint())

    run(capture_job(tiny_video, tmp_path / "clips" / "tiny.npz"), on_step)
    assert done, "the race never ran"
    during, after = done[0], fingerprint()
    check_capture(8)
    if race.startswith("rename"):
        what = race.split("-")[1]
        new = {"armature": "MyRig", "mesh": "MyMesh", "camera": "MyCamera", "action": "MyAction",
               "collection": "MyTake", "movieclip": "MyFootage"}[what]
        kind = {"armature": "OB", "mesh": "OB", "camera": "OB", "action": "AC", "collection": "GR",
                "movieclip": "MC"}[what]
        assert new in _data(kind)
        if race == "rename-armature":  # kept with its bones, pose and the old action's keys
            assert after[("AR", "tiny_hand_R")] == during[("AR", "tiny_hand_R")]  # its armature data keeps its name
            assert after[("OB", "MyRig")][:9] == during[("OB", "MyRig")][:9]
            kept = bpy.data.objects["MyRig"].animation_data.action
            assert action_curves(kept) == during[("AC", RIG_R)][4]
        elif race == "rename-mesh":  # kept, vertices and groups as they were; it follows the new rig
            assert after[("ME", f"{RIG_L}_mesh")][:3] == during[("ME", f"{RIG_L}_mesh")][:3]
            assert bpy.data.objects["MyMesh"].parent == bpy.data.objects[RIG_L]
        elif race == "rename-action":  # kept (with a fake user, as nothing uses it now), keys as they were
            assert after[("AC", "MyAction")][4] == during[("AC", "MyAction")][4]
            assert bpy.data.actions["MyAction"].use_fake_user
        elif race == "rename-collection":  # the user's collection keeps what the user left in it
            assert bpy.data.collections["MyTake"].name in {c.name for c in bpy.context.scene.collection.children}
        elif race == "rename-movieclip":  # kept, now unused: with a fake user; the new camera has its own clip
            mc = bpy.data.movieclips["MyFootage"]
            assert after[(kind, new)][0] == during[(kind, new)][0] and mc.use_fake_user
            assert bpy.data.objects["tiny_camera"].data.background_images[0].clip != mc
        else:
            assert after[(kind, new)] == during[(kind, new)]
    user = {k: v for k, v in user_part(during).items() if not k[1].startswith("My")}
    assert {k: after.get(k) for k in user} == user
    assert len([o for o in bpy.data.objects if o.name.startswith("tiny_")]) == 5


def test_scene_deleted_while_a_capture_runs(scene, fake_runtime, video_clip, tmp_path, tiny_video):
    """The job's scene is deleted mid-run: a CaptureError saying so and naming the saved clip, nothing written."""
    make_user_content()
    other = bpy.data.scenes.new("Other")
    fake_runtime("ok", video_clip[1])
    before = None
    out = tmp_path / "clips" / "tiny.npz"

    def on_step(i, p):
        nonlocal before
        if p.stage == "detect" and before is None:
            bpy.data.scenes.remove(other)
            before = fingerprint()

    CaptureError = ext_module("core.errors").CaptureError
    with pytest.raises(CaptureError, match=r"the scene 'Other' was deleted or its file closed while the job ran; "
                                           r"nothing was written \(the capture is saved in .*tiny\.npz: Import "
                                           r"Clip File"):
        run(capture_job(tiny_video, out, scene=other), on_step)
    assert_same(before, fingerprint())
    assert out.is_file()


def test_scene_switched_while_a_capture_runs(scene, fake_runtime, video_clip, tmp_path, tiny_video):
    """The user switches the window to another scene (with their own active object) mid-run: the capture
    lands in the job's scene, the other scene and its active object are untouched."""
    cube = make_user_content()
    bpy.context.view_layer.objects.active = cube
    other = bpy.data.scenes.new("Other")
    their = bpy.data.objects.new("MyOtherCube", bpy.data.meshes.new("MyOtherCube"))
    other.collection.objects.link(their)
    other.view_layers[0].objects.active = their
    fake_runtime("ok", video_clip[1])

    def on_step(i, p):
        if p.stage == "detect" and bpy.context.window.scene != other:
            bpy.context.window.scene = other

    run(capture_job(tiny_video, tmp_path / "clips" / "tiny.npz", scene=scene), on_step)
    assert bpy.context.scene == other and other.view_layers[0].objects.active == their
    assert [o.name for o in other.objects] == ["MyOtherCube"] and other.camera is None
    bpy.context.window.scene = scene
    check_capture(8)
    assert {"tiny_hand_R", "tiny_camera"} <= {o.name for o in scene.objects}
    assert bpy.context.view_layer.objects.active == cube


def test_undo_while_a_capture_runs(previous, fake_runtime, tmp_path, tiny_video):
    """The user makes a change and undoes it while the job runs (undo rebuilds every ID, so every Python
    reference the job might hold goes stale): the job writes into the scene as it is after the undo."""
    fake_runtime("ok", previous[1])
    bpy.ops.ed.undo_push(message="before the capture")
    before = user_part(fingerprint())

    def on_step(i, p):
        if p.stage == "detect" and "UserExtra" not in bpy.data.objects and not getattr(on_step, "done", False):
            bpy.context.scene.collection.objects.link(bpy.data.objects.new("UserExtra", None))
            bpy.ops.ed.undo_push(message="user change")
            assert bpy.ops.ed.undo() == {"FINISHED"}
            on_step.done = True

    run(capture_job(tiny_video, tmp_path / "clips" / "tiny.npz"), on_step)
    assert on_step.done and "UserExtra" not in bpy.data.objects
    check_capture(8)
    assert user_part(fingerprint()) == before


def test_user_in_edit_mode_when_the_capture_writes(previous, fake_runtime, tmp_path, tiny_video):
    """The user is editing their own mesh when the job writes: their edit is kept, and they are back in edit
    mode on it afterwards."""
    fake_runtime("ok", previous[1])
    me = bpy.data.meshes.new("MyMesh")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    obj = bpy.data.objects.new("MyMesh", me)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    bm = bmesh.from_edit_mesh(me)
    bm.verts.ensure_lookup_table()
    bm.verts[0].co.z = 0.5
    bmesh.update_edit_mesh(me)
    run(capture_job(tiny_video, tmp_path / "clips" / "tiny.npz"))
    assert bpy.context.mode == "EDIT_MESH" and bpy.context.view_layer.objects.active == obj
    bpy.ops.object.mode_set(mode="OBJECT")
    assert me.vertices[0].co.z == pytest.approx(0.5)
    check_capture(8)


def test_our_collection_excluded_from_the_view_layer(previous, tmp_path):
    """The user excluded (or hid) the capture's collection: a re-run still builds the rig in it."""
    bpy.context.view_layer.layer_collection.children["tiny"].exclude = True
    bpy.ops.hand_capture.import_clip(filepath=str(previous[1]))
    check_capture(8)
    assert bpy.context.view_layer.layer_collection.children["tiny"].exclude


# ----------------------------------------------------------------------------------------- worker killed


def _out_path(video) -> Path:
    job, prefs, _ = mods()
    return Path(job.clip_path_for(str(video), prefs.user_dir("clips")))


@pytest.mark.parametrize("mode, why", [("kill", r"killed by signal 9 \(SIGKILL\)"), ("crash", r"exit code 139")])
def test_worker_killed_reports_and_keeps_everything(previous, fake_runtime, tiny_video, mode, why):
    """A worker that dies: the operator's report says so; the scene, the previous capture and the clip file
    the previous run wrote are exactly as before; no partial file is left."""
    job, _, _ = mods()
    fake_runtime("ok", previous[0])
    bpy.ops.hand_capture.capture_video(filepath=str(tiny_video))  # a complete earlier capture and its clip
    out = _out_path(tiny_video)
    clip_bytes = out.read_bytes()
    before = fingerprint()
    fake_runtime(mode, previous[1])
    with pytest.raises(RuntimeError, match=rf"capture worker stopped without finishing \({why}\)"):
        bpy.ops.hand_capture.capture_video(filepath=str(tiny_video))
    assert_same(before, fingerprint())
    assert out.read_bytes() == clip_bytes and not Path(job.partial_path(str(out))).exists()


def test_worker_killed_from_outside_mid_run(previous, fake_runtime, tiny_video):
    """``kill -9`` of a running worker (one that was half-way through writing its clip): a clear report,
    the scene unchanged, the half-written file removed, nothing at the output path."""
    job, _, _ = mods()
    fake_runtime("hang", previous[1])
    out = _out_path(tiny_video)
    if out.exists():
        out.unlink()
    pid_file = Path(str(out) + ".pid")
    before = fingerprint()
    killed = []

    def killer():
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        Path(job.partial_path(str(out))).write_bytes(b"PK\x03\x04 half a clip")  # what a killed save leaves
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        killed.append(1)

    t = threading.Thread(target=killer)
    t.start()
    try:
        with pytest.raises(RuntimeError, match=r"capture worker stopped without finishing \(killed by signal 9 "
                                               r"\(SIGKILL\)\): fake worker starting \(full log: .*capture\.log\)"):
            bpy.ops.hand_capture.capture_video(filepath=str(tiny_video))
    finally:
        t.join()
    pid_file.unlink()
    assert killed
    assert_same(before, fingerprint())
    assert not out.exists() and not Path(job.partial_path(str(out))).exists()


def test_real_runtime_killed_mid_run(previous, tmp_path, tiny_video):
    """The real capture runtime (the project's .venv) killed once it has reported progress: a clear
    report, the scene unchanged, no clip."""
    job, _, _ = mods()
    CaptureError = ext_module("core.errors").CaptureError
    before = fingerprint()
    out = tmp_path / "real" / "tiny.npz"
    ext_root = str(Path(job.__file__).parent.parent)
    steps = job.capture_steps(job.CaptureSettings(video=str(tiny_video)), WORKER_PYTHON, ext_root, str(out),
                              bpy.context.scene, bpy.context.view_layer, wait=0.05)
    deadline = time.monotonic() + 120
    killed = False
    with pytest.raises(CaptureError, match=r"capture worker stopped without finishing \(killed by signal 9"):
        while True:
            p = next(steps)
            assert time.monotonic() < deadline, "the real runtime never reported progress"
            if p.stage != "start" and not killed:
                os.killpg(_find_worker(steps).proc.pid, signal.SIGKILL)
                killed = True
    steps.close()
    assert killed
    assert_same(before, fingerprint())
    assert not out.exists() and not Path(job.partial_path(str(out))).exists()


def _find_worker(gen):
    """The Worker a capture job's generator holds (its local ``worker``, in it or a generator it delegates to)."""
    while gen is not None:
        if gen.gi_frame is not None and "worker" in gen.gi_frame.f_locals:
            return gen.gi_frame.f_locals["worker"]
        gen = gen.gi_yieldfrom
    raise AssertionError("no worker in the job's frame")


# ----------------------------------------------------------------------------------------- re-run


def _add_user_bone(arm, name: str, parent: str = "hand_R.index3"):
    """A bone the user adds to our armature (in edit mode, as they would)."""
    vl = bpy.context.view_layer
    prev = vl.objects.active
    vl.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    eb = arm.data.edit_bones.new(name)
    eb.head, eb.tail, eb.roll = (0.01, 0.02, 0.03), (0.01, 0.05, 0.03), 0.3
    eb.parent = arm.data.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    vl.objects.active = prev


def test_rerun_replaces_only_ours(previous, tmp_path):
    """What the user added around a capture survives its re-run, bit for bit: their cube and its action,
    their camera, a bone they added to our rig and its keys, keys on a tip bone and on the rig object's
    own transform (channels the capture does not write), a prop parented to a hand bone, their material
    on our mesh, their collection our rig was linked into. Our own channels carry the new capture's keys."""
    arm = bpy.data.objects[RIG_R]
    mine = bpy.data.collections.new("MyCharacters")
    bpy.context.scene.collection.children.link(mine)
    mine.objects.link(arm)
    _add_user_bone(arm, "prop")
    arm.pose.bones["prop"].rotation_mode = "XYZ"
    for f, v in ((1, 0.2), (4, 0.7)):
        arm.pose.bones["prop"].rotation_euler.x = v
        arm.pose.bones["prop"].keyframe_insert("rotation_euler", index=0, frame=f)
        arm.pose.bones["hand_R.index4"].rotation_quaternion = (1, v, 0, 0)
        arm.pose.bones["hand_R.index4"].keyframe_insert("rotation_quaternion", frame=f)
        arm.location.z = v
        arm.keyframe_insert("location", index=2, frame=f)
    ring = bpy.data.objects.new("MyRing", bpy.data.meshes.new("MyRing"))
    bpy.context.scene.collection.objects.link(ring)
    ring.parent, ring.parent_type, ring.parent_bone = arm, "BONE", "hand_R.index2"
    ring.location = (0.001, 0.002, 0.003)
    ring.keyframe_insert("location", frame=3)
    skin = bpy.data.materials.new("MySkin")
    bpy.data.objects[f"{RIG_R}_mesh"].data.materials.append(skin)
    old_action = arm.animation_data.action
    slot = arm.animation_data.action_slot.identifier
    user_curves = {k: v for k, v in action_curves(old_action).items()
                   if "prop" in k[1] or "index4" in k[1] or k[1] == "location"}
    assert len(user_curves) == 1 + 4 + 1
    before = fingerprint()

    bpy.ops.hand_capture.import_clip(filepath=str(previous[1]))
    after = fingerprint()
    check_capture(8)
    # The user's objects and actions: identical.
    for k in user_part(before):
        if k[1] != "MyRing":
            assert after.get(k) == before[k], k
    # The prop now hangs on the new rig's bone of the same name; everything of its own is as it was.
    new_arm = bpy.data.objects[RIG_R]
    assert ring.parent == new_arm and ring.parent_bone == "hand_R.index2" and ring.parent_type == "BONE"
    assert after[("OB", "MyRing")][3:] == before[("OB", "MyRing")][3:]
    assert after[("OB", "MyRing")][:2] == before[("OB", "MyRing")][:2]
    # The user's bone, with its rest pose and parent, and the user's channels with every key.
    old_bones = {b[0]: b for b in before[("AR", RIG_R)]}
    new_bones = {b[0]: b for b in after[("AR", RIG_R)]}
    assert new_bones["prop"][1:4] == old_bones["prop"][1:4]  # parent, head, tail
    assert np.allclose(np.frombuffer(new_bones["prop"][4]), np.frombuffer(old_bones["prop"][4]), atol=1e-6)  # roll
    assert new_arm.pose.bones["prop"].rotation_mode == "XYZ"
    new_curves = action_curves(new_arm.animation_data.action)
    assert {k: new_curves.get(k) for k in user_curves} == user_curves
    assert new_arm.animation_data.action_slot.identifier == slot
    # Our channels: the new capture's 8 keys.
    assert len(new_curves) == len(user_curves) + 3 + 16 * 4
    # The new rig is in the user's collection (once), as the old one was.
    assert list(mine.objects) == [new_arm]
    # The user's material on our old mesh is on the new one.
    assert [m.name for m in bpy.data.objects[f"{RIG_R}_mesh"].data.materials] == ["MySkin"]


def test_rerun_with_the_users_action_on_our_rig(previous):
    """The user assigned their own action to our rig: the re-run does not delete it and keeps it saved
    (a fake user), and says so."""
    arm = bpy.data.objects[RIG_R]
    mine = bpy.data.actions.new("MyHandAction")
    mine.use_fake_user = False
    slot = mine.slots.new(id_type="OBJECT", name="MyHand")
    arm.animation_data.action = mine
    arm.animation_data.action_slot = slot
    arm.location.x = 1.0
    arm.keyframe_insert("location", index=0, frame=2)
    before = action_curves(mine)
    job = ext_module("blender_addon.job")
    out = job.drain(job.import_steps(str(previous[1]), bpy.context.scene, bpy.context.view_layer))
    assert "MyHandAction" in bpy.data.actions and bpy.data.actions["MyHandAction"].use_fake_user
    assert action_curves(bpy.data.actions["MyHandAction"]) == before
    assert any("MyHandAction" in w and "fake user" in w for w in out.warnings)
    check_capture(8)


# ----------------------------------------------------------------------------------------- undo


@pytest.mark.parametrize("op", ["import", "capture"])
def test_each_operator_is_one_undo_step(previous, fake_runtime, tiny_video, op):
    """Called as the UI calls it (with an undo push), a capture or an import is one undo step: one undo
    brings back exactly the file before it (the previous capture and the user's content), redo the result."""
    fake_runtime("ok", previous[1])
    bpy.ops.ed.undo_push(message="before")
    before = fingerprint()
    if op == "import":
        assert bpy.ops.hand_capture.import_clip("EXEC_DEFAULT", True, filepath=str(previous[1])) == {"FINISHED"}
    else:
        assert bpy.ops.hand_capture.capture_video("EXEC_DEFAULT", True, filepath=str(tiny_video)) == {"FINISHED"}
    after = fingerprint()
    check_capture(8)
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert_same(before, fingerprint())
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert_same(after, fingerprint())
    check_capture(8)


def test_failed_operator_pushes_no_undo_step(previous, fake_runtime, tiny_video):
    """A capture that fails changes nothing and adds no undo step: one undo then undoes the user's own last
    change, not an empty step of ours."""
    bpy.ops.ed.undo_push(message="base")
    base = fingerprint()
    bpy.data.objects["UserCube"].location.x = 7.0
    bpy.ops.ed.undo_push(message="user moved the cube")
    fake_runtime("crash", previous[1])
    with pytest.raises(RuntimeError, match="stopped without finishing"):
        bpy.ops.hand_capture.capture_video("EXEC_DEFAULT", True, filepath=str(tiny_video))
    assert bpy.data.objects["UserCube"].location.x == 7.0
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert_same(base, fingerprint())


def addon_classes() -> list:
    """Every class the add-on registers (operators, panels, preferences, the settings group)."""
    return [c for m in ("operators", "panels", "blender_addon.prefs", "blender_addon.props")
            for c in ext_module(m).classes]


def test_operators_that_change_data_have_undo(ext):
    """Every operator that changes bpy data registers an undo step; those that change none (runtime set-up
    and check, which only write files outside Blender) do not."""
    changes = {"hand_capture.capture_video", "hand_capture.import_clip", "hand_capture.pick_video",
               "hand_capture.refine_contact", "hand_capture.grasp_lock", "hand_capture.retarget",
               "hand_capture.retarget_fill", "hand_capture.retarget_load"}  # not export / retarget_save: files only
    ops = {c.bl_idname: c for c in addon_classes() if issubclass(c, bpy.types.Operator)}
    assert changes < set(ops)
    for idname, cls in ops.items():
        assert ("UNDO" in cls.bl_options) == (idname in changes), idname


# ----------------------------------------------------------------------------------------- save and reopen


def test_save_close_reopen_keeps_capture_and_settings(previous, tmp_path, tiny_video):
    """Saved and reopened, the file has the same rig, bones, mesh, keys, camera with its video background,
    and the panel's capture settings; a re-run after reopening still recognises its own data."""
    hc = bpy.context.scene.hand_capture
    hc.filepath, hc.frame_first, hc.frame_last, hc.stride, hc.hands = str(tiny_video), 3, 20, 2, "1"
    hc.camera, hc.focal_mm, hc.match_fps, hc.with_vertices, hc.min_confidence = "FOCAL_MM", 35.0, False, True, 0.3
    bpy.context.scene.frame_set(bpy.context.scene.frame_current)  # animated values as the file will show them
    before = fingerprint()
    path = tmp_path / "saved.blend"
    assert bpy.ops.wm.save_as_mainfile(filepath=str(path)) == {"FINISHED"}
    bpy.ops.wm.read_homefile(use_empty=True)
    assert "tiny_hand_R" not in bpy.data.objects
    assert bpy.ops.wm.open_mainfile(filepath=str(path)) == {"FINISHED"}
    assert_same(before, fingerprint())
    bg = bpy.data.objects["tiny_camera"].data.background_images[0]
    assert bg.clip is not None and Path(os.path.normpath(bpy.path.abspath(bg.clip.filepath))) == tiny_video
    check_capture(6)
    bpy.ops.hand_capture.import_clip(filepath=str(previous[1]))
    check_capture(8)
    assert len([o for o in bpy.data.objects if o.name.startswith("tiny")]) == 5 and len(bpy.data.collections) == 1


# ----------------------------------------------------------------------------------------- disable, enable


def _registered() -> dict:
    """What the add-on can leave behind in Blender: handlers, its classes, the Scene property, operators,
    add-on keymaps, timers of its modules, running jobs."""
    import sys

    handlers = {name: [getattr(f, "__module__", "") + "." + getattr(f, "__name__", "") for f in lst]
                for name in dir(bpy.app.handlers) if isinstance(lst := getattr(bpy.app.handlers, name), list)}
    kc = bpy.context.window_manager.keyconfigs.addon
    funcs = [f for m in list(sys.modules.values()) if getattr(m, "__name__", "").startswith(EXT_MODULE)
             for f in vars(m).values() if callable(f) and getattr(f, "__module__", "").startswith(EXT_MODULE)]
    jobrun = ext_module("operators.jobrun")
    return {
        "handlers": handlers,
        "classes": sorted(c.__name__ for c in addon_classes() if c.is_registered),
        "rna": sorted(c.__name__ for c in addon_classes() if hasattr(bpy.types, c.__name__)),
        "scene_prop": hasattr(bpy.types.Scene, "hand_capture"),
        "operators": sorted(dir(bpy.ops.hand_capture)),
        "keymaps": sorted((km.name, len(km.keymap_items)) for km in kc.keymaps) if kc else None,
        "timers": sorted(f.__qualname__ for f in funcs if bpy.app.timers.is_registered(f)),
        "jobs": sorted(jobrun._ACTIVE),
    }


def test_disable_enable_leaks_nothing_and_keeps_settings(scene, ext):
    """Disable and re-enable the add-on twice: afterwards exactly what was registered before is registered
    (no extra handlers, classes, timers, keymaps); while disabled, none of its classes or operators remain;
    the scene's Hand Capture settings come back."""
    scene.hand_capture.stride = 4
    scene.hand_capture.filepath = "/some/video.mp4"
    enabled = _registered()
    assert enabled["scene_prop"] and enabled["classes"] and enabled["timers"] == [] and enabled["jobs"] == []
    try:
        for _ in range(2):
            addon_utils.disable(EXT_MODULE, default_set=True)
            off = _registered()
            assert not off["scene_prop"] and off["classes"] == off["rna"] == [] and off["operators"] == []
            assert off["handlers"] == enabled["handlers"] and off["keymaps"] == enabled["keymaps"]
            assert not hasattr(bpy.types, "HANDCAP_OT_capture_video")
            addon_utils.enable(EXT_MODULE, default_set=True)
            assert_same(enabled, _registered())
            assert scene.hand_capture.stride == 4 and scene.hand_capture.filepath == "/some/video.mp4"
    finally:
        if EXT_MODULE not in bpy.context.preferences.addons:
            addon_utils.enable(EXT_MODULE, default_set=True)
    assert EXT_MODULE in bpy.context.preferences.addons


def test_disable_while_a_job_runs_stops_it(scene, ext, fake_runtime, video_clip, tmp_path, tiny_video):
    """Disabling the add-on while a modal capture runs (Blender then drops the operator without calling its
    cancel): the job is closed, its worker stopped, and after re-enabling a new capture may start."""
    jobrun = ext_module("operators.jobrun")
    fake_runtime("hang", video_clip[1])
    out = tmp_path / "clips" / "tiny.npz"
    steps = capture_job(tiny_video, out)
    pid_file = Path(str(out) + ".pid")
    deadline = time.monotonic() + 30
    while not pid_file.exists():
        next(steps)
        assert time.monotonic() < deadline
    pid = int(pid_file.read_text())
    jobrun.track("hand_capture.capture_video", steps)  # what the modal operator does when it starts
    assert jobrun.running("hand_capture.capture_video")
    try:
        addon_utils.disable(EXT_MODULE, default_set=True)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        with pytest.raises(StopIteration):
            next(steps)
    finally:
        addon_utils.enable(EXT_MODULE, default_set=True)
    assert not ext_module("operators.jobrun").running("hand_capture.capture_video")
    assert bpy.ops.hand_capture.capture_video.poll()
