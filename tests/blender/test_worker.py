"""The capture operator around its worker: arguments, progress, errors, crashes, cancel, runtime check.

A fake runtime (conftest `fake_runtime`) stands in for ``python -m core capture`` and hands back a
synthetic clip, so these run without the real pipeline; test_capture_video.py runs the real one, and
test_runtime.py sets up the runtime.
"""
from __future__ import annotations

import json
import os
import sys
import time

import bpy
import pytest

from helpers import WORKER_PYTHON, ext_module, make_user_content, scene_snapshot, write_clip


def test_capture_operator_runs_worker_and_builds_rig(scene, fake_runtime, synth_models, tmp_path, tiny_video):
    clip_path, clip = write_clip(tmp_path, {"right": synth_models["right"]}, source=tiny_video, n_frames=6)
    argv_file = fake_runtime("ok", clip_path)
    bpy.ops.hand_capture.capture_video(filepath=str(tiny_video), hands="1", frame_first=5, frame_last=20, stride=2,
                                       camera="FOCAL_MM", focal_mm=26.0, min_confidence=0.4)
    argv = json.loads(argv_file.read_text())
    assert argv[:5] == ["-m", "core", "capture", str(tiny_video), "--out"]
    out = argv[5]
    assert out.endswith(".npz") and os.path.basename(out).startswith("tiny-")
    for pair in (["--hands", "1"], ["--start", "4"], ["--end", "20"], ["--stride", "2"], ["--min-confidence", "0.4"]):
        i = argv.index(pair[0])
        assert argv[i + 1] == pair[1]
    assert "--json-progress" in argv
    assert float(argv[argv.index("--fov") + 1]) == pytest.approx(69.39, abs=0.01)  # 26 mm-equivalent
    assert "tiny_hand_R" in bpy.data.objects and scene.camera.name == "tiny_camera"


def test_invoke_headless_runs_to_the_end(scene, fake_runtime, synth_models, tmp_path, tiny_video):
    """Without a window, INVOKE_DEFAULT (what the panel button does) drains the job like execute()."""
    clip_path, _ = write_clip(tmp_path, {"right": synth_models["right"]}, source=tiny_video, n_frames=3)
    fake_runtime("ok", clip_path)
    assert bpy.ops.hand_capture.capture_video("INVOKE_DEFAULT", filepath=str(tiny_video)) == {"FINISHED"}
    assert "tiny_hand_R" in bpy.data.objects


def test_crash_names_the_log(scene, fake_runtime, synth_models, tmp_path, tiny_video):
    clip_path, _ = write_clip(tmp_path, {"right": synth_models["right"]}, source=tiny_video, n_frames=3)
    fake_runtime("crash", clip_path)
    with pytest.raises(RuntimeError, match=r"\(full log: .*capture\.log\)") as err:
        bpy.ops.hand_capture.capture_video(filepath=str(tiny_video))
    log = str(err.value).split("full log: ")[1].split(")")[0]
    text = open(log).read()
    assert "fake worker starting" in text and "Segmentation fault" in text


def test_camera_flags(ext):
    job = ext_module("blender_addon.job")
    s = job.CaptureSettings(video="v.mp4", camera="PIXELS", fx=1400.0, cy=355.5)
    argv = job.capture_argv("py", s, "o.npz")
    assert argv[argv.index("--fx") + 1] == "1400" and argv[argv.index("--cy") + 1] == "355.5"
    assert "--fy" not in argv and "--cx" not in argv and "--end" not in argv
    argv = job.capture_argv("py", job.CaptureSettings(video="v.mp4", camera="FOV", fov_deg=60.0, with_vertices=True,
                                                       model_right="/m/MANO_RIGHT.pkl"), "o.npz")
    assert argv[argv.index("--fov") + 1] == "60" and "--with-vertices" in argv
    assert argv[argv.index("--model-right") + 1] == "/m/MANO_RIGHT.pkl"
    assert "--fov" not in job.capture_argv("py", job.CaptureSettings(video="v.mp4"), "o.npz")


def test_progress_streams_back(scene, fake_runtime, synth_models, tmp_path, tiny_video):
    job, prefs = ext_module("blender_addon.job"), ext_module("blender_addon.prefs")
    clip_path, _ = write_clip(tmp_path, {"right": synth_models["right"]}, source=tiny_video, n_frames=4)
    fake_runtime("ok", clip_path)
    python, where = prefs.runtime_python()
    assert where == "environment"
    steps = job.capture_steps(job.CaptureSettings(video=str(tiny_video)), python, str(tmp_path),
                              str(tmp_path / "out.npz"), scene, bpy.context.view_layer, wait=0.05)
    seen = []
    while True:
        try:
            seen.append(next(steps))
        except StopIteration as stop:
            outcome = stop.value
            break
    detect = [p for p in seen if p.stage == "detect"]
    counts = [(p.done, p.total) for p in detect]
    assert sorted(set(counts)) == [(10, 30), (20, 30), (30, 30)] and counts == sorted(counts)
    assert detect[0].fps == 90.0 and "10/30" in detect[0].text() and "90 fps" in detect[0].text()
    assert any(a is b for a, b in zip(seen, seen[1:]))  # waiting repeats the same Progress (modal ticks end early)
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] > 0.9
    assert outcome.warnings[0] == "3 frames were too dark"  # the worker's warning is passed on
    assert outcome.keyed == {"right": (4, 4)}


def test_progress_of_a_worker_that_ends_before_the_first_look(scene, fake_runtime, synth_models, tmp_path,
                                                              tiny_video):
    """A fast worker (or a busy machine) may finish before the job first looks at it: its progress events
    are still passed on, in order, before the import (they were dropped once, which a loaded CI showed)."""
    import time

    job, prefs = ext_module("blender_addon.job"), ext_module("blender_addon.prefs")
    clip_path, _ = write_clip(tmp_path, {"right": synth_models["right"]}, source=tiny_video, n_frames=4)
    fake_runtime("ok", clip_path)
    steps = job.capture_steps(job.CaptureSettings(video=str(tiny_video)), prefs.runtime_python()[0], str(tmp_path),
                              str(tmp_path / "out.npz"), scene, bpy.context.view_layer, wait=0.05)
    assert next(steps).stage == "start"  # the worker is started; now let it run to its end unobserved
    worker = next(o for o in steps.gi_frame.f_locals.values() if isinstance(o, ext_module("blender_addon.worker").Worker))
    deadline = time.monotonic() + 30
    while not worker.finished:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    seen = []
    while True:
        try:
            seen.append(next(steps))
        except StopIteration:
            break
    stages = [p.stage for p in seen]
    assert [(p.done, p.total) for p in seen if p.stage == "detect"] == [(10, 30), (20, 30), (30, 30)]
    assert stages.index("fit") < stages.index("load")


@pytest.mark.parametrize("mode, message", [
    ("error", r"No readable frames in clip.mov \(codec hevc\): convert it to H.264"),
    ("crash", r"capture worker stopped without finishing \(exit code 139\): Fatal Python error: Segmentation fault"),
    ("kill", r"capture worker stopped without finishing \(killed by signal 9 \(SIGKILL\)\): about to be killed"),
    ("nodone", r"capture worker stopped without finishing \(no 'done' message\)"),
    ("nomodule", r"No module named 'torch'.*\. The capture runtime .* lacks a package: press Set up runtime"),
])
def test_worker_failures_are_reported_and_change_nothing(scene, fake_runtime, synth_models, tmp_path, tiny_video,
                                                         mode, message):
    clip_path, _ = write_clip(tmp_path, {"right": synth_models["right"]}, source=tiny_video, n_frames=4)
    fake_runtime(mode, clip_path)
    make_user_content()
    before = scene_snapshot()
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.hand_capture.capture_video(filepath=str(tiny_video))
    assert scene_snapshot() == before


def test_cancel_stops_worker_and_changes_nothing(scene, fake_runtime, synth_models, tmp_path, tiny_video):
    """Closing the job (what Esc does) ends the worker process and leaves the scene exactly as it was."""
    job, prefs = ext_module("blender_addon.job"), ext_module("blender_addon.prefs")
    clip_path, _ = write_clip(tmp_path, {"right": synth_models["right"]}, source=tiny_video, n_frames=4)
    fake_runtime("hang", clip_path)
    make_user_content()
    bpy.ops.hand_capture.import_clip(filepath=str(clip_path))  # an earlier capture of the same video
    before = scene_snapshot()
    out = tmp_path / "cancelled.npz"
    steps = job.capture_steps(job.CaptureSettings(video=str(tiny_video)), prefs.runtime_python()[0], str(tmp_path),
                              str(out), scene, bpy.context.view_layer, wait=0.05)
    pid_file = tmp_path / "cancelled.npz.pid"
    deadline = time.monotonic() + 30
    while not pid_file.exists():
        next(steps)
        assert time.monotonic() < deadline, "the fake worker never started"
    pid = int(pid_file.read_text())
    t0 = time.monotonic()
    steps.close()
    assert time.monotonic() - t0 < 5
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not out.exists()
    assert scene_snapshot() == before


def test_no_runtime_says_how_to_get_one(scene, monkeypatch, tiny_video):
    monkeypatch.delenv("HAND_CAPTURE_PYTHON", raising=False)
    with pytest.raises(RuntimeError, match="no capture runtime: open Preferences > Add-ons > Hand Capture and press "
                                           "Set up runtime"):
        bpy.ops.hand_capture.capture_video(filepath=str(tiny_video))
    monkeypatch.setenv("HAND_CAPTURE_PYTHON", "/no/such/python")
    with pytest.raises(RuntimeError, match="HAND_CAPTURE_PYTHON is set to /no/such/python, which is not a file"):
        bpy.ops.hand_capture.capture_video(filepath=str(tiny_video))


def test_settings_problems_all_at_once(scene, tmp_path, fake_runtime):
    not_video = tmp_path / "notes.txt"
    not_video.write_text("x")
    with pytest.raises(RuntimeError) as err:
        bpy.ops.hand_capture.capture_video(filepath=str(not_video), frame_first=10, frame_last=5)
    msg = str(err.value)
    assert "notes.txt does not look like a video" in msg and "last frame 5 is before the first frame 10" in msg


def test_too_short_focal_length_is_refused_in_the_panels_terms(tiny_video):
    """A 35 mm-equivalent focal length so short that it would exceed the worker's --fov range (the panel's
    property stops at 1 mm; scripts build CaptureSettings themselves) is refused before the worker starts,
    in millimetres, not as an error about --fov."""
    job = ext_module("blender_addon.job")
    bad = job.CaptureSettings(video=str(tiny_video), camera="FOCAL_MM", focal_mm=0.001)
    assert bad.problems() == ["a 0.001 mm focal length is too short: it sees more than 179.99 degrees (use at "
                              "least 0.0016 mm)"]
    ok = job.CaptureSettings(video=str(tiny_video), camera="FOCAL_MM", focal_mm=job.fov_to_focal_mm(179.9))
    assert ok.problems() == [] and "--fov" in job.capture_argv("python", ok, "out.npz")


def test_check_runtime_with_the_project_python(scene, monkeypatch):
    """The project's .venv has torch and mediapipe, so it is a valid runtime."""
    monkeypatch.setenv("HAND_CAPTURE_PYTHON", WORKER_PYTHON)
    assert bpy.ops.hand_capture.check_runtime() == {"FINISHED"}
