"""The built-in demo (`core.demo`): its motion is plausible, its camera matches K, and the whole
pipeline (render in headless Blender -> mp4 -> capture -> evaluate) finds and fits the hand.

Accuracy bounds, measured with ``python -m core demo --frames 16`` (the run this module's fixture makes)
on the open model, 2 CPU cores, MediaPipe 0.10.21 (2026-11-25, full pipeline with the VAE refinement,
2D-aware fit, clean-up and limits): hand detected on 16/16 frames; PA-MPJPE over the 20 non-wrist
joints 11.2 mm for raw MediaPipe and 7.0 mm for ours (all 21 joints: 11.3 / 7.2 mm; the 48-frame demo:
10.7 / 6.1 mm). MediaPipe scores 10.2 mm PA-MPJPE on the project's real images (shared/data/README.md),
so the render is about as hard as real footage. Bounds: 15 mm for raw MediaPipe (the render and the
detector), 9 mm for ours (2 mm of headroom for other CPUs' TFLite arithmetic), and ours must beat raw
MediaPipe; crossing them means the render, the detector or the fit got worse, not noise. Do not widen
them to make a test pass.
"""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from core import demo

from core.solve import limits
from core.io.clip import load_clip
from core.hand.load import load_model
from core.solve.ik import volar_normal
from core.hand.mano import ManoLayer
from core.progress import Reporter

PA_BOUND_MM = 15.0
OURS_PA_BOUND_MM = 9.0
DETECTION_MIN = 0.9
DEMO_FRAMES = 16


@pytest.fixture(scope="module")
def layer():
    return ManoLayer(load_model("right"))


@pytest.fixture(scope="module")
def posed(layer):
    t = 48
    m = demo.author_motion(layer, t)
    with torch.no_grad():
        out = layer(m.betas.expand(t, -1), None, None, m.transl, rotmats=m.rotmats)
    return m, out


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return demo.run_demo(tmp_path_factory.mktemp("demo"), DEMO_FRAMES, Reporter("quiet"))


def _winding(points: np.ndarray, verts: np.ndarray, faces: np.ndarray, chunk: int = 128) -> np.ndarray:
    """Generalised winding number (P,) of a closed mesh verts (V, 3), faces (F, 3) at points (P, 3):
    ~0.5 on its surface, ~1.5 where a surface point lies inside another part of it (Jacobson et al.
    2013; triangle solid angles by Van Oosterom & Strackee). float64: in float32, near-coplanar
    triangles flip atan2's branch and fake a +-1."""
    tri = torch.as_tensor(verts, dtype=torch.float64)[torch.as_tensor(faces, dtype=torch.long)]  # (F, 3, 3)
    va, vb, vc = (tri[:, k].contiguous() for k in range(3))
    out = []
    for p in torch.as_tensor(points, dtype=torch.float64).split(chunk):
        a, b, c = va[None] - p[:, None], vb[None] - p[:, None], vc[None] - p[:, None]  # (P, F, 3)
        la, lb, lc = a.norm(dim=-1), b.norm(dim=-1), c.norm(dim=-1)
        det = torch.einsum("pfi,pfi->pf", a, torch.linalg.cross(b, c))
        den = (la * lb * lc + torch.einsum("pfi,pfi->pf", a, b) * lc + torch.einsum("pfi,pfi->pf", b, c) * la
               + torch.einsum("pfi,pfi->pf", c, a) * lb)
        out.append(torch.atan2(det, den).sum(1) / (2 * np.pi))
    return torch.cat(out).numpy()


def test_key_angles_shape_and_ends():
    assert demo.peak_frames(48) == [10, 26, 40]
    a = demo.key_angles(16)
    assert a.shape == (16, 5, 4)
    np.testing.assert_allclose(a[0], a[-1], atol=1e-9)  # open at both ends: the clip loops
    assert demo.key_angles(1).shape == (1, 5, 4)


def test_motion_inside_joint_limits(layer, posed):
    m, _ = posed
    assert m.rotmats.shape == (48, 16, 3, 3) and m.hand_pose.shape == (48, 15, 3) and m.transl.shape == (48, 3)
    viol = limits.violations_deg(limits.joint_angles(layer, m.rotmats, m.betas.expand(48, -1)))
    assert viol.max() < 1e-3, f"joint {np.unravel_index(viol.argmax(), viol.shape)} is {viol.max():.2f} deg outside"


def test_motion_faces_the_camera_inside_the_image(layer, posed):
    m, out = posed
    # Palm normal in the camera frame points at the camera (-z) within 35 degrees on every frame.
    _, j_rest = layer.shaped(m.betas)
    normal = (m.rotmats[:, 0] @ volar_normal(j_rest, "right")[0]).numpy()
    assert (normal[:, 2] < -np.cos(np.radians(35))).all(), normal[:, 2].max()
    px = demo._project(out.joints21.numpy().astype(np.float64), demo.K_DEMO)
    assert (px[..., 0] > 20).all() and (px[..., 0] < demo.WIDTH - 20).all()
    assert (px[..., 1] > 20).all() and (px[..., 1] < demo.HEIGHT - 20).all()


def test_motion_has_no_self_intersection(layer, posed):
    """At the fist, spread and opposition peaks no vertex (every third, for time) lies inside another
    part of the hand. Every vertex of all 48 frames was checked once the same way: none inside."""
    _, out = posed
    faces = layer.faces.numpy()
    for t in demo.peak_frames(48):
        v = out.vertices[t].numpy().astype(np.float64)
        w = _winding(v[::3], v, faces)
        assert w.max() < 1.0, f"frame {t}: {(w >= 1.0).sum()} of {len(w)} sampled vertices inside the hand"


def test_forearm_mesh_shapes(layer, posed):
    _, out = posed
    model = load_model("right")
    v, f = demo.forearm_mesh(out.joints21[:1].numpy().astype(np.float64), model.v_template, model.rest_joints())
    assert v.shape == (1, 6 * 16, 3) and v.dtype == np.float32
    assert f.shape == (5 * 16 * 2, 3) and f.min() == 0 and f.max() == 6 * 16 - 1


def test_camera_settings_reproduce_K():
    spec = importlib.util.spec_from_file_location("demo_render", demo.RENDER_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # no bpy needed to import it
    s = mod.camera_settings(demo.K_DEMO, demo.WIDTH, demo.HEIGHT)
    assert s["lens"] == pytest.approx(600.0 * 36.0 / 640.0)
    assert s["shift_x"] == pytest.approx(0.0) and s["shift_y"] == pytest.approx(0.0)
    k = demo.K_DEMO.copy()
    k[0, 2] -= 64.0  # principal point 64 px left -> frustum shifted right by 0.1 width
    k[1, 2] += 32.0  # 32 px down -> shifted up by 0.05 width
    s = mod.camera_settings(k, demo.WIDTH, demo.HEIGHT)
    assert s["shift_x"] == pytest.approx(0.1) and s["shift_y"] == pytest.approx(0.05)


def test_demo_outputs(result):
    import cv2

    assert len(sorted(result.frames_dir.glob("*.png"))) == DEMO_FRAMES
    cap = cv2.VideoCapture(str(result.video))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    assert n == DEMO_FRAMES and size == (demo.WIDTH, demo.HEIGHT)
    with np.load(result.ground_truth, allow_pickle=False) as z:
        assert z["joints_cam"].shape == (DEMO_FRAMES, 21, 3)
        np.testing.assert_array_equal(z["K"], demo.K_DEMO)
        assert z["hand_pose"].shape == (DEMO_FRAMES, 15, 3) and z["global_orient"].shape == (DEMO_FRAMES, 3)
    clip = load_clip(result.clip)
    assert clip.n_frames == DEMO_FRAMES and not clip.K_guessed
    np.testing.assert_allclose(clip.K[0], demo.K_DEMO)
    assert cv2.imread(str(result.overlay)).shape == (2 * demo.HEIGHT, 2 * demo.WIDTH, 3)
    assert json.loads(result.report.read_text())["frames"] == DEMO_FRAMES


def test_demo_render_matches_ground_truth(result):
    """The camera built from K puts the hand where K projects it: the palm joints (wrist and the four
    finger bases) land on skin, not on the wall, on every frame."""
    import cv2

    with np.load(result.ground_truth, allow_pickle=False) as z:
        joints = z["joints_cam"]
    px = np.rint(demo._project(joints, demo.K_DEMO)).astype(int)
    for t, f in enumerate(sorted(result.frames_dir.glob("*.png"))):
        img = cv2.imread(str(f)).astype(int)
        wall = img[5, 5]
        for j in (0, 5, 9, 13, 17):
            u, v = px[t, j]
            assert np.abs(img[v, u] - wall).max() > 25, f"frame {t} joint {j} at {u},{v} shows the wall"


def test_demo_detects_and_fits(result):
    assert result.detection_rate >= DETECTION_MIN
    for name in ("mediapipe", "ours"):
        pa = result.rows[name]["pa_mpjpe_nowrist_mm"]
        assert pa < PA_BOUND_MM, f"{name}: PA-MPJPE (no wrist) {pa:.1f} mm >= {PA_BOUND_MM} mm"
    ours, raw = (result.rows[n]["pa_mpjpe_nowrist_mm"] for n in ("ours", "mediapipe"))
    assert ours < OURS_PA_BOUND_MM, f"ours: PA-MPJPE (no wrist) {ours:.1f} mm >= {OURS_PA_BOUND_MM} mm"
    assert ours < raw, f"ours {ours:.1f} mm is not better than raw MediaPipe {raw:.1f} mm"

