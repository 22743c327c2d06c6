"""Render the demo clip headless: ``python blender_addon/demo_render.py --in scene.npz --out DIR``.

Run by `core.demo` in a subprocess with the same Python (bpy as a module), so that `core` never
imports bpy. Imports only bpy, numpy, the standard library and the add-on's numpy-only `convert.py`
(the camera conversion the add-on itself uses); everything it draws was computed by
`core.demo` (compute first, create bpy data last): this script only turns arrays into bpy data and
pixels.

Input ``scene.npz`` (no pickles):
    vertices (T, V, 3) float32: metres, OpenCV camera frame (x right, y down, z forward), per frame;
    faces (F, 3) int64: triangles of that mesh (hand and forearm together);
    K (3, 3) float64: pixel intrinsics (OpenCV pixel-centre convention), square pixels;
    image_size (2,) int: [width, height];
    skin_rgb (3,), background_rgb (3,) float: linear colours 0..1.
Output: ``DIR/0000.png`` ... one 8-bit RGB PNG per frame. Stdout carries one JSON object per line
(``{"event": "progress", "done": i, "total": T}``, then ``{"event": "done", "frames": T}``);
Blender's own log lines go to stderr.

Frames: the camera object sits at the world origin turned 180 degrees about X, so its view axis
(local -Z) is world +Z and its up (local +Y) is world -Y: the world frame then *is* the OpenCV camera
frame and the vertices are used as given, with no conversion.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np


def mesh_from_arrays(bpy, name, verts, faces, smooth):
    """A new mesh of triangles faces (F, 3) over vertices (V, 3), smooth- or flat-shaded (also used by
    synth_render.py)."""
    mesh = bpy.data.meshes.new(name)
    verts = np.ascontiguousarray(verts, np.float32)
    faces = np.ascontiguousarray(faces, np.int32)
    mesh.vertices.add(len(verts))
    mesh.vertices.foreach_set("co", verts.ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(len(faces), 3, np.int32))
    mesh.update()
    mesh.validate()
    mesh.polygons.foreach_set("use_smooth", np.full(len(mesh.polygons), bool(smooth)))
    return mesh


def _emit(stream, event: str, **fields) -> None:
    stream.write(json.dumps({"event": event, **fields}) + "\n")
    stream.flush()


def _read_scene(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        scene = {k: z[k] for k in z.files}
    missing = [k for k in ("vertices", "faces", "K", "image_size") if k not in scene]
    if missing:
        raise SystemExit(f"{path.name}: missing arrays {', '.join(missing)}")
    v = scene["vertices"]
    if v.ndim != 3 or v.shape[2] != 3:
        raise SystemExit(f"{path.name}: vertices has shape {v.shape}, expected (T, V, 3)")
    K = scene["K"]
    if abs(K[0, 0] - K[1, 1]) > 1e-6 * K[0, 0]:
        raise SystemExit(f"{path.name}: K has fx {K[0, 0]} != fy {K[1, 1]}; the demo renders square pixels")
    return scene


def _convert():
    """`blender_addon/convert.py` (numpy only), loaded by path: this script runs outside the package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("handcap_convert", Path(__file__).with_name("convert.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up while being created
    spec.loader.exec_module(mod)
    return mod


def camera_settings(K: np.ndarray, width: int, height: int, sensor_width_mm: float = 36.0) -> dict:
    """Blender camera data settings reproducing the pinhole K (3, 3) on a width x height image
    (`convert.intrinsics_to_camera`, the add-on's own conversion: sensor fitted to the longer side,
    shifts in fractions of it, OpenCV pixel centres)."""
    cam = _convert().intrinsics_to_camera(K, (width, height), sensor_width_mm)
    return {
        "sensor_fit": cam.sensor_fit,
        "sensor_width": cam.sensor_mm,
        "lens": cam.lens_mm,
        "shift_x": cam.shift_x,
        "shift_y": cam.shift_y,
        "clip_start": 0.01,
        "clip_end": 20.0,
    }


def build_scene(bpy, scene_arrays: dict):
    """Create the camera, the skin-coloured mesh and the Workbench settings; returns the mesh datablock."""
    width, height = (int(x) for x in scene_arrays["image_size"])
    skin = tuple(float(c) for c in scene_arrays.get("skin_rgb", (0.8, 0.52, 0.4)))
    wall = tuple(float(c) for c in scene_arrays.get("background_rgb", (0.78, 0.78, 0.75)))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene

    # 1. Camera at the origin; world frame = OpenCV camera frame (module docstring).
    cam = bpy.data.cameras.new("demo_camera")
    for key, value in camera_settings(scene_arrays["K"], width, height).items():
        setattr(cam, key, value)
    cam_obj = bpy.data.objects.new("demo_camera", cam)
    cam_obj.rotation_euler = (math.pi, 0.0, 0.0)
    sc.collection.objects.link(cam_obj)
    sc.camera = cam_obj

    # 2. The hand (with forearm) as one smooth-shaded mesh; vertices are rewritten per frame.
    mesh = mesh_from_arrays(bpy, "demo_hand", scene_arrays["vertices"][0], scene_arrays["faces"], True)
    mat = bpy.data.materials.new("demo_skin")
    mat.diffuse_color = (*skin, 1.0)
    mat.roughness = 0.6
    mesh.materials.append(mat)
    obj = bpy.data.objects.new("demo_hand", mesh)
    sc.collection.objects.link(obj)

    # 3. Workbench, studio light, material colour, plain light background (the world colour).
    sc.render.engine = "BLENDER_WORKBENCH"
    sc.display.render_aa = "OFF"
    shading = sc.display.shading
    shading.light = "STUDIO"
    shading.color_type = "MATERIAL"
    shading.show_specular_highlight = True
    world = bpy.data.worlds.new("demo_wall")
    world.color = wall
    sc.world = world
    sc.render.resolution_x, sc.render.resolution_y = width, height
    sc.render.resolution_percentage = 100
    sc.render.film_transparent = False
    sc.render.image_settings.file_format = "PNG"
    sc.render.image_settings.color_mode = "RGB"
    sc.render.image_settings.color_depth = "8"
    sc.view_settings.view_transform = "Standard"
    return mesh


@contextlib.contextmanager
def _stdout_to_stderr():
    """Blender prints 'Saved: ...' on stdout; keep stdout for our JSON lines."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--in", dest="inp", required=True, help="scene .npz written by core.demo")
    ap.add_argument("--out", required=True, help="folder for the PNG frames")
    args = ap.parse_args(argv)
    scene_arrays = _read_scene(Path(args.inp))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # fd 1 goes to stderr while bpy works; our JSON lines use a duplicate of the original stdout.
    events = os.fdopen(os.dup(1), "w")
    t0 = time.perf_counter()
    with _stdout_to_stderr():
        import bpy

        mesh = build_scene(bpy, scene_arrays)
        sc = bpy.context.scene
        frames = scene_arrays["vertices"]
        n = len(frames)
        for t in range(n):
            mesh.vertices.foreach_set("co", np.ascontiguousarray(frames[t], np.float32).ravel())
            mesh.update()
            sc.render.filepath = str(out / f"{t:04d}.png")
            bpy.ops.render.render(write_still=True)
            _emit(events, "progress", done=t + 1, total=n)
    _emit(events, "done", frames=n, seconds=round(time.perf_counter() - t0, 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
