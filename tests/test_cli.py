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
    from core.clip import ClipResult, save_clip

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

    rows = json.loads((tmp_path / "e.json").read_text())["rows"]
    assert rows["ours"]["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    assert rows["mediapipe"]["wrist_rel_mm"] == pytest.approx(0.0, abs=1e-3)  # a pure shift
    assert rows["ours"]["limit_viol_frames"] == 0  # the flat hand
    assert (tmp_path / "e.png").stat().st_size > 10_000
