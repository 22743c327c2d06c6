"""Headless Blender step (farms, batches): a clip file -> a .blend holding the rig, keys and camera, built by the
add-on's own import (`job.import_steps`, exactly what Import Clip File does with its default options), and
optionally FBX files (`export.export_armature`, the Export section's FBX).

    python -m blender_addon.apply CLIP.npz --blend OUT.blend [--fbx OUT.fbx]     # a Python with the bpy module
    blender -b --factory-startup --python blender_addon/apply.py -- CLIP.npz --blend OUT.blend [--fbx OUT.fbx]

It starts from Blender's empty factory scene and reads only the clip file (and the hand models it names; the
open model from the core's cache, ``HANDCAP_CACHE``, or the installed extension). The .blend is saved beside its
target and renamed over it (a reader never sees half a file). ``--fbx``: one hand -> that file; several hands ->
one file per hand, ``OUT_<hand>.fbx`` (``OUT_right.fbx``, ``OUT_left.fbx``).

Exit status: 0 written; 2 a bad clip or path (one line ``error: ...`` on stderr); 3 a bug (traceback).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import types

_HOST = "hand_capture_apply"  # package name this file's folder is imported under when run from a checkout


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m blender_addon.apply",
                                description="Build the hand rig, keys and camera of a clip file into a .blend.")
    p.add_argument("clip", help="clip file (.npz) from python -m core capture")
    p.add_argument("--blend", required=True, help="output .blend")
    p.add_argument("--fbx", default=None, help="also export the keyed hand rig(s) as FBX")
    return p


def apply_clip(clip_path: str, blend_path: str, fbx_path: str | None = None) -> dict:
    """Import ``clip_path`` into Blender's empty factory scene as the add-on's import does, save ``blend_path``
    (temp + rename) and, with ``fbx_path``, export each hand rig; returns {"blend", "fbx": [...], "outcome"}."""
    import bpy

    from . import convert, job
    from .scene import SceneOptions

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    outcome = job.drain(job.import_steps(os.path.abspath(clip_path), scene, bpy.context.view_layer, SceneOptions(),
                                         convert.units_per_metre(scene.unit_settings.scale_length)))
    written = {"blend": os.path.abspath(blend_path), "fbx": [], "outcome": outcome}
    if fbx_path:
        from .export import export_armature

        arms = outcome.applied.armatures
        root, ext = os.path.splitext(os.path.abspath(fbx_path))
        for key, name in arms.items():
            target = fbx_path if len(arms) == 1 else f"{root}_{key}{ext or '.fbx'}"
            done = export_armature(bpy.data.objects[name], "FBX", target, scene, bpy.context.view_layer)
            written["fbx"].append(done.filepath)
    blend = os.path.abspath(blend_path)
    os.makedirs(os.path.dirname(blend), exist_ok=True)
    tmp = os.path.join(os.path.dirname(blend), f".{os.path.basename(blend)}.{os.getpid()}.part.blend")
    try:
        bpy.ops.wm.save_as_mainfile(filepath=tmp, check_existing=False, copy=True)
        os.replace(tmp, blend)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)
    return written


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..core.errors import CaptureError

    try:
        written = apply_clip(args.clip, args.blend, args.fbx)
    except CaptureError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"error: {exc.strerror or exc}: {exc.filename or args.blend}\n")
        return 2
    for w in written["outcome"].warnings:
        sys.stderr.write(f"warning: {w}\n")
    print(written["outcome"].info, flush=True)
    for path in [written["blend"], *written["fbx"]]:
        print(path, flush=True)
    return 0


def _argv_after_dashes() -> list:
    """The script's arguments: after ``--`` under ``blender ... --python apply.py --``, else sys.argv[1:]."""
    return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]


def _hosted():
    """This module imported as ``<host>.blender_addon.apply``, the extension's layout (the add-on's modules import
    the core relatively, ``..core``, so they need a parent package: the folder holding ``core`` and
    ``blender_addon``, here named `_HOST`, without running the extension's own ``__init__``)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    host = sys.modules.get(_HOST)
    if host is None:
        host = types.ModuleType(_HOST)
        host.__path__ = [root]
        sys.modules[_HOST] = host
    return importlib.import_module(f"{_HOST}.blender_addon.apply")


if __name__ == "__main__":
    if __package__ and "." in __package__:  # already inside the extension's package
        sys.exit(main(_argv_after_dashes()))
    # python -m blender_addon.apply (a checkout's root on sys.path) or blender --python .../apply.py
    sys.exit(_hosted().main(_argv_after_dashes()))
