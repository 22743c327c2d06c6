"""Contact refinement on synthetic grasps with known truth (issue 10 must-show).

    python -m benchmarks.contact [--frames 300] [--objects mug,banana] [--threads 2]
    python -m benchmarks.contact --runtime [--rounds 3] [--threads 2] [--baseline DIR]

For each shared YCB object: the open hand grasps it (`core.contact.scenes`, built independently of
the optimiser), the grasp is carried over T frames, the "capture" is pushed into the object and
jittered; `refine_contact` cleans it up. Printed per object, before -> after: frames with max
penetration <= 2 mm (%), intersection volume (cm^3, 2 mm voxels, mean / max over frames), contact
recall (fingertips touching in the truth that touch after, 2 mm), mean joint error to the truth
(mm), jitter (mm/frame^2), and the refinement's wall time. Then two hands built to interpenetrate,
and the runtime on a >= 20k-face object.

``--runtime``: only the issue's runtime figure, grid build + refinement of 300 frames against the 32,000-face
mug (the scene built first, not timed; no metrics), each in a fresh process; with ``--baseline DIR`` (e.g. a
``git archive`` of an older commit) that tree's code is timed the same way in the same round, alternating, and
the ratio printed (the machine is noisy: only ratios measured in one run mean anything).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from core.contact import metrics, scenes
from core.contact.mesh import load_mesh, mesh_from_arrays
from core.contact.refine import ContactConfig, refine_contact
from core.contact.run import FIELD_RES
from core.contact.sdf import Body, Field, signed_distance
from core.hand.load import load_model
from core.hand.mano import ManoLayer

from .common import DATA

OBJECTS = ("mug", "banana", "bleach_cleanser", "power_drill", "cracker_box", "mustard_bottle")


def _mesh(name: str):
    path = next((DATA / "objects").glob(f"ycb_*_{name}.obj"))
    return load_mesh(path)


def evaluate_scene(layer32, scene, rot, tr) -> dict:
    """Figures of a hand track (rot (T,16,3,3), tr (T,3)) against the scene's object and truth."""
    bb = scene.betas.float().expand(len(rot), -1)
    with torch.no_grad():
        out = layer32(bb, None, None, tr.float(), with_vertices=True, rotmats=rot.float())
        truth = layer32(bb, None, None, scene.truth_transl.float(), with_vertices=True, rotmats=scene.truth_rot.float())
    v = out.vertices.numpy().astype(np.float64)
    vt = truth.vertices.numpy().astype(np.float64)
    m = scene.mesh
    inv = np.linalg.inv(scene.transforms)
    v_obj = v @ inv[:, :3, :3].transpose(0, 2, 1) + inv[:, None, :3, 3]
    vt_obj = vt @ inv[:, :3, :3].transpose(0, 2, 1) + inv[:, None, :3, 3]
    T, V = v.shape[:2]
    d = signed_distance(m, v_obj.reshape(-1, 3))[0].reshape(T, V)
    dt = signed_distance(m, vt_obj.reshape(-1, 3))[0].reshape(T, V)
    from core.contact.refine import region_vertices

    regions = region_vertices(layer32)
    tip_d = np.stack([np.abs(d[:, r]).min(1) for r in regions[:5]], 1)
    tip_t = np.stack([np.abs(dt[:, r]).min(1) for r in regions[:5]], 1)
    pen = np.maximum(-d.min(1), 0) * 1000
    faces = layer32.faces.numpy()
    vol = metrics.intersection_volume_frames(v_obj, faces, m.vertices, m.faces, pitch=0.002)
    j = out.joints21.numpy()
    jt = truth.joints21.numpy()
    return {"ok_frames": float((pen <= 2.0).mean() * 100), "max_pen": float(pen.max()),
            "vol_mean": float(np.mean(vol)), "vol_p95": float(np.percentile(vol, 95)), "vol_max": float(np.max(vol)),
            "recall": metrics.contact_recall(tip_t, tip_d), "err": float(np.linalg.norm(j - jt, axis=-1).mean() * 1000),
            "jitter": metrics.jitter(j, np.ones(T, bool))}


def run_object(layer32, layer64, mesh, frames: int, seed: int = 0, cfg: ContactConfig | None = None,
               res: int = FIELD_RES) -> tuple:
    """(scene, before, after, times): times = wall and process CPU seconds of the grid build and of grid +
    refinement, {"field": (wall, cpu), "all": (wall, cpu)}."""
    scene = scenes.grasp_scene(layer64, mesh, n_frames=frames, seed=seed)
    before = evaluate_scene(layer32, scene, scene.capture_rot, scene.capture_transl)
    t0, c0 = time.perf_counter(), time.process_time()
    body = Body(mesh, scene.transforms, Field.build(mesh, res=res))
    t_field = (time.perf_counter() - t0, time.process_time() - c0)
    track = scenes.scene_track(layer32, scene)
    K = torch.eye(3).repeat(frames, 1, 1)
    out = refine_contact([track], [body], K, cfg)[0]
    t_all = (time.perf_counter() - t0, time.process_time() - c0)
    after = evaluate_scene(layer32, scene, out.rotmats, out.transl)
    return scene, before, after, {"field": t_field, "all": t_all}


_RUNTIME_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
import torch, igl
torch.set_num_threads(int(sys.argv[2]))
from benchmarks.contact import _mesh
from core.contact import scenes
from core.contact.mesh import mesh_from_arrays
from core.contact.refine import refine_contact
from core.contact.run import FIELD_RES
from core.contact.sdf import Body, Field
from core.hand.load import load_model
from core.hand.mano import ManoLayer
model = load_model("right")
l32, l64 = ManoLayer(model), ManoLayer(model, dtype=torch.float64)
mug = _mesh("mug")
v, f = igl.upsample(mug.vertices, mug.faces, 2)
big = mesh_from_arrays(v, f, "mug_x16")
scene = scenes.grasp_scene(l64, big, n_frames=300, seed=0)
track = scenes.scene_track(l32, scene)
K = torch.eye(3).repeat(300, 1, 1)
t0, c0 = time.perf_counter(), time.process_time()
body = Body(big, scene.transforms, Field.build(big, res=FIELD_RES))
refine_contact([track], [body], K)
print(time.perf_counter() - t0, time.process_time() - c0)
"""


def runtime(rounds: int, threads: int, baseline: str | None) -> None:
    """The issue's runtime figure: grid + refinement, 300 frames, 32k-face mug, fresh processes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = str(Path(__file__).resolve().parents[1])
    trees = [("this tree", here)] + ([("baseline", str(Path(baseline).resolve()))] if baseline else [])
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", HANDCAP_DATA=str(DATA))
    if env.get("HANDCAP_CACHE"):  # the same open-model cache for both trees
        env["HANDCAP_CACHE"] = str(Path(env["HANDCAP_CACHE"]).resolve())
    print(f"grid + refinement, 300 frames x 32,000-face mug, torch threads {threads}; wall / CPU seconds")
    for r in range(rounds):
        got = {}
        for name, tree in (trees if r % 2 == 0 else trees[::-1]):
            out = subprocess.run([sys.executable, "-c", _RUNTIME_CHILD, tree, str(threads)], cwd=tree, env=env,
                                 capture_output=True, text=True, check=True).stdout.split()
            got[name] = (float(out[-2]), float(out[-1]))
        line = ", ".join(f"{k} {w:.2f} / {c:.2f} s" for k, (w, c) in got.items())
        if baseline:
            line += f"; ratio (this / baseline) wall {got['this tree'][0] / got['baseline'][0]:.2f}x"
        load = os.getloadavg()[0]
        print(f"round {r + 1}: {line} (load {load:.1f})", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--objects", default=",".join(OBJECTS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--res", type=int, default=FIELD_RES, help="SDF grid nodes along the longest side")
    ap.add_argument("--runtime", action="store_true", help="only the runtime figure (see the module docstring)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", help="with --runtime: another tree's code timed in the same rounds")
    args = ap.parse_args(argv)
    if args.runtime:
        return runtime(args.rounds, args.threads, args.baseline)
    torch.set_num_threads(args.threads)
    model = load_model("right")
    layer32, layer64 = ManoLayer(model), ManoLayer(model, dtype=torch.float64)
    print(f"{args.frames} frames per scene, torch threads {args.threads}")
    print("| object | touching tips | frames <= 2 mm % | max pen mm | volume cm^3 mean / p95 / max | contact recall | "
          "joint error mm | jitter | grid s wall / CPU | grid + refine s wall / CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in [x for x in args.objects.split(",") if x]:  # --objects "": only the large-mesh runtime
        mesh = _mesh(name)
        scene, b, a, t = run_object(layer32, layer64, mesh, args.frames, res=args.res)
        (tf, cf), (ta, ca) = t["field"], t["all"]
        print(f"| {name} | {int(scene.touching.sum())} | {b['ok_frames']:.0f} -> **{a['ok_frames']:.0f}** | "
              f"{b['max_pen']:.1f} -> {a['max_pen']:.1f} | {b['vol_mean']:.2f} / {b['vol_p95']:.2f} / {b['vol_max']:.2f} -> "
              f"**{a['vol_mean']:.2f} / {a['vol_p95']:.2f} / {a['vol_max']:.2f}** | {b['recall']:.2f} -> **{a['recall']:.2f}** | "
              f"{b['err']:.1f} -> **{a['err']:.1f}** | {b['jitter']:.2f} -> {a['jitter']:.2f} | {tf:.1f} / {cf:.1f} | "
              f"{ta:.1f} / {ca:.1f} |",
              flush=True)
    # runtime on a >= 20k-face object: the mug subdivided (igl.upsample, 4 triangles per triangle, twice)
    import igl

    mug = _mesh("mug")
    v, f = igl.upsample(mug.vertices, mug.faces, 2)
    big = mesh_from_arrays(v, f, "mug_x16")
    scene, b, a, t = run_object(layer32, layer64, big, args.frames, res=args.res)
    (tf, cf), (ta, ca) = t["field"], t["all"]
    print(f"\n{big.n_faces}-face mug, {args.frames} frames: field build {tf:.1f} s wall / {cf:.1f} s CPU, field + "
          f"refinement {ta:.1f} s wall / {ca:.1f} s CPU; frames <= 2 mm {b['ok_frames']:.0f} -> {a['ok_frames']:.0f} %, "
          f"max pen {b['max_pen']:.1f} -> {a['max_pen']:.1f} mm, volume max {a['vol_max']:.2f} cm^3, "
          f"recall {a['recall']:.2f}, joint error {b['err']:.1f} -> {a['err']:.1f} mm")


if __name__ == "__main__":
    main()
