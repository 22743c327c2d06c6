"""Every bad input to `python -m core` exits non-zero with one clear line on stderr, no traceback."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def assert_user_error(r, *words):
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    err = [ln for ln in lines if ln.startswith("error: ")]
    assert len(err) == 1, r.stderr
    for w in words:
        assert w.lower() in err[0].lower(), (w, err[0])
    return err[0]


def write_video(path, frames, size=(160, 120), fps=10):
    import cv2

    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for f in frames:
        out.write(f)
    out.release()


def test_missing_file(tmp_path):
    assert_user_error(run_cli("capture", tmp_path / "nope.mp4", "--out", tmp_path / "c.npz"), "nope.mp4")


def test_not_a_video(tmp_path):
    f = tmp_path / "notes.mp4"
    f.write_text("this is not a video\n" * 50)
    assert_user_error(run_cli("capture", f, "--out", tmp_path / "c.npz"), "notes.mp4")
    assert not (tmp_path / "c.npz").exists()


def test_truncated_video(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (120, 160, 3), np.uint8) for _ in range(30)]
    good = tmp_path / "good.mp4"
    write_video(good, frames)
    data = good.read_bytes()
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(data[: len(data) // 2])
    assert_user_error(run_cli("capture", bad, "--out", tmp_path / "c.npz"), "cut.mp4")
    assert not (tmp_path / "c.npz").exists()


def test_zero_frames(tmp_path):
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    assert_user_error(run_cli("capture", empty, "--out", tmp_path / "c.npz"), "empty_folder")


def test_no_hand_found(tmp_path):
    frames = [np.full((120, 160, 3), 128, np.uint8) for _ in range(5)]
    v = tmp_path / "grey.mp4"
    write_video(v, frames)
    msg = assert_user_error(run_cli("capture", v, "--out", tmp_path / "c.npz"), "no hand")
    assert "grey.mp4" in msg
    assert not (tmp_path / "c.npz").exists()


def test_invalid_mano_file(tmp_path):
    frames = [np.full((120, 160, 3), 128, np.uint8) for _ in range(3)]
    v = tmp_path / "grey.mp4"
    write_video(v, frames)
    bad = tmp_path / "MANO_RIGHT.pkl"
    bad.write_bytes(b"\x80\x04garbage")
    assert_user_error(run_cli("capture", v, "--out", tmp_path / "c.npz", "--model-right", bad), "MANO_RIGHT.pkl")
    missing = tmp_path / "MANO_LEFT.pkl"
    assert_user_error(run_cli("capture", v, "--out", tmp_path / "c.npz", "--model-left", missing), "MANO_LEFT.pkl")


def test_bad_arguments(tmp_path):
    assert_user_error(run_cli("capture", tmp_path, "--out", tmp_path / "c.npz", "--hands", "3"), "hands")
    assert_user_error(run_cli("capture", tmp_path, "--out", tmp_path / "c.npz", "--stride", "0"), "stride")


def test_eval_bad_inputs(tmp_path):
    assert_user_error(run_cli("eval", tmp_path / "none.npz", "--gt", tmp_path / "gt.npz"), "none.npz")
    junk = tmp_path / "junk.npz"
    np.savez(junk, a=np.zeros(3))
    assert_user_error(run_cli("eval", junk, "--gt", junk), "junk.npz")


def test_model_command_writes_files(tmp_path):
    r = run_cli("model", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    written = [Path(line) for line in r.stdout.split()]
    assert {p.name for p in written} == {"handcap_right.npz", "handcap_left.npz",
                                         "handcap_MANO_RIGHT.pkl", "handcap_MANO_LEFT.pkl"}
    assert all(p.is_file() for p in written)


def test_eval_scores_and_plots(tmp_path):
    """eval on a hand-made clip: ours = ground truth exactly, MediaPipe = ground truth + 2 mm along x."""
    from core.io.clip import ClipResult, save_clip

    rng = np.random.default_rng(0)
    t = 4
    gt = rng.normal(size=(t, 21, 3)) * 0.03 + np.array([0, 0, 0.5])
    np.savez(tmp_path / "gt.npz", joints_cam=gt.astype(np.float32))
    ones = np.ones((1, t), bool)
    clip = ClipResult(
        source="x", fps=30.0, image_size=np.array([64, 48]), frame_index=np.arange(t), time=np.arange(t) / 30,
        K=np.repeat(np.eye(3)[None], t, 0), K_guessed=True, sides=("right",), model_names=("handcap-open",),
        model_paths=("",), valid=ones, detected=ones, confidence=ones.astype(np.float32),
        betas=np.zeros((1, 10)), global_orient=np.zeros((1, t, 3)), hand_pose=np.zeros((1, t, 15, 3)),
        transl=np.zeros((1, t, 3)), joints=gt[None], landmarks_px=np.zeros((1, t, 21, 2)),
        landmarks_world=(gt + np.array([0.002, 0, 0]))[None])
    save_clip(clip, tmp_path / "c.npz")
    r = run_cli("eval", tmp_path / "c.npz", "--gt", tmp_path / "gt.npz", "--plot", tmp_path / "e.png",
                "--json", tmp_path / "e.json")
    assert r.returncode == 0, r.stderr
    import json

    report = json.loads((tmp_path / "e.json").read_text())
    rows = report["rows"]
    assert report["intrinsics_guessed"] is True and "GUESSED" in r.stdout
    assert rows["ours"]["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    assert rows["ours"]["camera_mm"] == pytest.approx(0.0, abs=1e-3)
    assert rows["mediapipe"]["wrist_rel_mm"] == pytest.approx(0.0, abs=1e-3)  # a pure shift
    assert rows["ours"]["limit_viol_frames"] == 0 and rows["ours"]["penetration_frames"] == 0  # the flat hand
    assert (tmp_path / "e.png").stat().st_size > 10_000


def _write_clip(path, joints, world, side="right"):
    """A one-hand clip file (flat hand pose) whose joints and detector landmarks are the given arrays."""
    from core.io.clip import ClipResult, save_clip

    t = len(joints)
    ones = np.ones((1, t), bool)
    clip = ClipResult(
        source="x", fps=30.0, image_size=np.array([64, 48]), frame_index=np.arange(t), time=np.arange(t) / 30,
        K=np.repeat(np.eye(3)[None], t, 0), K_guessed=True, sides=(side,), model_names=("handcap-open",),
        model_paths=("",), valid=ones, detected=ones, confidence=ones.astype(np.float32),
        betas=np.zeros((1, 10)), global_orient=np.zeros((1, t, 3)), hand_pose=np.zeros((1, t, 15, 3)),
        transl=np.zeros((1, t, 3)), joints=joints[None], landmarks_px=np.zeros((1, t, 21, 2)),
        landmarks_world=world[None])
    save_clip(clip, path)


def test_eval_two_hand_ground_truth_with_valid_mask(tmp_path):
    """(N, 2, 21, 3) ground truth: --gt-hand picks the axis by hand_order; unlabelled joints and frames are
    left out (their values are garbage here, so any use of them would show as error)."""
    import json

    rng = np.random.default_rng(1)
    t = 5
    right = rng.normal(size=(t, 21, 3)) * 0.03 + np.array([0, 0, 0.5])
    _write_clip(tmp_path / "c.npz", right, right + np.array([0.002, 0, 0]))
    gt = np.stack([right, rng.normal(size=(t, 21, 3))], 1)  # [right, left]
    valid = np.ones((t, 2, 21), bool)
    gt[1, 0] = 9.0  # frame 1 of the right hand unlabelled
    valid[1, 0] = False
    gt[3, 0, 8] = 9.0  # one unlabelled fingertip
    valid[3, 0, 8] = False
    np.savez(tmp_path / "gt.npz", joints_cam=gt.astype(np.float32), valid=valid, hand_order=np.array(["right", "left"]))
    r = run_cli("eval", tmp_path / "c.npz", "--gt", tmp_path / "gt.npz", "--gt-hand", "right", "--json", tmp_path / "e.json")
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "e.json").read_text())
    assert (rep["n_frames"], rep["n_gt"], rep["n_detected"], rep["side"]) == (t, t - 1, t - 1, "right")
    assert rep["rows"]["ours"]["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    assert rep["rows"]["mediapipe"]["wrist_rel_mm"] == pytest.approx(0.0, abs=1e-3)
    assert "4 with ground truth" in r.stdout
    # Scoring the clip's right hand against the left labels gives large errors: the axis was really switched.
    r = run_cli("eval", tmp_path / "c.npz", "--gt", tmp_path / "gt.npz", "--gt-hand", "left", "--side", "right",
                "--json", tmp_path / "e.json")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "e.json").read_text())["rows"]["ours"]["pa_mpjpe_mm"] > 100


def test_eval_per_frame_hand_side(tmp_path):
    """A one-hand file with hand_side (N,) (RHD): only the frames of the chosen hand are scored."""
    from core.eval.evaluate import evaluate, load_gt
    from core.io.clip import load_clip

    rng = np.random.default_rng(2)
    t = 4
    left = rng.normal(size=(t, 21, 3)) * 0.03 + np.array([0, 0, 0.5])
    _write_clip(tmp_path / "c.npz", left, left, side="left")
    gt = left.copy()
    gt[2] += rng.normal(size=(21, 3))  # frame 2 shows a right hand: other joints
    np.savez(tmp_path / "gt.npz", joints_cam=gt, valid=np.ones((t, 21), bool),
             hand_side=np.array(["left", "left", "right", "left"]))
    g = load_gt(tmp_path / "gt.npz", hand="left")
    assert g.side == "left" and g.frames.tolist() == [True, True, False, True]
    rep = evaluate(load_clip(tmp_path / "c.npz"), g)  # the clip's hand defaults to the labels' side
    assert (rep.side, rep.n_gt, rep.n_detected) == ("left", 3, 3)
    assert rep.rows["ours"]["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    assert load_gt(tmp_path / "gt.npz", hand="right").frames.tolist() == [False, False, True, False]


def test_eval_ground_truth_errors(tmp_path):
    from core.errors import CaptureError
    from core.eval.evaluate import load_gt

    rng = np.random.default_rng(3)
    t = 3
    j = rng.normal(size=(t, 21, 3)) * 0.03 + np.array([0, 0, 0.5])
    _write_clip(tmp_path / "c.npz", j, j)
    two = np.stack([j, j], 1).astype(np.float32)
    np.savez(tmp_path / "two.npz", joints_cam=two, hand_order=np.array(["right", "left"]))
    assert_user_error(run_cli("eval", tmp_path / "c.npz", "--gt", tmp_path / "two.npz"), "two.npz", "--gt-hand")
    valid = np.ones((t, 2, 21), bool)
    valid[:, 0] = False  # no right hand labelled anywhere
    np.savez(tmp_path / "none.npz", joints_cam=two, valid=valid, hand_order=np.array(["right", "left"]))
    assert_user_error(run_cli("eval", tmp_path / "c.npz", "--gt", tmp_path / "none.npz", "--gt-hand", "right"),
                      "no right hand")
    assert_user_error(run_cli("eval", tmp_path / "c.npz", "--gt", tmp_path / "two.npz", "--gt-hand", "both"),
                      "gt-hand")
    cases = {  # file contents -> words of the message
        "noorder": (dict(joints_cam=two), ("noorder.npz", "hand_order")),
        "badorder": (dict(joints_cam=two, hand_order=np.array(["a", "b"])), ("no right hand", "a, b")),
        "badvalid": (dict(joints_cam=j, valid=np.ones((t, 20), bool)), ("badvalid.npz", "valid", "(3, 21)")),
        "floatvalid": (dict(joints_cam=j, valid=np.ones((t, 21))), ("floatvalid.npz", "valid")),
        "mixed": (dict(joints_cam=j, hand_side=np.array(["left", "right", "left"])), ("left and right", "--gt-hand")),
        "badside": (dict(joints_cam=j, hand_side=np.array(["left", "left"])), ("hand_side", "(3,)")),
        "shape": (dict(joints_cam=np.zeros((t, 3, 2, 21, 3))), ("shape.npz", "(N, 21, 3)")),
    }
    for name, (arrays, words) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(CaptureError) as err:
            load_gt(tmp_path / f"{name}.npz", hand="right" if name in ("noorder", "badorder") else None)
        for w in words:
            assert w in str(err.value), (name, w, str(err.value))
    np.savez(tmp_path / "lefts.npz", joints_cam=j, hand_side=np.array(["left"] * t))
    with pytest.raises(CaptureError, match="no right hand"):
        load_gt(tmp_path / "lefts.npz", hand="right")


def test_capture_no_fit(tmp_path, data_dir):
    """--no-fit keeps the analytic IK of the detector's 3D landmarks: the same detections, valid poses
    inside the joint limits, but joints that meet the 2D landmarks worse than the 2D-aware fit's."""
    import torch

    from core.solve import limits
    from core.io.clip import load_clip
    from core.hand.load import load_model
    from core.hand.mano import ManoLayer
    from core.rot import aa_to_rotmat

    dev = data_dir / "real_world_testset_dev"
    common = ("capture", dev / "images", "--end", 3, "--hands", 1, "--intrinsics", f"{dev / 'labels.npz'}:K_crop",
              "--no-vae", "--quiet")
    for name, flags in (("fit", ()), ("ik", ("--no-fit",))):
        r = run_cli(*common, *flags, "--out", tmp_path / f"{name}.npz")
        assert r.returncode == 0, r.stderr
    fit, ik = load_clip(tmp_path / "fit.npz"), load_clip(tmp_path / "ik.npz")
    assert fit.sides == ik.sides and fit.valid.all() and ik.valid.all()
    np.testing.assert_array_equal(fit.landmarks_px, ik.landmarks_px)
    assert np.isfinite(ik.joints).all() and np.isfinite(ik.hand_pose).all()
    assert np.abs(fit.joints - ik.joints).max() > 2e-3  # metres: a different output

    def reprojection_px(c):
        p = np.einsum("tij,tkj->tki", c.K, c.joints[0])
        return np.linalg.norm(p[..., :2] / p[..., 2:] - c.landmarks_px[0], axis=-1).mean()

    assert reprojection_px(fit) < 0.8 * reprojection_px(ik)  # measured 2.6 vs 4.7 px
    layer = ManoLayer(load_model(ik.sides[0]))
    rot = aa_to_rotmat(torch.as_tensor(np.concatenate([ik.global_orient[0][:, None], ik.hand_pose[0]], 1)))
    betas = torch.as_tensor(ik.betas[0])[None].expand(ik.n_frames, -1)
    assert limits.violations_deg(limits.joint_angles(layer, rot, betas)).max() < 1.0


def test_capture_no_collide(tmp_path, data_dir):
    """Dev crops 42-44 (a pinch whose fit crosses thumb and index by 8-13 mm): the default output keeps
    every finger pair under 2 mm; --no-collide (the ablation) leaves the overlap."""
    from core.io.clip import load_clip
    from core.eval.plausibility import check_clip

    dev = data_dir / "real_world_testset_dev"
    common = ("capture", dev / "images", "--start", 42, "--end", 45, "--hands", 1,
              "--intrinsics", f"{dev / 'labels.npz'}:K_crop", "--quiet")
    depth = {}
    for name, flags in (("on", ()), ("off", ("--no-collide",))):
        r = run_cli(*common, *flags, "--out", tmp_path / f"{name}.npz")
        assert r.returncode == 0, r.stderr
        depth[name] = check_clip(load_clip(tmp_path / f"{name}.npz"), 0).penetration_mm
    assert len(depth["on"]) == 3 and (depth["on"] < 2.0).all(), depth
    assert (depth["off"] > 4.0).any(), depth
