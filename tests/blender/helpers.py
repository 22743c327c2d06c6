"""Helpers shared by the Blender tests (import as ``helpers``; conftest.py holds the fixtures)."""
from __future__ import annotations

import os
from pathlib import Path

import bpy
import numpy as np

import synth

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EXT_MODULE = "bl_ext.user_default.hand_capture"
ARTIFACTS = Path(os.environ.get("HANDCAP_ARTIFACTS", ROOT / "out" / "test-artifacts"))
# These tests run in Blender-like interpreters (the bpy wheel and nothing else of ours): the build, the
# capture worker and the few checks that need OpenCV run in the project's .venv, as they would for a user.
WORKER_PYTHON = os.environ.get("HANDCAP_WORKER_PYTHON") or str(
    ROOT / ".venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
HEAVY_MODULES = ("scipy", "torch", "cv2", "mediapipe", "smplx")


def heavy_modules_loaded() -> list:
    """The heavy packages imported into this interpreter (must stay empty: Blender has only numpy)."""
    import sys

    return sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY_MODULES))


def run_worker_python(code: str, *args: str) -> str:
    """Run ``code`` in the worker's Python (the project's .venv) with ``args`` as sys.argv[1:]; its stdout."""
    import subprocess

    proc = subprocess.run([WORKER_PYTHON, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, f"worker python failed: {proc.stderr[-2000:]}"
    return proc.stdout


def ext_module(name: str):
    """A module of the installed extension: ext_module("blender_addon.scene")."""
    import importlib

    return importlib.import_module(f"{EXT_MODULE}.{name}")


FAKE_PYTHON = '''#!{python}
"""Stands in for the capture runtime's python: answers `-m core capture ... --out X --json-progress`
like the real CLI, copying the clip named by HANDCAP_FAKE_CLIP. HANDCAP_FAKE_MODE picks a behaviour:
ok | error | crash | nodone | hang | kill | nomodule. The command line goes to HANDCAP_FAKE_ARGV when set."""
import json, os, shutil, signal, sys, time
argv = sys.argv[1:]
if os.environ.get("HANDCAP_FAKE_ARGV"):
    with open(os.environ["HANDCAP_FAKE_ARGV"], "w") as f:
        json.dump(argv, f)
mode = os.environ.get("HANDCAP_FAKE_MODE", "ok")
def ev(**kw):
    print(json.dumps(kw), flush=True)
out = argv[argv.index("--out") + 1]
sys.stderr.write("fake worker starting\\n")
for i in range(1, 4):
    ev(event="progress", stage="detect", done=i * 10, total=30, fps=90.0, eta_s=(3 - i) * 0.1)
if mode == "hang":
    with open(out + ".pid.tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(out + ".pid.tmp", out + ".pid")  # readers poll for the file: it appears complete
    time.sleep(120)
if mode == "error":
    ev(event="error", message="No readable frames in clip.mov (codec hevc): convert it to H.264")
    sys.stderr.write("error: No readable frames\\n")
    sys.exit(2)
if mode == "crash":
    sys.stderr.write("Fatal Python error: Segmentation fault\\n")
    sys.stderr.flush()
    os._exit(139)
if mode == "nomodule":
    sys.stderr.write("ModuleNotFoundError: No module named 'torch'\\n")
    sys.exit(1)
if mode == "kill":
    sys.stderr.write("about to be killed\\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
ev(event="warning", message="3 frames were too dark")
ev(event="progress", stage="fit", done=30, total=30, fps=200.0, eta_s=0.0)
shutil.copyfile(os.environ["HANDCAP_FAKE_CLIP"], out)
if mode != "nodone":
    ev(event="done", out=out)
'''


def scene_snapshot() -> dict:
    """Everything a capture could change: IDs by type and name, every F-curve's keys, scene settings."""
    snap = {}
    for attr in ("objects", "meshes", "armatures", "cameras", "actions", "collections", "movieclips"):
        snap[attr] = sorted(i.name for i in getattr(bpy.data, attr))
    keys = {}
    for act in bpy.data.actions:
        for layer in act.layers:
            for strip in layer.strips:
                for bag in strip.channelbags:
                    for fc in bag.fcurves:
                        co = np.empty(len(fc.keyframe_points) * 2, np.float32)
                        fc.keyframe_points.foreach_get("co", co)
                        keys[(act.name, fc.data_path, fc.array_index)] = co.tobytes()
    snap["keys"] = keys
    sc = bpy.context.scene
    snap["scene"] = (sc.frame_start, sc.frame_end, sc.render.fps, sc.render.fps_base, sc.render.resolution_x,
                     sc.render.resolution_y, sc.camera.name if sc.camera else None)
    snap["children"] = sorted(c.name for c in sc.collection.children_recursive)
    return snap


def make_user_content():
    """A user's own keyed cube and camera, to check that captures leave them alone."""
    sc = bpy.context.scene
    me = bpy.data.meshes.new("UserCube")
    cube = bpy.data.objects.new("UserCube", me)
    sc.collection.objects.link(cube)
    cube.location = (1, 2, 3)
    cube.keyframe_insert("location", frame=1)
    cube.location = (2, 2, 3)
    cube.keyframe_insert("location", frame=10)
    cam = bpy.data.objects.new("UserCamera", bpy.data.cameras.new("UserCamera"))
    sc.collection.objects.link(cam)
    sc.camera = cam
    sc.render.fps = 24
    return cube


def write_clip(tmp_path: Path, models: dict, source: str | Path | None = None, **kw) -> tuple:
    """Save a synthetic clip posed with ``models`` (source: its video, default a missing file); (path, clip)."""
    from core.io.clip import save_clip

    source = Path(source) if source else tmp_path / "synthetic.mp4"
    clip = synth.make_clip(models, source=str(source), **kw)
    return save_clip(clip, tmp_path / f"{source.stem}.npz"), clip


def _overlay_nodes(tree, clip):
    """Movie clip under the render layer (alpha over, footage showing through a little); the alpha-over node."""
    movie = tree.nodes.new("CompositorNodeMovieClip")
    movie.clip = clip
    layers = tree.nodes.new("CompositorNodeRLayers")
    over = tree.nodes.new("CompositorNodeAlphaOver")
    if "Factor" in over.inputs:  # Blender 5.x
        fac, back, fore = over.inputs["Factor"], over.inputs["Background"], over.inputs["Foreground"]
    else:  # 4.5: Fac, Image (background), Image (foreground)
        fac, back, fore = over.inputs[0], over.inputs[1], over.inputs[2]
    fac.default_value = 0.8
    tree.links.new(movie.outputs["Image"], back)
    tree.links.new(layers.outputs["Image"], fore)
    return over


def render_overlay(scene, frame: int, path: Path, composite: bool = True, color_type: str = "SINGLE") -> np.ndarray:
    """Render ``frame`` through the scene camera with Workbench; returns the image (H, W, 4) float.

    composite: lay the render over the camera's background movie clip with the compositor (Workbench
    does not draw background images); else return the transparent render (alpha = the hand's silhouette).
    color_type: Workbench's colour source ("SINGLE": everything light blue; "OBJECT": each object's colour).
    """
    cam = scene.camera
    r = scene.render
    r.engine = "BLENDER_WORKBENCH"
    r.resolution_percentage = 100  # the compositor's movie clip is not scaled to a smaller render
    r.film_transparent = True
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGBA"
    scene.view_settings.view_transform = "Standard"  # keep the footage's colours
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = color_type
    shading.single_color = (0.25, 0.65, 1.0)
    scene.frame_set(frame)
    r.filepath = str(path)
    r.use_compositing = composite
    if not composite:
        bpy.ops.render.render(write_still=True)
    elif hasattr(scene, "compositing_node_group"):  # Blender 5.0+: a compositor node group
        tree = bpy.data.node_groups.new("hand_capture_overlay", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        over = _overlay_nodes(tree, cam.data.background_images[0].clip)
        out = tree.nodes.new("NodeGroupOutput")
        tree.links.new(over.outputs[0], out.inputs[0])
        scene.compositing_node_group = tree
        try:
            bpy.ops.render.render(write_still=True)
        finally:
            scene.compositing_node_group = None
            bpy.data.node_groups.remove(tree)
    else:  # Blender 4.5: the scene's own node tree
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        over = _overlay_nodes(tree, cam.data.background_images[0].clip)
        out = tree.nodes.new("CompositorNodeComposite")
        tree.links.new(over.outputs[0], out.inputs[0])
        try:
            bpy.ops.render.render(write_still=True)
        finally:
            tree.nodes.clear()
            scene.use_nodes = False
    img = bpy.data.images.load(str(path), check_existing=False)
    try:
        w, h = img.size
        px = np.empty(w * h * 4, np.float32)
        img.pixels.foreach_get(px)
    finally:
        bpy.data.images.remove(img)
    return px.reshape(h, w, 4)[::-1]  # rows top to bottom
