"""core.batch (``python -m core batch``): manifests, per-clip output folders, skip-if-done, redo rules, failures
kept apart, and the Ray engine's clip arrays byte-identical to the local engine's.

The clips are cut from the shared single-hand video with the project's own reader (4 frames each, half size),
so that a whole batch captures in seconds; a blank video (no hand) and a file of random bytes stand beside them.
"""
from __future__ import annotations

import datetime
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from core import cli
from core.batch.job import CLIP, LOG, SIDECAR
from core.batch.manifest import ClipSpec, load_manifest
from core.errors import CaptureError
from core.io.clip import load_clip

GOOD = ("c100", "c200", "c300", "c400")
FRAMES = 4


def _write(path: Path, frames) -> None:
    import cv2

    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for f in frames:
        out.write(f)
    out.release()


@pytest.fixture(scope="module")
def clips(tmp_path_factory, data_dir) -> Path:
    """A folder with 4 short clips of a real hand, a blank clip and a corrupt one, and manifest.json."""
    import cv2

    from core.io.video import open_video

    src = data_dir / "video" / "single_hand.mp4"
    if not src.is_file():
        pytest.skip(f"{src} not found (shared data)")
    d = tmp_path_factory.mktemp("batch_clips")
    (d / "videos").mkdir()
    for name in GOOD:
        start = int(name[1:])
        frames = [cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA)
                  for _, f in open_video(src, start=start, end=start + FRAMES)]
        _write(d / "videos" / f"{name}.mp4", frames)
    _write(d / "videos" / "blank.mp4", [np.full((360, 640, 3), 90, np.uint8)] * 3)
    (d / "videos" / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    write_manifest(d, 0.5)
    return d


def write_manifest(d: Path, min_confidence: float, names=GOOD + ("blank", "corrupt"), root: Path | None = None) -> Path:
    m = {**({"root": str(root)} if root else {}), "defaults": {"hands": 1, "min_confidence": min_confidence},
         "clips": [{"path": f"videos/{n}.mp4"} for n in names]}
    (d / "manifest.json").write_text(json.dumps(m))
    return d / "manifest.json"


def run_cli(*argv) -> tuple:
    """``python -m core batch ...`` in this process (the models' imports are shared with the other tests)."""
    out = Path(argv[argv.index("--out") + 1])
    before = sum(1 for _ in open(out / "summary.jsonl")) if (out / "summary.jsonl").is_file() else 0
    code = cli.main(["batch", *map(str, argv), "--quiet"])
    lines = (out / "summary.jsonl").read_text().splitlines()[before:]
    return code, {r["clip"]: r for r in map(json.loads, lines)}


def sidecar(out: Path, name: str) -> dict:
    return json.loads((out / name / SIDECAR).read_text())


def test_local_batch_resumes_and_redoes_only_what_changed(clips, tmp_path, capsys):
    out = tmp_path / "out"
    manifest = clips / "manifest.json"
    # 1. Every clip runs: four captures, one "no hand" (an outcome), one corrupt file (a failure) that stops nothing.
    code, res = run_cli(manifest, "--out", out)
    assert code == 2, "a failed clip makes the batch's exit status 2"
    assert {n: r["outcome"] for n, r in res.items()} == {**{n: "ok" for n in GOOD}, "blank": "no_hand",
                                                         "corrupt": "failed"}
    assert "corrupt.mp4" in res["corrupt"]["message"]
    err = capsys.readouterr().err
    assert "error: corrupt: cannot open corrupt.mp4 as a video" in err and "1 of 6 clips failed" in err
    for n in GOOD:
        s = sidecar(out, n)
        clip = load_clip(out / n / CLIP)
        assert clip.n_frames == FRAMES and clip.valid.any() and clip.n_hands == 1
        assert s["outcome"] == "ok" and s["input"]["sha256"] == _sha(clips / "videos" / f"{n}.mp4")
        assert s["config"]["options"] == {"hands": 1, "min_confidence": 0.5} and s["software_version"]
        assert s["clip_sha256"] == _sha(out / n / CLIP) and s["timings"]["capture_s"] > 0
        assert (out / n / LOG).is_file()
    assert sidecar(out, "blank")["outcome"] == "no_hand" and not (out / "blank" / CLIP).exists()
    assert "no hand found" in (out / "blank" / LOG).read_text()
    assert sidecar(out, "corrupt")["outcome"] == "failed"
    assert not list(out.rglob("*.part")), "temp files are renamed or removed"
    stamps = {n: (out / n / CLIP).stat().st_mtime_ns for n in GOOD}

    # 2. A re-run skips everything done (the "no hand" clip too); the corrupt one is tried again.
    code, res = run_cli(manifest, "--out", out)
    assert code == 2
    assert {n: r["outcome"] for n, r in res.items()} == {**{n: "skipped" for n in GOOD}, "blank": "skipped",
                                                         "corrupt": "failed"}
    assert {n: (out / n / CLIP).stat().st_mtime_ns for n in GOOD} == stamps

    # 3. A deleted output is redone, and only it.
    (out / "c300" / CLIP).unlink()
    code, res = run_cli(manifest, "--out", out, "--only", "c100", "--only", "c300")
    assert code == 0 and res["c300"]["outcome"] == "ok" and res["c300"]["reason"] == "output deleted"
    assert res["c100"]["outcome"] == "skipped" and set(res) == {"c100", "c300"}
    assert {n: (out / n / CLIP).stat().st_mtime_ns for n in GOOD if n != "c300"} == \
        {n: t for n, t in stamps.items() if n != "c300"}

    # 4. A config change redoes every clip.
    changed = tmp_path / "changed"
    shutil.copytree(clips / "videos", changed / "videos")
    code, res = run_cli(write_manifest(changed, 0.45, GOOD + ("blank",)), "--out", out)
    assert code == 0
    assert {n: (r["outcome"], r["reason"]) for n, r in res.items()} == {
        **{n: ("ok", "config changed") for n in GOOD}, "blank": ("no_hand", "config changed")}
    assert all(sidecar(out, n)["config"]["options"]["min_confidence"] == 0.45 for n in GOOD)


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_changed_input_bytes_redo_the_clip(clips, tmp_path):
    """Same name, same options, other bytes (a re-export of the take): the SHA-256 in the sidecar differs."""
    d = tmp_path / "in"
    (d / "videos").mkdir(parents=True)
    shutil.copy(clips / "videos" / "c100.mp4", d / "videos" / "take.mp4")
    m = d / "m.json"
    m.write_text(json.dumps({"clips": [{"path": "videos/take.mp4", "hands": 1}]}))
    out = tmp_path / "out"
    assert run_cli(m, "--out", out)[1]["take"]["outcome"] == "ok"
    shutil.copy(clips / "videos" / "c200.mp4", d / "videos" / "take.mp4")
    code, res = run_cli(m, "--out", out)
    assert (res["take"]["outcome"], res["take"]["reason"]) == ("ok", "input changed")
    assert sidecar(out, "take")["input"]["sha256"] == _sha(clips / "videos" / "c200.mp4")


# -- manifests


def test_manifest_formats_and_paths(tmp_path):
    """JSON, TOML and CSV give the same clips; paths are relative to the manifest's folder, or to its root."""
    (tmp_path / "shots").mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shots" / "m.json").write_text(json.dumps({
        "defaults": {"hands": 1}, "clips": [{"path": "a.mp4", "side": "left", "fov": 60},
                                            {"path": "sub/b.mov", "name": "bee", "vae": False}, "c.mp4"]}))
    (tmp_path / "shots" / "m.toml").write_text(
        '[defaults]\nhands = 1\n[[clips]]\npath = "a.mp4"\nside = "left"\nfov = 60\n'
        '[[clips]]\npath = "sub/b.mov"\nname = "bee"\nvae = false\n[[clips]]\npath = "c.mp4"\n')
    (tmp_path / "shots" / "m.csv").write_text(
        "path,name,hands,side,fov,vae\na.mp4,,1,left,60,\nsub/b.mov,bee,1,,,false\nc.mp4,,1,,,\n")
    specs = [load_manifest(tmp_path / "shots" / f"m.{ext}").clips for ext in ("json", "toml", "csv")]
    assert specs[0] == specs[1] == specs[2]
    a, b, c = specs[0]
    assert (a.name, a.path, a.options) == ("a", str(tmp_path / "shots" / "a.mp4"),
                                          {"hands": 1, "side": "left", "fov": 60.0})
    assert (b.name, b.path, b.options) == ("bee", str(tmp_path / "shots" / "sub" / "b.mov"), {"hands": 1, "vae": False})
    rooted = load_manifest(tmp_path / "shots" / "m.json", root=str(tmp_path / "shared")).clips
    assert rooted[2].path == str(tmp_path / "shared" / "c.mp4")


@pytest.mark.parametrize("entry, message", [
    ({"path": "a.mp4", "hand": 1}, "unknown option 'hand'"),
    ({"path": "a.mp4", "stride": 0}, "stride = 0 is out of range"),
    ({"path": "a.mp4", "side": "up"}, "expected right or left"),
    ({"path": "a.mp4", "detector": "yolo"}, "expected auto or mediapipe or hybrid or torch"),
    ({"path": "a.mp4", "hands": 2, "side": "left"}, "cannot go with hands = 2"),
    ({"path": "a.mp4", "fov": "wide"}, "fov = 'wide': expected a number"),
    ({"hands": 1}, "expected an entry with a path"),
    ({"path": "a.mp4", "name": "../up"}, "must be letters, digits"),
])
def test_manifest_errors_are_one_sentence(tmp_path, entry, message):
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"clips": [entry]}))
    with pytest.raises(CaptureError, match=message):
        load_manifest(m)


def test_manifest_duplicate_names_and_bad_json(tmp_path, capsys):
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"clips": ["x/a.mp4", "y/a.mp4"]}))
    with pytest.raises(CaptureError, match="output name 'a' is also clip 1's"):
        load_manifest(m)
    m.write_text("{not json")
    assert cli.main(["batch", str(m), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: m.json is not a valid JSON manifest") and err.count("\n") == 1


def test_manifest_options_mean_what_the_capture_cli_means(tmp_path):
    """A clip's in-process options (the local engine) equal the capture CLI's parse of its command line (the Ray
    engine and farm tasks), option by option."""
    from core.capture import CaptureOptions

    k = tmp_path / "K.npy"
    np.save(k, np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]]))
    every = {"hands": 1, "side": "right", "start": 3, "end": 40, "stride": 2, "fx": 512.5, "fy": 510.0, "cx": 320.0,
             "cy": 241.5, "fov": 61.0, "intrinsics": str(k), "static": True, "with_vertices": True,
             "model_right": "r.npz", "model_left": "l.npz", "min_confidence": 0.3, "vae": False, "fit": False,
             "collide": False, "separate_sizes": True, "detector": "torch", "device": "cpu", "workers": 2}
    for options in ({}, every, {"hands": 2, "vae": True, "static": False}):
        spec = ClipSpec("x", str(tmp_path / "x.mp4"), options)
        parsed = cli.build_parser().parse_args(spec.capture_argv("o.npz"))
        a, b = CaptureOptions.from_args(parsed), CaptureOptions.from_args(spec.namespace("o.npz"))
        assert {f: getattr(a, f) for f in a.__dataclass_fields__ if f != "K"} == \
            {f: getattr(b, f) for f in b.__dataclass_fields__ if f != "K"}
        assert (a.K is None and b.K is None) or np.array_equal(a.K, b.K)


def test_batch_cli_list_and_flags(clips, tmp_path, capsys):
    assert cli.main(["batch", str(clips / "manifest.json"), "--out", str(tmp_path), "--list"]) == 0
    assert json.loads(capsys.readouterr().out) == [*GOOD, "blank", "corrupt"]
    assert cli.main(["batch", str(clips / "manifest.json"), "--out", str(tmp_path), "--index", "4", "--list"]) == 0
    assert json.loads(capsys.readouterr().out) == ["blank"]
    assert cli.main(["batch", str(clips / "manifest.json"), "--out", str(tmp_path), "--index", "6"]) == 2
    assert "--index 6: manifest.json has 6 clips (indices 0 to 5)" in capsys.readouterr().err
    assert cli.main(["batch", str(clips / "manifest.json"), "--out", str(tmp_path), "--only", "nope"]) == 2
    assert "has no clip named 'nope'" in capsys.readouterr().err
    assert cli.main(["batch", str(clips / "manifest.json"), "--out", str(tmp_path), "--gpus-per-clip", "1"]) == 2
    assert "are for --engine ray" in capsys.readouterr().err


def test_batch_chains_the_blender_step(clips, tmp_path):
    """``--blend``: each captured clip is keyed into clip.blend by the headless Blender step (here the project's
    .venv Python, which has bpy); the sidecar records it; a re-run skips both steps; a deleted .blend is made again
    without capturing again."""
    m = write_manifest(tmp_path, 0.5, GOOD[:1], root=clips)
    out = tmp_path / "out"
    py = sys.executable
    code, res = run_cli(m, "--out", out, "--blend", "--blender", py)
    assert code == 0 and (res["c100"]["outcome"], res["c100"]["blend"]) == ("ok", "ok"), res
    s = sidecar(out, "c100")
    assert s["blend"]["outcome"] == "ok" and s["blend"]["clip_sha256"] == s["clip_sha256"]
    assert (out / "c100" / "clip.blend").stat().st_size > 0 and "keyed on" in (out / "c100" / "apply.log").read_text()
    code, res = run_cli(m, "--out", out, "--blend", "--blender", py)
    assert (res["c100"]["outcome"], res["c100"]["blend"]) == ("skipped", None)
    (out / "c100" / "clip.blend").unlink()
    stamp = (out / "c100" / CLIP).stat().st_mtime_ns
    code, res = run_cli(m, "--out", out, "--blend", "--blender", py)
    assert (res["c100"]["outcome"], res["c100"]["blend"]) == ("skipped", "ok") and code == 0
    assert (out / "c100" / "clip.blend").is_file() and (out / "c100" / CLIP).stat().st_mtime_ns == stamp


# -- the Ray engine


def _kill_ray_worker_capturing(clip_path: str, killed: list, stop) -> None:
    """SIGKILL the Ray worker that is capturing ``clip_path`` (a lost worker / node): the worker that has the video
    open, or whose capture child (``--isolate``) is reading it, then that child too."""
    import signal
    import time

    want = clip_path.encode()

    def victims(pid: str) -> list:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        if cmd.startswith(b"ray::"):  # the worker captures itself: it has the video open
            fds = Path(f"/proc/{pid}/fd")
            return [int(pid)] if any(os.readlink(fds / fd).encode() == want for fd in os.listdir(fds)) else []
        if want not in cmd.split(b"\0") or b"capture" not in cmd:
            return []
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        return [ppid, int(pid)] if Path(f"/proc/{ppid}/cmdline").read_bytes().startswith(b"ray::") else []

    while not stop.is_set():
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                found = victims(pid)
            except (OSError, ValueError, IndexError):
                continue
            if found:
                for victim in found:
                    try:
                        os.kill(victim, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                killed.append(found[0])
                return
        time.sleep(0.05)


def _intervals(out: Path, names) -> list:
    parse = datetime.datetime.fromisoformat
    return sorted((parse(sidecar(out, n)["timings"]["started"]), parse(sidecar(out, n)["timings"]["finished"]))
                  for n in names)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is not installed (optional: pip install -r requirements-ray.txt)")
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finding the Ray worker to kill reads /proc (Linux)")
def test_ray_engine_matches_local_engine_and_serialises_gpu_tasks(clips, tmp_path):
    """Local Ray with 2 CPUs and 1 declared GPU, one GPU per clip: the clip files' arrays are byte-identical to the
    local engine's, and no two clips ran at once (each held the one GPU). The Ray worker capturing the first clip (in
    the worker process, the default) is killed while it captures: Ray runs the task again and the clip still ends
    ok. Two clips; benchmarks/batch.py runs four."""
    import threading

    from core.batch.run import BatchSettings, run_batch

    names = GOOD[:2]
    manifest = load_manifest(write_manifest(tmp_path, 0.5, names, root=clips))
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    run_batch(manifest, local, BatchSettings(progress=False))
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=_kill_ray_worker_capturing, args=(manifest.clips[0].path, killed, stop))
    killer.start()
    try:
        res = run_batch(manifest, ray_out, BatchSettings(engine="ray", num_cpus=2, num_gpus=1, gpus_per_clip=1,
                                                         progress=False))
    finally:
        stop.set()
        killer.join()
    assert killed, "no Ray worker was seen capturing the first clip"
    assert sorted(r["clip"] for r in res) == sorted(names) and {r["outcome"] for r in res} == {"ok"}, res
    for n in names:
        assert sidecar(ray_out, n)["engine"] == "ray"
        with np.load(local / n / CLIP) as a, np.load(ray_out / n / CLIP) as b:
            assert a.files == b.files
            for key in a.files:
                assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key
    spans = _intervals(ray_out, names)
    assert all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:])), f"GPU tasks overlapped: {spans}"
    # The same folder resumes with the other engine: nothing left to do.
    again = run_batch(manifest, ray_out, BatchSettings(progress=False))
    assert {r["outcome"] for r in again} == {"skipped"}


def test_ray_task_isolated_runs_the_capture_cli(clips, tmp_path):
    """``--isolate``: the Ray task's body (called here without Ray) captures with the capture CLI as a child process
    (its command line heads the log) and writes the same arrays as a capture in the worker process."""
    from core.batch.ray_engine import _clip_task

    import cv2
    import torch

    spec = load_manifest(write_manifest(tmp_path, 0.5, GOOD[:1], root=clips)).clips[0]
    threads = torch.get_num_threads(), cv2.getNumThreads()
    try:
        inside = _clip_task(spec, str(tmp_path / "inside"), None, False)  # sets this process's threads as a task's
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])
    child = _clip_task(spec, str(tmp_path / "child"), None, False, isolate=True)
    assert (inside["outcome"], child["outcome"]) == ("ok", "ok"), (inside, child)
    assert "(in process)" in (tmp_path / "inside" / spec.name / LOG).read_text().splitlines()[0]
    assert " -m core capture " in (tmp_path / "child" / spec.name / LOG).read_text().splitlines()[0]
    with np.load(tmp_path / "inside" / spec.name / CLIP) as a, np.load(tmp_path / "child" / spec.name / CLIP) as b:
        assert a.files == b.files and all(a[k].tobytes() == b[k].tobytes() for k in a.files)
    assert not list((tmp_path / "child" / spec.name).glob(".clip.*")), "the child's own clip file was renamed"


def test_only_the_ray_backend_imports_ray():
    """Ray is an optional extra: no core module but core/batch/ray_engine.py imports it, even lazily."""
    import ast

    root = Path(__file__).resolve().parent.parent / "core"
    found = []
    for p in root.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(n.split(".")[0] == "ray" for n in names):
                found.append(str(p.relative_to(root)))
    assert sorted(set(found)) == ["batch/ray_engine.py"]


def test_every_capture_option_has_a_manifest_key():
    """A new capture CLI option must be added to the manifest's options (core/batch/manifest.py OPTIONS)."""
    import argparse

    from core.batch.manifest import OPTIONS

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flags = {f for a in sub.choices["capture"]._actions for f in a.option_strings if f.startswith("--")}
    assert flags - {"--help", "--out", "--json-progress", "--quiet"} == {flag for _kind, flag in OPTIONS.values()}
