"""End to end on real footage: ``bpy.ops.hand_capture.capture_video`` on the first 10 s of
shared/data/video/single_hand.mp4, in a Blender-like interpreter (the bpy wheel only).

The worker is the real ``python -m core capture`` run by the project's .venv (torch and MediaPipe), chosen
with HAND_CAPTURE_PYTHON as a farm would. One capture per module (about half a minute on 2 cores); the
tests then read the scene it made. The overlay screenshot is kept in out/test-artifacts/ (HANDCAP_ARTIFACTS).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest

import synth
from core.hand.model import MANO21_JOINTS
from core.io.clip import load_clip
from helpers import WORKER_PYTHON, ext_module, heavy_modules_loaded, render_overlay, run_worker_python

LAST_FRAME = 300  # the first 10 s of the 30 fps clip

MM = 1e-3


@pytest.fixture(scope="module")
def captured(ext, data_dir):
    video = data_dir / "video" / "single_hand.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found")
    package = Path(ext.__file__).parent
    before = _package_files(package)
    old = os.environ.get("HAND_CAPTURE_PYTHON")
    os.environ["HAND_CAPTURE_PYTHON"] = WORKER_PYTHON
    no_bytecode = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # let the worker write bytecode: where to?
    try:
        bpy.ops.wm.read_homefile(use_empty=True)
        result = bpy.ops.hand_capture.capture_video(filepath=str(video), hands="1", with_vertices=True,
                                                    frame_last=LAST_FRAME)
    finally:
        if no_bytecode is not None:
            os.environ["PYTHONDONTWRITEBYTECODE"] = no_bytecode
        if old is None:
            os.environ.pop("HAND_CAPTURE_PYTHON", None)
        else:
            os.environ["HAND_CAPTURE_PYTHON"] = old
    assert result == {"FINISHED"}
    job, prefs = ext_module("blender_addon.job"), ext_module("blender_addon.prefs")
    clip = load_clip(job.clip_path_for(str(video), prefs.user_dir("clips")))
    assert clip.source == str(video) and clip.vertices is not None
    return {"video": video, "clip": clip, "scene": bpy.context.scene, "package": package, "before": before}


def _package_files(folder: Path) -> dict:
    """{relative path: (size, mtime)} of the installed extension's files, Blender's own bytecode left out."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _hand(clip):
    h = 0
    side = clip.sides[h]
    return h, side, f"single_hand_hand_{side[0].upper()}"


def test_rig_lands_in_scene(captured):
    clip, scene = captured["clip"], captured["scene"]
    h, side, stem = _hand(clip)
    coll = bpy.data.collections["single_hand"]
    arm = bpy.data.objects[stem]
    assert arm.name in coll.objects and len(arm.data.bones) == len(MANO21_JOINTS)
    mesh = bpy.data.objects[f"{stem}_mesh"]
    assert mesh.modifiers["Armature"].object == arm and len(mesh.vertex_groups) == 16
    assert len(mesh.data.vertices) == clip.vertices.shape[2]
    cam = scene.camera
    assert cam.name == "single_hand_camera" and cam.data.show_background_images
    assert Path(bpy.path.abspath(cam.data.background_images[0].clip.filepath)) == captured["video"]
    assert scene.render.fps == 30 and (scene.render.resolution_x, scene.render.resolution_y) == (1280, 720)
    assert (scene.frame_start, scene.frame_end) == (1, LAST_FRAME)


def test_keys_on_at_least_90_percent_of_frames(captured):
    clip = captured["clip"]
    h, side, stem = _hand(clip)
    action = bpy.data.objects[stem].animation_data.action
    from bpy_extras import anim_utils

    bag = anim_utils.action_get_channelbag_for_slot(action, action.slots[0])
    for fc in bag.fcurves:
        co = np.empty(len(fc.keyframe_points) * 2, np.float32)
        fc.keyframe_points.foreach_get("co", co)
        np.testing.assert_array_equal(co[0::2], clip.frame_index[clip.valid[h]] + 1)
    print(f"Blender {bpy.app.version_string}: {len(co) // 2} keyed frames of {clip.n_frames} captured")
    assert clip.n_frames == LAST_FRAME and clip.valid[h].sum() >= 0.9 * LAST_FRAME


def test_mesh_matches_core_on_sampled_frames(captured):
    """Evaluated mesh vs the core's vertices (clip file, and an independent numpy MANO forward) < 0.5 mm."""
    clip, scene = captured["clip"], captured["scene"]
    convert, skin = ext_module("blender_addon.convert"), ext_module("blender_addon.skin")
    h, side, stem = _hand(clip)
    mesh = bpy.data.objects[f"{stem}_mesh"]
    frames = np.flatnonzero(clip.valid[h])[np.linspace(0, clip.valid[h].sum() - 1, 8).astype(int)]
    model = ext_module("core.hand.load").load_model(side, clip.model_path(h))
    fk, _ = synth.forward(model, clip.betas[h], clip.global_orient[h, frames], clip.hand_pose[h, frames],
                          clip.transl[h, frames])
    worst = 0.0
    for i, t in enumerate(frames):
        scene.frame_set(int(clip.frame_index[t]) + 1)
        got = convert.points_world_to_cam(skin.evaluated_vertices(mesh, bpy.context.evaluated_depsgraph_get()))
        worst = max(worst, np.abs(got - clip.vertices[h, t]).max(), np.abs(got - fk[i]).max())
    print(f"mesh vs core: {worst / MM:.5f} mm at most on {len(frames)} frames")
    assert worst < 0.5 * MM, f"{worst / MM:.4f} mm"


def _video_frame(video: Path, index: int) -> np.ndarray:
    """Source frame ``index`` (0-based) as (H, W, 3) float sRGB 0..1, read with OpenCV in the worker's Python."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"handcap-frame-{os.getpid()}.npy"
    run_worker_python("""
import sys, cv2, numpy as np
cap = cv2.VideoCapture(sys.argv[1])
cap.set(cv2.CAP_PROP_POS_FRAMES, int(sys.argv[2]))
ok, bgr = cap.read()
assert ok, "cannot read the frame"
np.save(sys.argv[3], bgr[..., ::-1].copy())
""", str(video), str(index), str(out))
    try:
        return np.load(out).astype(np.float32) / 255.0
    finally:
        out.unlink()


def test_overlay_screenshot(captured, artifacts):
    """Workbench render over the footage. The overlay lines up: the core's 3D joints projected with the
    clip's K fall on the rendered hand, and around the hand the picture is the video frame itself."""
    clip, scene = captured["clip"], captured["scene"]
    h, _, _ = _hand(clip)
    detected = np.flatnonzero(clip.detected[h])
    t = int(detected[len(detected) // 2])
    frame = int(clip.frame_index[t]) + 1
    shot = artifacts / "single_hand_overlay.png"
    img = render_overlay(scene, frame, shot, composite=True)
    assert shot.is_file() and img.shape == (720, 1280, 4)
    mask = render_overlay(scene, frame, artifacts / "single_hand_mask.png", composite=False)[..., 3]
    def on_hand(uv):  # within 2 px of the silhouette
        px = np.round(uv).astype(int)
        return [mask[max(0, v - 2):v + 3, max(0, u - 2):u + 3].max() > 0.5 for u, v in px]

    joints, K = clip.joints[h, t].astype(np.float64), clip.K[t]
    uv = joints[:, :2] / joints[:, 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]
    assert all(on_hand(uv)), f"{sum(on_hand(uv))} of 21 projected joints on the rendered hand"
    detector = np.mean(on_hand(clip.landmarks_px[h, t]))  # the fit's 2D agreement, for information
    print(f"{detector:.0%} of the detector's landmarks fall on the rendered hand")
    background = mask < 0.01
    diff = np.abs(img[..., :3] - _video_frame(captured["video"], int(clip.frame_index[t])))[background]
    assert diff.mean() < 0.03, f"background differs from the video frame by {diff.mean():.3f} on average"
    print(f"overlay screenshot: {shot}")


def test_no_heavy_module_in_blender(captured):
    """After a capture and an import, Blender's interpreter holds none of the worker's packages."""
    clip_path = ext_module("blender_addon.job").clip_path_for(str(captured["video"]),
                                                              ext_module("blender_addon.prefs").user_dir("clips"))
    assert bpy.ops.hand_capture.import_clip(filepath=clip_path) == {"FINISHED"}
    assert heavy_modules_loaded() == []


def test_nothing_written_into_the_extension(captured):
    """The capture wrote its clip, log and cache under the user folder; the installed package is as installed
    (the worker's own bytecode goes to the user cache too: core.solve is imported by the worker only)."""
    package = captured["package"]
    assert _package_files(package) == captured["before"]
    assert not (package / "core" / "solve" / "__pycache__").exists()
    user = Path(bpy.utils.extension_path_user(ext_module("blender_addon").ADDON_PACKAGE))
    assert list((user / "clips").glob("single_hand-*.npz")) and (user / "logs" / "capture.log").is_file()
    assert list((user / "cache" / "pycache").rglob("*.pyc"))
