"""Odd file names through the add-on: ``bpy.ops.hand_capture.capture_video`` on a copy of
shared/data/video/single_hand.mp4 in a folder whose path has spaces, both quote kinds, non-ASCII characters
and more than 260 characters, with the real worker (the project's .venv, HAND_CAPTURE_PYTHON); and the
worker's command line, which is an argument list holding each path as one element, unchanged.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import bpy
import pytest

from helpers import WORKER_PYTHON, ext_module

ODD = "Händé 手 clip 'a' \"b\""
NAME_MAX = 255  # bytes per path component


def _long_folder(base: Path, total: int = 280) -> Path:
    d = base
    i = 0
    while len(str(d)) <= total:
        name = f"{i:02d} {ODD} {'ü' * 30} $HOME `x` ; & dir"
        assert len(name.encode("utf-8")) < NAME_MAX
        d = d / name
        i += 1
    d.mkdir(parents=True)
    return d


# The file's own name: short, and long (Blender's ID names hold 63 bytes before 5.0, 255 since).
NAMES = {"short": f"{ODD} hand.mp4", "long": f"{ODD} {'長い名前 ' * 12}{'ü' * 20} hand.mp4"}


@pytest.fixture(params=sorted(NAMES))
def odd_video(request, data_dir, tmp_path) -> Path:
    video = data_dir / "video" / "single_hand.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found")
    folder = _long_folder(tmp_path / f"footage {ODD}")
    path = folder / NAMES[request.param]
    assert len(path.name.encode("utf-8")) < NAME_MAX
    shutil.copyfile(video, path)
    assert len(str(path)) > 260
    return path


def test_capture_argv_keeps_paths_whole(ext, tmp_path):
    """Each path is one argv element, byte for byte: no quoting, splitting or shell in between."""
    job = ext_module("blender_addon.job")
    video = str(tmp_path / f"{ODD} $(touch x) ; `y` * ?.mp4")
    model = str(tmp_path / f"models {ODD}" / "MANO_RIGHT.pkl")
    out = str(tmp_path / f"clips {ODD}" / "c.npz")
    argv = job.capture_argv("/usr/bin/python3", job.CaptureSettings(video=video, model_right=model), out)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    assert argv[:4] == ["/usr/bin/python3", "-m", "core", "capture"]
    assert argv[4] == video and argv[argv.index("--out") + 1] == out
    assert argv[argv.index("--model-right") + 1] == model
    assert argv.count(video) == 1


def test_capture_video_on_odd_long_path(ext, scene, odd_video, monkeypatch):
    monkeypatch.setenv("HAND_CAPTURE_PYTHON", WORKER_PYTHON)
    result = bpy.ops.hand_capture.capture_video(filepath=str(odd_video), hands="1", frame_last=6)
    assert result == {"FINISHED"}
    job, prefs = ext_module("blender_addon.job"), ext_module("blender_addon.prefs")
    clip_file = job.clip_path_for(str(odd_video), prefs.user_dir("clips"))
    clip = ext_module("core.io.clip").load_clip(clip_file)
    assert clip.source == str(odd_video) and clip.n_frames == 6 and clip.valid.any()
    rigs = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    assert len(rigs) == 1 and len(rigs[0].data.bones) == 21
    assert rigs[0].animation_data and rigs[0].animation_data.action
    cam = scene.camera
    assert cam is not None and cam.data.show_background_images
    clip_path = bpy.path.abspath(cam.data.background_images[0].clip.filepath)
    assert os.path.normcase(os.path.abspath(clip_path)) == os.path.normcase(str(odd_video))
    assert (scene.render.resolution_x, scene.render.resolution_y) == (1280, 720)
