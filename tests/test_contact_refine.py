"""Contact refinement (issue 10): synthetic grasps of every shared YCB object and two interpenetrating
hands, with known truth; the refine CLI on a clip file.

The scenes are built by `core.contact.scenes` (a grasp planner closing the hand until contact,
independent of the optimiser); the figures are measured with the exact signed distance and the
metrics of `core.contact.metrics`, not with the SDF grid the optimiser uses.
"""
from __future__ import annotations


import numpy as np
import pytest
import torch

from benchmarks.contact import OBJECTS, evaluate_scene
from core.contact import scenes
from core.contact.mesh import load_mesh
from core.contact.refine import ContactConfig, HandTrack, refine_contact
from core.contact.run import FIELD_RES
from core.contact.sdf import Body, Field, signed_distance
from core.hand.load import load_model
from core.hand.mano import ManoLayer


FRAMES = 60  # the tests' clips; `python -m benchmarks.contact` runs the issue's 300 frames


@pytest.fixture(scope="module")
def layers():
    torch.set_num_threads(2)
    model = load_model("right")
    return ManoLayer(model), ManoLayer(model, dtype=torch.float64)


def _object(data_dir, name):
    return load_mesh(next((data_dir / "objects").glob(f"ycb_*_{name}.obj")))


def test_grasp_truth_touches_without_penetrating(layers, data_dir):
    _, layer64 = layers
    mesh = _object(data_dir, "mug")
    rot, transl, curl, touching, _ = scenes.build_grasp(layer64, mesh)
    out = layer64(torch.zeros(1, layer64.n_betas, dtype=torch.float64), None, None, transl[None], rotmats=rot[None])
    d = signed_distance(mesh, out.vertices[0].numpy())[0]
    assert d.min() > -0.6e-3  # the planner stops each finger at first contact (0.5 mm)
    assert touching.sum() >= 4, (curl, touching)


@pytest.mark.parametrize("name", OBJECTS)
def test_grasp_refined_to_truth(layers, data_dir, name):
    layer32, layer64 = layers
    mesh = _object(data_dir, name)
    scene = scenes.grasp_scene(layer64, mesh, n_frames=FRAMES, seed=1)
    before = evaluate_scene(layer32, scene, scene.capture_rot, scene.capture_transl)
    assert before["max_pen"] > 3.0 and before["ok_frames"] < 50  # the capture sinks into the object
    body = Body(mesh, scene.transforms, Field.build(mesh, res=FIELD_RES))  # the product's grid
    res = refine_contact([scenes.scene_track(layer32, scene)], [body], torch.eye(3).repeat(FRAMES, 1, 1))[0]
    after = evaluate_scene(layer32, scene, res.rotmats, res.transl)
    assert after["ok_frames"] >= 95.0, after
    # what the refinement reports is the exact depth of the result
    assert np.allclose(res.penetration_mm, np.maximum(0, after_depths(layer32, scene, res)), atol=1e-3)
    # issue 10's must-show: volume <= 0.5 cm^3 on >= 95 % of frames, contact recall >= 90 %, joints within 5 mm
    # of the truth on average (this seed is not the benchmark's, whose scenes the weights were set on)
    assert after["vol_p95"] <= 0.5 and after["recall"] >= 0.9 and after["err"] <= 5.0, after


def test_frames_away_from_everything_are_kept(layers, data_dir):
    """Frames where the hand is far from the object (moved 30 cm away in the capture) are not in play: the
    capture is returned there bit for bit, beyond PLAY_PAD frames of the grasp, which is still fixed."""
    from core.contact.refine import PLAY_PAD, frames_in_play

    layer32, layer64 = layers
    mesh = _object(data_dir, "cracker_box")
    scene = scenes.grasp_scene(layer64, mesh, n_frames=FRAMES, seed=1)
    track = scenes.scene_track(layer32, scene)
    away = np.zeros(FRAMES, bool)
    away[15:55] = True
    track.transl[torch.as_tensor(away)] += torch.tensor([0.3, 0.0, 0.0])
    body = Body(mesh, scene.transforms, Field.build(mesh, res=FIELD_RES))
    play = frames_in_play([track], [body], ContactConfig())[0]
    assert play[:15 + PLAY_PAD].all() and play[55 - PLAY_PAD:].all() and not play[15 + PLAY_PAD:55 - PLAY_PAD].any()
    for n in (1, 8, 2 * PLAY_PAD + 1, 2 * PLAY_PAD + 3):  # clips shorter and longer than the padding
        short = HandTrack(layer32, track.betas, track.rotmats[:n], track.transl[:n], np.ones(n, bool))
        np.testing.assert_array_equal(frames_in_play([short], [body], ContactConfig())[0], play[:n] | (np.arange(n) < 15))
    res = refine_contact([track], [body], torch.eye(3).repeat(FRAMES, 1, 1))[0]
    kept = ~play
    assert torch.equal(res.rotmats[kept], track.rotmats[kept]) and torch.equal(res.transl[kept], track.transl[kept])
    assert (res.penetration_mm[kept] == 0).all()
    near = ~away
    assert res.before_mm[near].max() > 3.0 and res.penetration_mm[near].max() <= 2.0


def after_depths(layer32, scene, res):
    with torch.no_grad():
        v = layer32(scene.betas.float().expand(FRAMES, -1), None, None, res.transl.float(), rotmats=res.rotmats.float()).vertices
    inv = np.linalg.inv(scene.transforms)
    v = v.numpy().astype(np.float64) @ inv[:, :3, :3].transpose(0, 2, 1) + inv[:, None, :3, 3]
    d = signed_distance(scene.mesh, v.reshape(-1, 3))[0].reshape(FRAMES, -1)
    return -d.min(1) * 1000


def test_two_hands_separated(layers):
    from core.contact.hands import hand_in_hand

    right64 = layers[1]
    left64 = ManoLayer(load_model("left"), dtype=torch.float64)
    sc = scenes.two_hand_scene(right64, left64, n_frames=FRAMES)
    right32, left32 = layers[0], ManoLayer(load_model("left"))
    b32 = sc["betas"].float()

    def verts(layer, rot, tr):
        with torch.no_grad():
            return layer(b32.expand(FRAMES, -1), None, None, tr.float(), rotmats=rot.float()).vertices.numpy()

    fr, fl = right32.faces.numpy(), left32.faces.numpy()
    cap = sc["capture"]
    depth0 = hand_in_hand(verts(right32, *cap["right"]), verts(left32, *cap["left"]), fr, faces_b=fl)[0]
    assert np.median(depth0) > 3.0
    tracks = [HandTrack(right32, b32, cap["right"][0].float(), cap["right"][1].float(), np.ones(FRAMES, bool)),
              HandTrack(left32, b32, cap["left"][0].float(), cap["left"][1].float(), np.ones(FRAMES, bool))]
    res = refine_contact(tracks, [], torch.eye(3).repeat(FRAMES, 1, 1))
    vr, vl = verts(right32, res[0].rotmats, res[0].transl), verts(left32, res[1].rotmats, res[1].transl)
    depth = hand_in_hand(vr, vl, fr, faces_b=fl)[0]
    assert (depth <= 2.0).mean() >= 0.95, np.percentile(depth, [50, 95, 100])
    tr = sc["truth"]
    err = [np.linalg.norm(v - verts(layer, *tr[side]), axis=-1).mean() * 1000
           for v, layer, side in ((vr, right32, "right"), (vl, left32, "left"))]
    assert max(err) <= 5.0, err


def test_config_rejects_unknown_and_conflicting_regions():
    from core.errors import CaptureError

    with pytest.raises(CaptureError, match="unknown hand region 'thumbs'"):
        ContactConfig(pin=("thumbs",))
    with pytest.raises(CaptureError, match="both pinned and excluded"):
        ContactConfig(pin=("index",), exclude=("index",))


def _scene_clip(layer32, scene, n):
    """A clip file's worth of arrays for the scene's capture (right hand, every frame valid)."""
    from core.hand.model import MP_FROM_MANO21
    from core.io.clip import ClipResult
    from core.rot import rotmat_to_aa

    K = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])
    aa = rotmat_to_aa(scene.capture_rot.float()).numpy()
    with torch.no_grad():
        j = layer32(scene.betas.float().expand(n, -1), None, None, scene.capture_transl.float(),
                    rotmats=scene.capture_rot.float()).joints21[:, MP_FROM_MANO21].numpy()
    px = j @ K.T
    px = px[..., :2] / px[..., 2:]
    ones = np.ones((1, n), bool)
    return ClipResult(source="synthetic grasp", fps=30.0, image_size=np.array([640, 480]), frame_index=np.arange(n),
                      time=np.arange(n) / 30.0, K=np.repeat(K[None], n, 0), K_guessed=False, sides=("right",),
                      model_names=("handcap-open",), model_paths=("",), valid=ones, detected=ones,
                      confidence=ones.astype(np.float32), betas=scene.betas.float().numpy(),
                      global_orient=aa[None, :, 0], hand_pose=aa[None, :, 1:], transl=scene.capture_transl.float().numpy()[None],
                      joints=j[None], landmarks_px=px[None].astype(np.float32), landmarks_world=(j - j[:, :1])[None])


def test_refine_cli(layers, data_dir, tmp_path):
    """`python -m core refine` on a clip file with a moving object: a refined clip with contact keys,
    the figures printed, and bad object specs refused in one line."""
    import subprocess
    import sys

    from core.io.clip import load_clip, save_clip

    layer32, layer64 = layers
    n = 30
    mesh_path = next((data_dir / "objects").glob("ycb_*_mug.obj"))
    scene = scenes.grasp_scene(layer64, load_mesh(mesh_path), n_frames=n, seed=2)
    clip = save_clip(_scene_clip(layer32, scene, n), tmp_path / "in.npz")
    np.save(tmp_path / "mug_path.npy", scene.transforms)
    out = tmp_path / "out.npz"
    root = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    run = subprocess.run([sys.executable, "-m", "core", "refine", str(clip), "--object",
                          f"{mesh_path}:{tmp_path / 'mug_path.npy'}", "--out", str(out), "--quiet"],
                         cwd=root, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "right: penetration max" in run.stdout and "frames > 2 mm" in run.stdout
    new = load_clip(out)
    assert new.contact.shape == (1, n, 6) and new.penetration_mm.shape == (1, n)
    assert (new.penetration_mm <= 2.0).mean() >= 0.95
    assert new.contact[0, :, 1:5].any(1).mean() > 0.9  # fingertips touch the mug
    assert not np.allclose(new.hand_pose, load_clip(clip).hand_pose)
    bad = subprocess.run([sys.executable, "-m", "core", "refine", str(clip), "--object", str(tmp_path / "none.obj"),
                          "--out", str(tmp_path / "x.npz")], cwd=root, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and bad.stderr.startswith("error:")
    assert not (tmp_path / "x.npz").exists()
    wrong = subprocess.run([sys.executable, "-m", "core", "refine", str(clip), "--object", f"{mesh_path}:{tmp_path / 'mug_path.npy'}",
                            "--pin", "thumbs", "--out", str(tmp_path / "x.npz")], cwd=root, capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "unknown region 'thumbs'" in wrong.stderr
