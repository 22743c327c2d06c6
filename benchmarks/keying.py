"""Keying speed: 2 hands x 600 frames, the add-on's channelbag path vs keyframe_insert, side by side.

Both write the same keys (16 bone quaternions + the wrist location per hand and frame) onto the same
rigs in one run; the script checks that the two actions hold the same values and prints the ratio.
Run: ``.venv/bin/python -m benchmarks.keying`` (or ``make bench``).
"""
from __future__ import annotations

import importlib.util
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


def load_addon_source(name: str = "hand_capture_dev"):
    """Import the extension from this checkout as package ``name`` (not registered)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _models():
    from core.hand.load import load_model

    return {side: load_model(side) for side in SIDES}


def _poses(rng, n):
    """Smooth random MANO motion: global_orient (n, 3), hand_pose (n, 15, 3), transl (n, 3)."""
    t = np.linspace(0, 4 * np.pi, n)[:, None]
    go = rng.normal(0, 0.5, 3) + 0.4 * np.sin(t + rng.normal(0, 1, 3))
    hp = rng.normal(0, 0.2, (15, 3))[None] + 0.5 * np.sin(t[:, :, None] + rng.normal(0, 1, (15, 3)))[:, :, :]
    tr = np.array([0.0, 0.0, 0.45]) + 0.05 * np.sin(t + rng.normal(0, 1, 3))
    return go, hp, tr


def _key_insert(keys, arm, name):
    """The slow way: set each pose bone and call keyframe_insert, per frame."""
    import bpy

    arm.animation_data_create().action = bpy.data.actions.new(name)
    pbs = [arm.pose.bones[b] for b in keys.bone_names]
    for k, frame in enumerate(keys.frames.tolist()):
        pbs[0].location = keys.root_location[k]
        pbs[0].keyframe_insert("location", frame=frame, group=pbs[0].name)
        for b, pb in enumerate(pbs):
            pb.rotation_quaternion = keys.quats[b, k]
            pb.keyframe_insert("rotation_quaternion", frame=frame, group=pb.name)
    return arm.animation_data.action


def _values(action, arm):
    from bpy_extras import anim_utils

    bag = anim_utils.action_get_channelbag_for_slot(action, arm.animation_data.action_slot)
    out = {}
    for fc in bag.fcurves:
        co = np.empty(len(fc.keyframe_points) * 2, np.float32)
        fc.keyframe_points.foreach_get("co", co)
        out[(fc.data_path, fc.array_index)] = co
    return out


def main() -> None:
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="handcap-bench-"))
    sys.path.insert(0, str(ROOT))
    import bpy

    pkg = load_addon_source()
    rig = importlib.import_module(f"{pkg.__name__}.blender_addon.rig")
    keying = importlib.import_module(f"{pkg.__name__}.blender_addon.keying")
    bpy.ops.wm.read_homefile(use_empty=True)
    scene, view_layer = bpy.context.scene, bpy.context.view_layer
    models = _models()
    rng = np.random.default_rng(0)
    hands = []
    for side in SIDES:
        m = models[side]
        v = m.shaped_vertices(None)
        layout = rig.rig_layout(m.rest_joints(None), v[m.tip_vertex_ids], side)
        fast_arm = rig.write_armature(layout, f"fast_{side}", scene.collection, view_layer)
        slow_arm = rig.write_armature(layout, f"slow_{side}", scene.collection, view_layer)
        hands.append((layout, fast_arm, slow_arm, _poses(rng, N_FRAMES)))
    frames = np.arange(1, N_FRAMES + 1, dtype=np.float64)
    valid = np.ones(N_FRAMES, bool)

    # 1. The add-on's path: numpy pose -> quaternion keys, then channelbag foreach_set; the median of
    #    REPEATS runs (each on fresh actions), as the machine is shared and noisy.
    maths, writes = [], []
    for r in range(REPEATS):
        for _, fast_arm, _, _ in hands:
            if fast_arm.animation_data and fast_arm.animation_data.action:
                bpy.data.actions.remove(fast_arm.animation_data.action)
        t0 = time.perf_counter()
        all_keys = [keying.hand_keys(go, hp, tr, valid, frames, layout) for layout, _, _, (go, hp, tr) in hands]
        t1 = time.perf_counter()
        for keys, (_, fast_arm, _, _) in zip(all_keys, hands):
            keying.write_action(keys, f"fast_{fast_arm.name}", fast_arm)
        t2 = time.perf_counter()
        maths.append(t1 - t0)
        writes.append(t2 - t1)
    # 2. keyframe_insert, same keys (once: it takes seconds).
    t2 = time.perf_counter()
    for keys, (_, _, slow_arm, _) in zip(all_keys, hands):
        _key_insert(keys, slow_arm, f"slow_{slow_arm.name}")
    t3 = time.perf_counter()

    worst = 0.0
    n_keys = n_curves = 0
    for _, fast_arm, slow_arm, _ in hands:
        fast = _values(fast_arm.animation_data.action, fast_arm)
        slow = _values(slow_arm.animation_data.action, slow_arm)
        assert fast.keys() == slow.keys(), "the two paths made different F-curves"
        for k in fast:
            worst = max(worst, float(np.abs(fast[k] - slow[k]).max()))
            n_keys += fast[k].shape[0] // 2
        n_curves += len(fast)
    fast_maths, fast_write = float(np.median(maths)), float(np.median(writes))
    fast_total, slow = float(np.median(np.add(maths, writes))), t3 - t2
    print(f"keying: {len(hands)} hands x {N_FRAMES} frames = {n_keys:,} keys on {n_curves} F-curves "
          f"(Blender {bpy.app.version_string}); the two paths agree to {worst:.1e}")
    print(f"channelbag foreach_set: {fast_total:.4f} s (median of {REPEATS}: {fast_maths:.4f} s pose->quaternion "
          f"maths, {fast_write:.4f} s writing)")
    print(f"keyframe_insert:        {slow:.4f} s")
    print(f"ratio: {slow / fast_total:.0f}x faster (writing alone: {slow / fast_write:.0f}x)")
    if worst > 1e-6:
        raise SystemExit("the channelbag and keyframe_insert keys differ")
    if fast_total >= 0.5 or slow / fast_total < 50:
        raise SystemExit(f"below target: {fast_total:.3f} s (want < 0.5 s), {slow / fast_total:.0f}x (want >= 50x)")


if __name__ == "__main__":
    main()
