"""Build the extension zip with Blender's own tooling: ``python build.py`` prints the zip's path.

1. Generate the open hand model (core.hand.gen, into the core's cache: build/cache for a build).
2. Stage exactly what the extension needs into build/stage: the root __init__.py, the manifest,
   LICENSE, core/ (code, the VAE weights and the two model files as core/hand/assets/handcap_{right,left}.npz,
   which the installed add-on reads and never regenerates), blender_addon/, operators/, panels/.
3. Run bl_pkg's ``validate`` on the stage, ``build`` into dist/, and ``validate`` on the zip, with
   Blender's extension tool from the bpy wheel (bl_pkg/cli/blender_ext.py); any WARN or ERROR message
   fails the build.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PACKAGES = ("core", "blender_addon", "operators", "panels")
TOP_FILES = ("__init__.py", "blender_manifest.toml", "LICENSE")
CODE_SUFFIXES = {".py", ".md", ".json"}
MODEL_DEST = Path("core/hand/assets")  # where the package carries the open model (core.hand.load.SHIPPED_DIR)
MODEL_FILES = ("handcap_right.npz", "handcap_left.npz")
# Trained by the project's own script (core/net/train.py) on its own poses; committed.
WEIGHT_FILES = ("core/net/weights/joint_vae.pt",)


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
        raise BuildError(f"files missing after generation: {', '.join(missing)} (weights come from python -m core.net.train)")
    return folder


def staged_files() -> list:
    """Repository-relative paths of every file the extension ships."""
    files = [Path(f) for f in TOP_FILES] + [Path(f) for f in WEIGHT_FILES]
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(ROOT / "dist"), help="where the zip goes (default: dist/)")
    ap.add_argument("--stage-dir", default=str(ROOT / "build" / "stage"), help="staging folder (default: build/stage)")
    args = ap.parse_args(argv)
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
