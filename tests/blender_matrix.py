"""Run tests/blender in a Blender-like interpreter per supported Blender version.

Each interpreter is a venv holding only the ``bpy`` wheel of that version, what it pulls in, and pytest:
what an animator's Blender has (numpy, no scipy / torch / OpenCV). The capture worker and the build run in
the project's .venv (HANDCAP_WORKER_PYTHON). The venvs live in .venvs/ and are reused while their stamp
matches (as ``make setup`` does for .venv).

    python tests/blender_matrix.py [--only 5.0.1] [pytest args ...]

Exit status: non-zero when any version fails or a version that has an interpreter could not be set up.
A version whose Python is missing on this machine (Blender 5.1+ needs Python 3.13) is reported as skipped,
naming the reason.
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENVS = ROOT / ".venvs"
# Blender version -> the Python its bpy wheel needs. 4.5 LTS, the 5.0 release, the current LTS.
VERSIONS = {"4.5.15": "3.11", "5.0.1": "3.11", "5.2.3": "3.13"}
TEST_PACKAGES = ("pytest>=8",)


def find_python(version: str) -> str | None:
    """A working ``python<version>``: $HANDCAP_PYTHON<digits> (e.g. HANDCAP_PYTHON313), PATH, or pyenv."""
    env = os.environ.get("HANDCAP_PYTHON" + version.replace(".", ""))
    candidates = [env] if env else []
    candidates.append(shutil.which(f"python{version}"))
    home = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{home}/versions/{version}.*/bin/python{version}"), reverse=True)
    for c in candidates:
        if c and subprocess.run([c, "-c", "import sys, venv"], capture_output=True).returncode == 0:
            return c
    return None


def venv_python(d: Path) -> Path:
    return d / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_env(blender: str, base: str) -> Path:
    """The venv for ``blender`` (created, or reused when its stamp matches); its interpreter."""
    d = ENVS / f"blender-{blender}"
    stamp = d / ".handcap-bpy"
    want = f"bpy=={blender} " + " ".join(TEST_PACKAGES) + f" python{VERSIONS[blender]}"
    if stamp.is_file() and stamp.read_text() == want and venv_python(d).is_file():
        return venv_python(d)
    if d.exists():
        shutil.rmtree(d)
    subprocess.run([base, "-m", "venv", str(d)], check=True)
    py = venv_python(d)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"bpy=={blender}",
                    *TEST_PACKAGES], check=True)
    out = subprocess.run([str(py), "-c", "import bpy, sys; print(bpy.app.version_string); "
                          "assert not any(m in sys.modules for m in ('scipy', 'torch', 'cv2'))"],
                         capture_output=True, text=True, check=True)
    print(f"  made {d.relative_to(ROOT)}: Blender {out.stdout.strip()}", flush=True)
    stamp.write_text(want)
    return py


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", choices=sorted(VERSIONS), help="run only this version (repeatable)")
    args, pytest_args = ap.parse_known_args(argv)
    worker = os.environ.get("HANDCAP_WORKER_PYTHON") or str(venv_python(ROOT / ".venv"))
    if not Path(worker).is_file():
        print(f"error: the worker's Python {worker} is missing: run make setup", file=sys.stderr)
        return 2
    results = {}
    for blender in args.only or VERSIONS:
        pyver = VERSIONS[blender]
        print(f"=== Blender {blender} (bpy wheel, Python {pyver}) ===", flush=True)
        base = find_python(pyver)
        if base is None:
            results[blender] = f"SKIPPED: no Python {pyver} on this machine (set HANDCAP_PYTHON{pyver.replace('.', '')})"
            print(results[blender], flush=True)
            continue
        try:
            py = ensure_env(blender, base)
        except subprocess.CalledProcessError as exc:
            results[blender] = f"FAILED: could not make its interpreter ({exc})"
            print(results[blender], flush=True)
            continue
        env = dict(os.environ, HANDCAP_WORKER_PYTHON=worker, HANDCAP_BLENDER_VERSION=blender)
        env.pop("PYTHONPATH", None)
        t0 = time.monotonic()
        rc = subprocess.run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/blender", *pytest_args],
                            cwd=ROOT, env=env).returncode
        results[blender] = f"{'passed' if rc == 0 else f'FAILED (pytest exit {rc})'} in {time.monotonic() - t0:.0f} s"
    print("=== Blender matrix ===")
    for blender, r in results.items():
        print(f"Blender {blender}: {r}")
    return 1 if any(r.startswith("FAILED") for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
