"""farm/: the Flamenco job type compiles under Node into the expected tasks (``node --test farm/flamenco/``, with
stand-in globals), and the commands it emits, run here as a Flamenco worker would (variables replaced, each task
after the ones it depends on, from a folder of its own), make the same output folders as ``python -m core batch``.
Flamenco itself cannot be run here; Node is needed (skipped, naming the reason, without it).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_batch import GOOD, clips, run_cli, write_manifest  # noqa: F401  (clips: the fixture)

ROOT = Path(__file__).resolve().parent.parent
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not on PATH (the Flamenco job type is JavaScript)")


@needs_node
def test_flamenco_job_type_compiles_under_node():
    proc = subprocess.run([NODE, "--test", "farm/flamenco/"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.search(r"^# pass [1-9]", proc.stdout, re.M) and re.search(r"^# fail 0$", proc.stdout, re.M)


def compile_job(settings: dict, tmp_path: Path) -> list:
    f = tmp_path / "settings.json"
    f.write_text(json.dumps(settings))
    proc = subprocess.run([NODE, str(ROOT / "farm" / "flamenco" / "standin.js"), str(f)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["tasks"]


def run_as_worker(tasks: list, variables: dict, cwd: Path) -> list:
    """Run the tasks like a Flamenco worker: ``{variable}`` replaced in every parameter, a task only after its
    dependencies succeeded, exec commands as argument lists. Returns [(task, exit status)]."""
    def expand(v):
        if isinstance(v, dict):
            return {k: expand(x) for k, x in v.items()}
        if isinstance(v, list):
            return [expand(x) for x in v]
        return re.sub(r"\{(\w+)\}", lambda m: variables.get(m.group(1), m.group(0)), v) if isinstance(v, str) else v

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done, ran = set(), []
    for task in tasks:
        assert set(task["dependencies"]) <= done, f"{task['name']} listed before what it depends on"
        for cmd in task["commands"]:
            assert cmd["name"] == "exec"
            p = expand(cmd["parameters"])
            proc = subprocess.run([p["exe"], *p["args"]], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
            ran.append((task["name"], proc.returncode, proc.stderr[-2000:]))
            if proc.returncode != 0:
                break
        else:
            done.add(task["name"])
    return ran


@needs_node
def test_flamenco_commands_make_what_the_batch_cli_makes(clips, tmp_path):  # noqa: F811
    """One clip (each task is a process paying the capture's or Blender's start-up; the Node tests compile several)."""
    names = GOOD[:1]
    manifest = write_manifest(tmp_path, 0.5, names, root=clips)
    ref = tmp_path / "cli"
    code, res = run_cli(manifest, "--out", ref, "--blend", "--blender", sys.executable)
    assert code == 0 and {(r["outcome"], r["blend"]) for r in res.values()} == {("ok", "ok")}

    farm_out = tmp_path / "farm"
    listed = subprocess.run([sys.executable, str(ROOT / "farm" / "handcap.py"), "batch", str(manifest), "--out",
                             str(farm_out), "--list"], capture_output=True, text=True, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    tasks = compile_job({"manifest": str(manifest), "output_dir": str(farm_out), "clips": listed.stdout.strip()},
                        tmp_path)
    assert [t["name"] for t in tasks] == [f"{k}-{n}" for n in names for k in ("capture", "keying")]
    worker = tmp_path / "worker"
    worker.mkdir()
    # The Manager's variables for this "worker": the checkout, its .venv Python, and a "Blender" (here the same
    # Python, which has bpy: the batch runs ``python -m blender_addon.apply`` for an interpreter).
    ran = run_as_worker(tasks, {"handcap": str(ROOT), "handcap_python": sys.executable, "blender": sys.executable},
                        worker)
    assert [(name, rc) for name, rc, _ in ran] == [(t["name"], 0) for t in tasks], ran

    for n in names:
        a, b = json.loads((ref / n / "clip.json").read_text()), json.loads((farm_out / n / "clip.json").read_text())
        for key in ("outcome", "config", "config_hash", "software_version"):  # (the .npz zip holds write times)
            assert a[key] == b[key], (n, key)
        assert a["input"]["sha256"] == b["input"]["sha256"]
        assert (a["blend"]["outcome"], b["blend"]["outcome"]) == ("ok", "ok")
        with np.load(ref / n / "clip.npz") as x, np.load(farm_out / n / "clip.npz") as y:
            assert x.files == y.files and all(x[k].tobytes() == y[k].tobytes() for k in x.files)
        assert (farm_out / n / "clip.blend").is_file() and (farm_out / n / "capture.log").is_file()
    summary = [json.loads(x) for x in (farm_out / "summary.jsonl").read_text().splitlines()]
    # Each capture task captured its clip; each keying task found it done and ran only the Blender step.
    assert [(r["clip"], r["outcome"], r["blend"]) for r in summary] == [
        x for n in names for x in ((n, "ok", None), (n, "skipped", "ok"))]


def _render(template: str, values: dict) -> str:
    """OpenJD format strings: ``{{Param.X}}`` / ``{{Task.Param.X}}`` replaced."""
    return re.sub(r"\{\{\s*([\w.]+)\s*\}\}", lambda m: str(values[m.group(1)]), template)


def test_slurm_array_task_and_openjd_template_run_the_batch_cli(clips, tmp_path):  # noqa: F811
    """The SLURM script, run as array task 1, captures the manifest's second clip as the batch CLI does; the OpenJD
    template's two steps render to the batch CLI's per-clip commands (--index; the second with the Blender step)."""
    yaml = pytest.importorskip("yaml", reason="PyYAML (installed with ray) reads the OpenJD template")
    names = GOOD[:2]
    manifest = write_manifest(tmp_path, 0.5, names, root=clips)
    ref = tmp_path / "cli"
    assert run_cli(manifest, "--out", ref, "--only", names[1])[0] == 0
    out = tmp_path / "slurm"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(SLURM_ARRAY_TASK_ID="1", HANDCAP=str(ROOT), MANIFEST=str(manifest), OUT=str(out),
               HANDCAP_PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(ROOT / "farm" / "slurm" / "hand_capture.sbatch")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [names[1]]
    with np.load(ref / names[1] / "clip.npz") as x, np.load(out / names[1] / "clip.npz") as y:
        assert x.files == y.files and all(x[k].tobytes() == y[k].tobytes() for k in x.files)

    t = yaml.safe_load((ROOT / "farm" / "openjd" / "hand_capture.template.yaml").read_text())
    assert t["specificationVersion"] == "jobtemplate-2023-09"
    steps = {s["name"]: s for s in t["steps"]}
    assert steps["Keying"]["dependencies"] == [{"dependsOn": "Capture"}]
    values = {"Param.Python": sys.executable, "Param.HandCapture": str(ROOT), "Param.Manifest": str(manifest),
              "Param.OutputDir": str(out), "Param.Blender": "blender", "Task.Param.Index": 1, "Param.LastClipIndex": 1}
    base = [sys.executable, f"{ROOT}/farm/handcap.py", "batch", str(manifest), "--out", str(out), "--index", "1",
            "--quiet"]
    for name, extra in (("Capture", []), ("Keying", ["--blend", "--blender", "blender"])):
        step = steps[name]
        assert _render(step["parameterSpace"]["taskParameterDefinitions"][0]["range"], values) == "0-1"
        run = step["script"]["actions"]["onRun"]
        assert [_render(run["command"], values)] + [_render(a, values) for a in run["args"]] == base + extra
