"""Retarget speed: 2 hands x 600 frames onto a generated Rigify rig, the add-on's path vs the constraint method.

The constraint method is what Rokoko's retargeting and Expy-Kit do: helper bones with the character's finger
bones' rest rotations (through the rest alignment) parented to our hand bones, world-space COPY_ROTATION
constraints on the character's 30 finger controls, ``bpy.ops.nla.bake`` (visual keying, constraints cleared),
then the helpers removed. Ours: `blender_addon.retarget.retarget` (read the keys, numpy, channelbag writes into
a new action). Both run in one process on the same rig and motion; the captured wrist is held turned onto the
character's rest hand (where the two methods mean the same thing) while the fingers move, and the script checks
that the two results agree on sampled frames.

Run in a Blender-like interpreter (the bpy wheel; Rigify ships with it), e.g. the test matrix's venv:
``HANDCAP_CACHE=build/cache .venvs/blender-5.0.1/bin/python -m benchmarks.retarget``.
"""
from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
N_FRAMES = 600
REPEATS = 5
SIDES = ("right", "left")


def _mat(m) -> np.ndarray:
    return np.array([list(r) for r in m], np.float64)


def _rigify():
    import addon_utils
    import bpy

    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    meta = bpy.context.active_object
    bpy.ops.pose.rigify_generate()
    char = bpy.context.active_object
    meta.hide_set(True)
    return char


def _constraint_method(scene, hands, char, helpers, frames):
    """Helper bones + COPY_ROTATION + nla.bake; the baked action. helpers: {side: [(target bone, source bone,
    rest (3, 3))]}."""
    import bpy
    from mathutils import Matrix, Vector

    vl = bpy.context.view_layer
    made = {}
    for side, src in hands.items():
        vl.objects.active = src
        bpy.ops.object.mode_set(mode="EDIT")
        eb = src.data.edit_bones
        for tgt, sbone, rest in helpers[side]:
            e = eb.new(f"RT-{tgt}")
            head = Vector(eb[sbone].head)
            e.head, e.tail = head, head + Vector(rest[:, 1].tolist()) * 0.02
            e.align_roll(Vector(rest[:, 2].tolist()))
            e.parent = eb[sbone]
            e.use_deform = False
        bpy.ops.object.mode_set(mode="OBJECT")
        made[side] = [f"RT-{t}" for t, _, _ in helpers[side]]
    targets = []
    for side, src in hands.items():
        for (tgt, _, _), helper in zip(helpers[side], made[side]):
            c = char.pose.bones[tgt].constraints.new("COPY_ROTATION")
            c.target, c.subtarget = src, helper
            c.target_space = c.owner_space = "WORLD"
            targets.append(tgt)
    vl.objects.active = char
    bpy.ops.object.mode_set(mode="POSE")
    for pb in char.pose.bones:  # Blender 5.0 selects pose bones, 4.5 their bones
        setattr(pb if hasattr(pb, "select") else pb.bone, "select", pb.name in targets)
    bpy.ops.nla.bake(frame_start=int(frames[0]), frame_end=int(frames[-1]), only_selected=True, visual_keying=True,
                     clear_constraints=True, use_current_action=False, bake_types={"POSE"})
    bpy.ops.object.mode_set(mode="OBJECT")
    for side, src in hands.items():  # no helper soup left in the file
        vl.objects.active = src
        bpy.ops.object.mode_set(mode="EDIT")
        for name in made[side]:
            src.data.edit_bones.remove(src.data.edit_bones[name])
        bpy.ops.object.mode_set(mode="OBJECT")
    return char.animation_data.action


def _pose(char, names, scene, frames):
    out = np.empty((len(frames), len(names), 3, 3))
    for k, f in enumerate(frames):
        scene.frame_set(int(f))
        for b, n in enumerate(names):
            out[k, b] = _mat(char.pose.bones[n].matrix)[:3, :3]
    return out


def main() -> None:
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="handcap-bench-"))
    sys.path.insert(0, str(ROOT))
    import bpy

    from benchmarks.keying import _models, _poses, load_addon_source

    pkg = load_addon_source()
    rig = importlib.import_module(f"{pkg.__name__}.blender_addon.rig")
    keying = importlib.import_module(f"{pkg.__name__}.blender_addon.keying")
    convert = importlib.import_module(f"{pkg.__name__}.blender_addon.convert")
    retarget = importlib.import_module(f"{pkg.__name__}.blender_addon.retarget")
    solve = importlib.import_module(f"{pkg.__name__}.core.retarget.solve")
    rigs = importlib.import_module(f"{pkg.__name__}.core.retarget.rigs")
    maths = importlib.import_module(f"{pkg.__name__}.core.retarget.maths")
    bpy.ops.wm.read_homefile(use_empty=True)
    scene, view_layer = bpy.context.scene, bpy.context.view_layer
    scene.frame_start, scene.frame_end = 1, N_FRAMES
    char = _rigify()
    skel = retarget.skeleton(char)
    models = _models()
    rng = np.random.default_rng(0)
    frames = np.arange(1, N_FRAMES + 1, dtype=np.float64)
    hands, helpers, targets = {}, {}, []
    for side in SIDES:
        m = models[side]
        v = m.shaped_vertices(None)
        layout = rig.rig_layout(m.rest_joints(None), v[m.tip_vertex_ids], side)
        src = rig.write_armature(layout, rig.rig_name(side), scene.collection, view_layer)
        names = rigs.preset_bones("RIGIFY", side)
        slots = {k: skel.index(n) for k, n in names.items()}
        rest16 = layout.rest_rot[:16]
        a = solve.hand_alignment(solve.SourceHand(side, rest16, layout.heads[:16], np.zeros((1, 16, 4))), skel, slots)
        _, hp, tr = _poses(rng, N_FRAMES)
        # the wrist held turned onto the character's rest hand: world rotation A @ rest, camera axes for hand_keys
        w_world = a @ rest16[0] @ rest16[0].T  # = A (about the wrist)
        go = np.tile(_rotvec(w_world) @ convert.CAM_TO_WORLD, (N_FRAMES, 1))  # world -> camera axes: C^T a
        keys = keying.hand_keys(go, hp, tr, np.ones(N_FRAMES, bool), frames, layout)
        keying.write_action(keys, f"captured_{side}", src)
        hands[side] = src
        helpers[side] = [(names[s], rig.bone_name(side, s), a.T @ skel.rest[slots[s]]) for s in rigs.FINGER_SLOTS]
        targets += [names[s] for s in rigs.FINGER_SLOTS]
    sources = [hands[s] for s in SIDES]

    # 1. Ours, median of REPEATS (each onto the rig without an action, its new action removed afterwards).
    times = []
    for r in range(REPEATS):
        t0 = time.perf_counter()
        ours, _ = retarget.retarget(scene, sources, char, "RIGIFY")
        times.append(time.perf_counter() - t0)
        if r < REPEATS - 1:
            char.animation_data.action = None
            bpy.data.actions.remove(ours)
    fast = float(np.median(times))
    sample = np.linspace(1, N_FRAMES, 25).round()
    ours_pose = _pose(char, targets, scene, sample)
    n_keys = sum(len(fc.keyframe_points) for fc in retarget._bag(char).fcurves)
    char.animation_data.action = None

    # 2. Constraints + nla.bake (once: it takes seconds).
    t0 = time.perf_counter()
    baked = _constraint_method(scene, hands, char, helpers, frames)
    slow = time.perf_counter() - t0
    baked_pose = _pose(char, targets, scene, sample)
    worst = float(maths.angle_deg(ours_pose, baked_pose).max())
    moved = float(np.median(maths.angle_deg(ours_pose, skel.rest[[skel.index(n) for n in targets]][None])))

    print(f"retarget: {len(SIDES)} hands x {N_FRAMES} frames onto the generated Rigify rig ({len(targets)} finger "
          f"controls, {n_keys:,} keys; Blender {bpy.app.version_string}); the two methods agree to {worst:.3f} deg on "
          f"{len(sample)} sampled frames (the bones turned by a median {moved:.0f} deg from rest)")
    print(f"ours (read keys, numpy, channelbag writes, new action): {fast:.4f} s (median of {REPEATS}: "
          f"{', '.join(f'{t:.3f}' for t in times)})")
    print(f"constraints + nla.bake (helper bones, COPY_ROTATION, visual bake, clean-up): {slow:.4f} s")
    print(f"ratio: {slow / fast:.0f}x faster")
    print(f"(baked action {baked.name!r})")
    if worst > 0.5:
        raise SystemExit("the two methods disagree")
    if fast >= 1.0 or slow / fast < 20:
        raise SystemExit(f"below target: {fast:.3f} s (want < 1 s), {slow / fast:.0f}x (want >= 20x)")


def _rotvec(r: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) -> rotation vector (3,)."""
    angle = np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))
    v = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    return v / (2 * np.sin(angle)) * angle if angle > 1e-9 else v / 2


if __name__ == "__main__":
    main()
