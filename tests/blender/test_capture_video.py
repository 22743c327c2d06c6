"""End to end on real footage: ``bpy.ops.hand_capture.capture_video`` on shared/data/video/single_hand.mp4.

The worker is the real ``python -m core capture`` run by this test environment's own Python (which has
torch and MediaPipe), chosen with HAND_CAPTURE_PYTHON as a farm would. One capture per module (about a
minute on 2 cores); the tests then read the scene it made. The overlay screenshot is kept in
out/test-artifacts/ (HANDCAP_ARTIFACTS).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest

from core.clip import load_clip
from core.hand_model import MANO21_JOINTS, load_model
from helpers import ext_module, render_overlay

MM = 1e-3


@pytest.fixture(scope="module")
def captured(ext, data_dir):
    video = data_dir / "video" / "single_hand.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found")
    old = os.environ.get("HAND_CAPTURE_PYTHON")
    os.environ["HAND_CAPTURE_PYTHON"] = sys.executable
    try:
        bpy.ops.wm.read_homefile(use_empty=True)
        result = bpy.ops.hand_capture.capture_video(filepath=str(video), hands="1", with_vertices=True)
    finally:
        if old is None:
            os.environ.pop("HAND_CAPTURE_PYTHON", None)
        else:
            os.environ["HAND_CAPTURE_PYTHON"] = old
    assert result == {"FINISHED"}
    job, prefs = ext_module("blender_addon.job"), ext_module("blender_addon.prefs")
    clip = load_clip(job.clip_path_for(str(video), prefs.user_dir("clips")))
    assert clip.source == str(video) and clip.vertices is not None
    return {"video": video, "clip": clip, "scene": bpy.context.scene}


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
    assert (scene.frame_start, scene.frame_end) == (1, 621)


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
    assert clip.n_frames == 621 and clip.valid[h].sum() >= 0.9 * 621


def test_mesh_matches_core_on_sampled_frames(captured):
    """Evaluated mesh vs the core's vertices (clip file, and core.mano.forward again) < 0.5 mm."""
    from core import mano

    clip, scene = captured["clip"], captured["scene"]
    convert, skin = ext_module("blender_addon.convert"), ext_module("blender_addon.skin")
    h, side, stem = _hand(clip)
    mesh = bpy.data.objects[f"{stem}_mesh"]
    frames = np.flatnonzero(clip.valid[h])[np.linspace(0, clip.valid[h].sum() - 1, 8).astype(int)]
    model = load_model(side, clip.model_path(h))
    fk = mano.forward(model, np.repeat(clip.betas[h:h + 1], len(frames), 0), clip.global_orient[h, frames],
                      clip.hand_pose[h, frames], clip.transl[h, frames]).vertices.numpy()
    worst = 0.0
    for i, t in enumerate(frames):
        scene.frame_set(int(clip.frame_index[t]) + 1)
        got = convert.points_world_to_cam(skin.evaluated_vertices(mesh, bpy.context.evaluated_depsgraph_get()))
        worst = max(worst, np.abs(got - clip.vertices[h, t]).max(), np.abs(got - fk[i]).max())
    print(f"mesh vs core: {worst / MM:.5f} mm at most on {len(frames)} frames")
    assert worst < 0.5 * MM, f"{worst / MM:.4f} mm"


def _video_frame(video: Path, index: int) -> np.ndarray:
    """Source frame ``index`` (0-based) as (H, W, 3) float sRGB 0..1, read with OpenCV."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, bgr = cap.read()
    cap.release()
    assert ok
    return bgr[..., ::-1].astype(np.float32) / 255.0


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
