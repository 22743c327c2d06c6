"""Build the extension zip with Blender's own tooling: ``python build.py`` prints the zip's path.

1. Generate the open hand model (core.hand.gen, into the core's cache: build/cache for a build).
2. Stage exactly what the extension needs into build/stage: the root __init__.py, the manifest,
   LICENSE, core/ (code, the VAE weights and the two model files as core/hand/assets/handcap_{right,left}.npz,
   which the installed add-on reads and never regenerates), blender_addon/, operators/, panels/.
3. Run bl_pkg's ``validate`` on the stage, ``build`` into dist/, and ``validate`` on the zip, with
   Blender's extension tool from the bpy wheel (bl_pkg/cli/blender_ext.py); any WARN or ERROR message
   fails the build.

``python build.py --lock`` regenerates the capture runtime's lock files (shipped in the zip; "Set up
runtime" installs exactly them, blender_addon/runtime.py) with uv: blender_addon/runtime-lock.txt from
requirements.txt without the dev-only packages (DEV_ONLY) plus requirements-nodeps.txt, and
blender_addon/uv-lock.txt pinning the uv that installs it. Every line is pinned with the sha256 of every
platform's files. It needs uv (``pip install uv``, or ``--uv PATH``) and the package index.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PACKAGES = ("core", "blender_addon", "operators", "panels")
TOP_FILES = ("__init__.py", "blender_manifest.toml", "LICENSE")
CODE_SUFFIXES = {".py", ".md", ".json"}
MODEL_DEST = Path("core/hand/assets")  # where the package carries the open model (core.hand.load.SHIPPED_DIR)
MODEL_FILES = ("handcap_right.npz", "handcap_left.npz")
# Trained / measured by the project's own scripts on its own poses and renders; committed: the VAE's weights
# (core/net/train.py), the detector's landmark convention the video fit uses (core/net/renders.py) and the paper
# network's head (core/net/paper/train.py on the project's renders, docs/paper_net.md; `--model paper`).
WEIGHT_FILES = ("core/net/weights/joint_vae.pt", "core/net/data/landmark_offsets.npz", "core/net/weights/paper.pt")
# The capture runtime's pinned, hashed packages (python build.py --lock) and the uv that installs them.
RUNTIME_LOCK = "blender_addon/runtime-lock.txt"
UV_LOCK = "blender_addon/uv-lock.txt"
LOCK_FILES = (RUNTIME_LOCK, UV_LOCK)
RUNTIME_PYTHON = "3.11"  # the runtime's Python, whatever Blender's is (blender_addon/runtime.py)
# requirements.txt's packages that only the development environment needs (Blender itself, the tests).
DEV_ONLY = ("bpy", "pytest", "hypothesis", "uv")


class BuildError(Exception):
    """The build cannot go on; the message says why."""


def blender_ext_tool() -> Path:
    """Path of Blender's extension command line tool inside the installed bpy wheel."""
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the bpy module is not installed in this Python: run make setup, then "
                         ".venv/bin/python build.py")
    base = Path(list(spec.submodule_search_locations)[0])
    hits = sorted(base.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not hits:
        raise BuildError(f"Blender's extension tool (bl_pkg/cli/blender_ext.py) was not found under {base}")
    return hits[-1]


def model_dir() -> Path:
    """The folder holding the freshly generated open hand model (generated when missing or stale)."""
    sys.path.insert(0, str(ROOT))
    from core.hand.gen import ensure_open_model

    folder = ensure_open_model()
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    missing += [f for f in WEIGHT_FILES if not (ROOT / f).is_file()]
    if missing:
        raise BuildError(f"files missing after generation: {', '.join(missing)} (weights come from python -m "
                         "core.net.train and python -m core.net.paper.train, docs/paper_net.md)")
    return folder


def staged_files() -> list:
    """Repository-relative paths of every file the extension ships."""
    files = [Path(f) for f in TOP_FILES] + [Path(f) for f in WEIGHT_FILES] + [Path(f) for f in LOCK_FILES]
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*")):
            rel = p.relative_to(ROOT)
            if (p.is_file() and p.suffix in CODE_SUFFIXES and "__pycache__" not in rel.parts
                    and not any(part.startswith(".") for part in rel.parts) and rel.parent != MODEL_DEST):
                files.append(rel)
    return files


def stage(dest: Path, models: Path) -> list:
    """Copy the shipped files, and the open model from ``models``, into ``dest`` (emptied first); returns
    their relative paths."""
    if dest.exists():
        shutil.rmtree(dest)
    files = staged_files()
    for name in MODEL_FILES:
        (dest / MODEL_DEST).mkdir(parents=True, exist_ok=True)
        shutil.copy2(models / name, dest / MODEL_DEST / name)
    for rel in files:
        src = ROOT / rel
        if not src.is_file():
            raise BuildError(f"{rel} is missing")
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    return files + [MODEL_DEST / name for name in MODEL_FILES]


def run_tool(tool: Path, *args: str) -> list:
    """Run blender_ext.py with JSON output; returns its messages, raises BuildError on any WARN/ERROR."""
    proc = subprocess.run([sys.executable, str(tool), *args, "--output-type", "JSON"], capture_output=True, text=True)
    messages, bad = [], []
    for line in proc.stdout.splitlines():
        try:
            kind, text = json.loads(line)
        except ValueError:
            bad.append(f"unexpected output: {line}")
            continue
        messages.append((kind, text))
        if kind in ("WARN", "ERROR", "FATAL_ERROR"):
            bad.append(f"{kind}: {text}")
    if proc.returncode != 0 or bad:
        detail = "; ".join(bad) or proc.stderr.strip().splitlines()[-1:] or f"exit code {proc.returncode}"
        raise BuildError(f"blender_ext {args[0]} failed: {detail}")
    return messages


def build(out_dir: Path, stage_dir: Path) -> Path:
    """Validate and build; returns the zip's path."""
    tool = blender_ext_tool()
    stage(stage_dir, model_dir())
    run_tool(tool, "validate", str(stage_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    messages = run_tool(tool, "build", "--source-dir", str(stage_dir), "--output-dir", str(out_dir))
    created = [t for k, t in messages if k == "STATUS" and t.startswith("created:")]
    if not created:
        raise BuildError("blender_ext build did not report the zip it created")
    zip_path = Path(created[-1].split('"')[1])
    run_tool(tool, "validate", str(zip_path))
    return zip_path


def _requirement_lines(name: str) -> list:
    lines = (ROOT / name).read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]


def requirement_name(req: str) -> str:
    """The normalised project name of a requirement line ("Absl_Py>=1" -> "absl-py")."""
    return re.split(r"[\s<>=!~;\[(@]", req, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


def runtime_requirements() -> tuple:
    """(resolved, no_deps): the runtime's requirement lines: requirements.txt without DEV_ONLY, and
    requirements-nodeps.txt (installed as pinned, without their own dependencies)."""
    resolved = [r for r in _requirement_lines("requirements.txt") if requirement_name(r) not in DEV_ONLY]
    return resolved, _requirement_lines("requirements-nodeps.txt")


def lock_input_sha256() -> str:
    """sha256 of the runtime's requirement lines (written into the lock's header; a test compares them)."""
    resolved, no_deps = runtime_requirements()
    text = "\n".join(sorted(resolved)) + "\n--no-deps\n" + "\n".join(sorted(no_deps)) + "\n"
    return hashlib.sha256(text.encode()).hexdigest()


def find_uv(explicit: str | None = None) -> list:
    """The uv command: --uv, uv on PATH, or ``python -m uv`` where this Python has it."""
    import importlib.util

    if explicit:
        return [explicit]
    if shutil.which("uv"):
        return [shutil.which("uv")]
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    raise BuildError("uv is needed to write the lock files: pip install uv (or pass --uv /path/to/uv)")


def _compile(uv: list, req_file: Path, *extra: str) -> str:
    """``uv pip compile --universal --generate-hashes`` for Python RUNTIME_PYTHON on every platform; its text."""
    proc = subprocess.run([*uv, "pip", "compile", "--no-config", "--quiet", "--universal", "--generate-hashes",
                           "--python-version", RUNTIME_PYTHON, "--no-header", "--no-build", *extra, str(req_file)],
                          capture_output=True, text=True, cwd=req_file.parent)
    if proc.returncode != 0:
        raise BuildError(f"uv pip compile {req_file.name} failed: {proc.stderr.strip()}")
    return proc.stdout


def write_locks(uv_path: str | None = None) -> list:
    """Regenerate RUNTIME_LOCK and UV_LOCK; returns their paths."""
    uv = find_uv(uv_path)
    version = subprocess.run([*uv, "--version"], capture_output=True, text=True, check=True).stdout.split()[1]
    resolved, no_deps = runtime_requirements()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "requirements.txt").write_text("\n".join(resolved) + "\n")
        (tmp / "requirements-nodeps.txt").write_text("\n".join(no_deps) + "\n")
        (tmp / "uv.txt").write_text(f"uv=={version}\n")
        main = _compile(uv, tmp / "requirements.txt")
        nodeps = _compile(uv, tmp / "requirements-nodeps.txt", "--no-deps")
        uv_pins = _compile(uv, tmp / "uv.txt", "--no-annotate")
    command = f"uv {version} pip compile --universal --generate-hashes --python-version {RUNTIME_PYTHON} --no-build"
    runtime_text = (
        f"# The capture runtime's packages for Python {RUNTIME_PYTHON} on every platform, pinned with their sha256.\n"
        f"# Generated by `python build.py --lock`, i.e. {command}\n"
        f"# of requirements.txt without {', '.join(DEV_ONLY)} (dev only), then of requirements-nodeps.txt with\n"
        f"# --no-deps. Do not edit by hand.\n"
        f"# Set up runtime installs it with uv pip sync --require-hashes (blender_addon/runtime.py).\n"
        f"# input-sha256: {lock_input_sha256()}\n"
        f"{main}# requirements-nodeps.txt (installed without its own dependencies)\n{nodeps}")
    uv_text = (f"# The uv that installs the capture runtime, with the sha256 of its files for every platform.\n"
               f"# Generated by `python build.py --lock`; Set up runtime installs it with pip --require-hashes.\n"
               f"{uv_pins}")
    out = []
    for rel, text in ((RUNTIME_LOCK, runtime_text), (UV_LOCK, uv_text)):
        (ROOT / rel).write_text(text)
        out.append(ROOT / rel)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(ROOT / "dist"), help="where the zip goes (default: dist/)")
    ap.add_argument("--stage-dir", default=str(ROOT / "build" / "stage"), help="staging folder (default: build/stage)")
    ap.add_argument("--lock", action="store_true", help=f"regenerate {RUNTIME_LOCK} and {UV_LOCK} (needs uv) and exit")
    ap.add_argument("--uv", help="the uv executable for --lock (default: uv on PATH, or this Python's uv module)")
    args = ap.parse_args(argv)
    if args.lock:
        try:
            for path in write_locks(args.uv):
                print(path)
        except BuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    os.environ.setdefault("HANDCAP_CACHE", str(ROOT / "build" / "cache"))
    try:
        zip_path = build(Path(args.out_dir), Path(args.stage_dir))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(zip_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
