"""The Python runtime that runs the heavy core (torch, MediaPipe) outside Blender.

Blender's own Python never imports torch: captures run ``python -m core capture ...`` in a separate
interpreter, found in this order: the ``HAND_CAPTURE_PYTHON`` environment variable (farms, tests),
the add-on preference, then the runtime that "Set up runtime" made (a venv under the extension's
user directory). `setup_steps` makes that venv with pip, as a step generator.
"""
from __future__ import annotations

import os
import socket
import sys
import urllib.parse
from pathlib import Path

from ..core.errors import CaptureError
from .progress import Progress
from .worker import Worker, WorkerError, child_env

ENV_VAR = "HAND_CAPTURE_PYTHON"
# The runtime's packages: requirements.txt without bpy and pytest (a test keeps the two in step).
PACKAGES = (
    "torch==2.13.0",
    "numpy>=1.26,<2",
    "opencv-python-headless>=4.8,<4.12",
    "scipy>=1.11",
    "smplx==0.1.28",
    "absl-py",
    "attrs",
    "flatbuffers>=2.0",
    "matplotlib",
    "protobuf>=4.25.3,<5",
    "sentencepiece",
)
# Installed with --no-deps (requirements-nodeps.txt): its own pins would pull opencv-contrib and numpy 2.
NO_DEPS_PACKAGES = ("mediapipe==0.10.21",)
CHECK_IMPORTS = "import numpy, torch, cv2, mediapipe; print(torch.__version__)"
DEFAULT_INDEX = "https://pypi.org/simple"
_NETWORK_MARKERS = (
    "NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
    "Name or service not known", "Network is unreachable", "ConnectTimeout", "ReadTimeout",
    "Connection refused", "ProxyError", "SSLError", "No matching distribution found",
    "Could not find a version that satisfies",
)


def venv_python(venv_dir: str | os.PathLike) -> Path:
    """The interpreter inside a venv folder."""
    venv_dir = Path(venv_dir)
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def find_python(pref_path: str, runtime_dir: str | os.PathLike | None) -> tuple:
    """The runtime interpreter and where it came from: (path str, "environment" | "preferences" | "runtime").

    Raises:
        CaptureError: none is set, or the one set does not exist (the message says how to fix it).
    """
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        if not Path(env).is_file():
            raise CaptureError(f"{ENV_VAR} is set to {env}, which is not a file: point it at a Python "
                               f"interpreter that has torch and mediapipe, or unset it")
        return env, "environment"
    pref = (pref_path or "").strip()
    if pref:
        if not Path(pref).is_file():
            raise CaptureError(f"the Python set in Preferences > Add-ons > Hand Capture ({pref}) does not exist: "
                               f"choose another one, or clear it and press Set up runtime")
        return pref, "preferences"
    if runtime_dir is not None and venv_python(Path(runtime_dir) / "venv").is_file():
        return str(venv_python(Path(runtime_dir) / "venv")), "runtime"
    raise CaptureError("no capture runtime: open Preferences > Add-ons > Hand Capture and press Set up runtime "
                       "(downloads about 1 GB once), or set a Python that has torch and mediapipe there or in "
                       f"{ENV_VAR}")


def index_host(index_url: str) -> tuple:
    """(host, port) of a package index URL."""
    u = urllib.parse.urlsplit(index_url)
    return u.hostname or "pypi.org", u.port or (443 if u.scheme == "https" else 80)


def check_online(index_url: str = DEFAULT_INDEX, timeout_s: float = 5.0) -> None:
    """Raise CaptureError (offline, with the fix) unless the package index's host accepts a connection."""
    host, port = index_host(index_url)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise CaptureError(f"cannot reach {host} to download the capture runtime ({exc.strerror or exc}): "
                           f"connect to the internet (or set up a proxy) and press Set up runtime again, or "
                           f"choose a Python that already has torch and mediapipe in the preferences") from None


def _pip_error(exc: WorkerError, index_url: str) -> CaptureError:
    tail = "\n".join(exc.log_tail)
    errors = [ln for ln in exc.log_tail if ln.startswith("ERROR")]
    reason = errors[-1] if errors else str(exc)
    if any(m in tail for m in _NETWORK_MARKERS):
        host = index_host(index_url)[0]
        return CaptureError(f"could not download the capture runtime from {host} ({reason}): check the internet "
                            f"connection or proxy and press Set up runtime again")
    return CaptureError(f"pip could not install the capture runtime: {reason}")


def _run(argv: list, name: str, stage: str, fraction: tuple, wait: float, index_url: str, log_path: str | None):
    """Run one command, yielding a Progress per output line; raises CaptureError when it fails."""
    worker = Worker(argv, name=name, json_events=False, env=child_env(), log_path=log_path, log_append=True)
    collected = 0
    last = Progress(stage, fraction=fraction[0], message=f"starting {name}")
    try:
        while not worker.finished:
            for ev in worker.poll(wait):
                line = ev.data.get("line", "")
                if line.startswith("Collecting "):
                    collected += 1
                f = fraction[0] + (fraction[1] - fraction[0]) * min(collected / 40.0, 1.0)
                last = Progress(stage, collected, 0, fraction=f, message=line[:120])
                yield last
            yield last  # the same object again: waiting
        try:
            worker.finish()
        except WorkerError as exc:
            raise _pip_error(exc, index_url) if "pip" in argv else CaptureError(str(exc)) from None
    finally:
        worker.cancel()


def setup_steps(runtime_dir: str | os.PathLike, base_python: str | None = None, index_url: str | None = None,
                wait: float = 0.0):
    """Create the runtime venv in ``runtime_dir``/venv and install the packages (step generator).

    Yields Progress; returns the runtime's interpreter path. Raises CaptureError when offline, when pip
    fails (its last ERROR line), or when the finished runtime cannot import torch and mediapipe.
    """
    index = index_url or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX
    runtime_dir = Path(runtime_dir)
    runtime_dir.mkdir(parents=True, exist_ok=True)
    log_path = str(runtime_dir / "setup.log")
    open(log_path, "w").close()  # one log per setup; each command appends to it
    yield Progress("check", message=f"checking {index_host(index)[0]}", fraction=0.0)
    check_online(index)
    venv = runtime_dir / "venv"
    py = venv_python(venv)
    if not py.is_file():
        yield from _run([base_python or sys.executable, "-m", "venv", str(venv)], "venv", "venv", (0.0, 0.05),
                        wait, index, log_path)
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    if index_url:
        pip += ["--index-url", index_url]
    yield from _run(pip + list(PACKAGES), "pip", "install", (0.05, 0.9), wait, index, log_path)
    yield from _run(pip + ["--no-deps"] + list(NO_DEPS_PACKAGES), "pip", "install", (0.9, 0.95), wait, index, log_path)
    yield Progress("check", message="checking the runtime", fraction=0.97)
    yield from _run([str(py), "-c", CHECK_IMPORTS], "runtime check", "check", (0.97, 1.0), wait, index, log_path)
    return str(py)


def check_steps(python: str, wait: float = 0.0):
    """Check that ``python`` imports the core's packages (step generator); returns torch's version line."""
    worker = Worker([python, "-c", CHECK_IMPORTS], name="runtime check", json_events=False, env=child_env())
    waiting = Progress("check", message=f"checking {python}")
    try:
        while not worker.finished:
            worker.poll(wait)
            yield waiting
        try:
            worker.finish()
        except WorkerError as exc:
            raise CaptureError(f"{python} cannot run captures ({exc.log_tail[-1] if exc.log_tail else exc}): "
                               f"press Set up runtime, or choose a Python with torch and mediapipe") from None
        return worker.last_log_line()
    finally:
        worker.cancel()
