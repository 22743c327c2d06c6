"""Real-Blender fixtures: the built and installed extension, a reset scene, models, clips, a fake runtime.

The extension is built with build.py once per session, installed with
``bpy.ops.extensions.package_install_files`` and enabled; tests reach its modules through
`ext` (``bl_ext.user_default.hand_capture``), so they test the installed copy.
"""
from __future__ import annotations

import importlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bpy  # noqa: E402  (after tests/conftest.py set BLENDER_USER_RESOURCES)

import synth  # noqa: E402
from helpers import ARTIFACTS, EXT_MODULE, FAKE_PYTHON, WORKER_PYTHON, run_worker_python  # noqa: E402



def pytest_sessionfinish(session, exitstatus):
    """Blender 4.5's bpy module can hang for ever at process exit once Rigify has generated a rig (test_retarget,
    test_export): a C++ static destructor of its sound system destroys a condition variable that its own
    delayed-close thread still waits on (Blender's sound.cc, #146640; not seen with 5.0.1 and 5.2.3). On 4.x the
    process therefore ends right after Python's own exit handling, with pytest's exit status, before the C++
    destructors run."""
    if bpy.app.version >= (5, 0, 0):
        return
    import atexit

    code = int(exitstatus)

    def _end():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    atexit.register(_end)  # registered last, so it runs first of Python's exit handlers

@pytest.fixture(scope="session")
def ext_zip(tmp_path_factory) -> Path:
    """The extension zip built by ``python build.py`` in the project's .venv (which validates it with Blender's
    tool and generates the hand model it ships).

    HANDCAP_TEST_ZIP=path tests an already built zip instead (a release artefact).
    """
    if os.environ.get("HANDCAP_TEST_ZIP"):
        return Path(os.environ["HANDCAP_TEST_ZIP"])
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([WORKER_PYTHON, str(ROOT / "build.py"), "--out-dir", str(out),
                           "--stage-dir", str(tmp_path_factory.mktemp("stage") / "hand_capture")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, f"build.py failed: {proc.stderr}"
    zip_path = Path(proc.stdout.strip().splitlines()[-1])
    assert zip_path.is_file()
    return zip_path


@pytest.fixture(scope="session")
def ext(ext_zip):
    """The installed, enabled extension's root module."""
    if EXT_MODULE not in bpy.context.preferences.addons:
        bpy.ops.extensions.package_install_files(filepath=str(ext_zip), repo="user_default",
                                                 enable_on_install=True, overwrite=True)
    # The operator says FINISHED even when it fails: check the add-on really is enabled.
    assert EXT_MODULE in bpy.context.preferences.addons, "installing the extension zip did not enable it"
    import importlib

    mod = importlib.import_module(EXT_MODULE)
    for sub in ("convert", "rig", "skin", "keying", "scene", "job", "worker", "runtime"):
        importlib.import_module(f"{EXT_MODULE}.blender_addon.{sub}")
    return mod


@pytest.fixture
def scene(ext):
    """An empty scene (factory-empty home file); the extension stays enabled."""
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene


@pytest.fixture(scope="session")
def synth_models(tmp_path_factory) -> dict:
    """{side: (HandModel, path)} for the synthetic test hand (loaded with core.hand.model.load_model)."""
    from core.hand.load import load_model

    d = tmp_path_factory.mktemp("models")
    out = {}
    for side in ("right", "left"):
        path = synth.write_synthetic_model(d / f"synth_{side}.npz", side)
        out[side] = (load_model(side, path), path)
    return out


@pytest.fixture(scope="session")
def open_models(ext) -> dict:
    """{side: (HandModel, None)} for the project's own open hand model, as the installed extension ships it."""
    load_model = importlib.import_module(f"{EXT_MODULE}.core.hand.load").load_model
    return {side: (load_model(side), None) for side in ("right", "left")}


@pytest.fixture(params=["synthetic", "open"])
def models(request, ext):
    """Both model kinds in turn: the synthetic test hand and the project's open hand (the extension
    installed: tests read its modules)."""
    return request.getfixturevalue("synth_models" if request.param == "synthetic" else "open_models")


@pytest.fixture
def fake_runtime(tmp_path, monkeypatch):
    """HAND_CAPTURE_PYTHON -> a fake interpreter script; returns a function(mode, clip_path) -> argv file."""
    script = tmp_path / "fake_python"
    script.write_text(FAKE_PYTHON.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("HAND_CAPTURE_PYTHON", str(script))
    argv_file = tmp_path / "argv.json"

    def configure(mode: str = "ok", clip_path: Path | None = None) -> Path:
        monkeypatch.setenv("HANDCAP_FAKE_MODE", mode)
        monkeypatch.setenv("HANDCAP_FAKE_ARGV", str(argv_file))
        if clip_path is not None:
            monkeypatch.setenv("HANDCAP_FAKE_CLIP", str(clip_path))
        return argv_file

    return configure


@pytest.fixture(scope="session")
def tiny_video(tmp_path_factory) -> Path:
    """A 24-frame 640x480 MPEG-4 video (a gradient and a moving square), written with OpenCV in the worker's
    Python (Blender's has no OpenCV)."""
    path = tmp_path_factory.mktemp("video") / "tiny.mp4"
    run_worker_python("""
import sys, cv2, numpy as np
w = cv2.VideoWriter(sys.argv[1], cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
assert w.isOpened(), "OpenCV cannot write MPEG-4 video"
x = np.linspace(0, 255, 640, dtype=np.uint8)
for i in range(24):
    img = np.zeros((480, 640, 3), np.uint8)
    img[:] = x[None, :, None]
    img[200:260, 20 * i:20 * i + 60] = (0, 0, 255)
    w.write(img)
w.release()
""", str(path))
    return path


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
