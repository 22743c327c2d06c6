"""The package: build.py's zip passes Blender's validator, installs headless, registers what it should."""
from __future__ import annotations

import ast
import re
import tomllib
import zipfile
from pathlib import Path

import bpy
import pytest

from helpers import EXT_MODULE, ROOT

EXT_DIRS = ("blender_addon", "operators", "panels")


def test_zip_holds_exactly_the_extension(ext_zip):
    names = set(zipfile.ZipFile(ext_zip).namelist())
    for must in ("__init__.py", "blender_manifest.toml", "LICENSE", "core/__init__.py", "core/__main__.py",
                 "core/io/clip.py", "core/hand/load.py", "core/hand/assets/handcap_right.npz",
                 "core/hand/assets/handcap_left.npz", "core/net/weights/joint_vae.pt",
                 "blender_addon/convert.py", "operators/capture.py", "panels/main.py"):
        assert must in names, must
    tops = {n.split("/")[0] for n in names}
    assert tops == {"__init__.py", "blender_manifest.toml", "LICENSE", "core", "blender_addon", "operators", "panels"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/." in n or n.startswith(".")]


def test_manifest_fields():
    m = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    assert m["schema_version"] == "1.0.0" and m["id"] == "hand_capture" and m["name"] == "Hand Capture"
    assert len(m["tagline"]) <= 64 and m["tagline"][-1].isalnum()
    assert set(m["permissions"]) <= {"files", "network", "clipboard", "camera", "microphone"}
    for reason in m["permissions"].values():
        assert len(reason) <= 64 and reason[-1].isalnum()
    assert re.fullmatch(r"\d+\.\d+\.\d+", m["blender_version_min"])
    assert bpy.app.version >= tuple(int(x) for x in m["blender_version_min"].split("."))


def test_installed_and_enabled(ext):
    assert EXT_MODULE in bpy.context.preferences.addons
    assert Path(ext.__file__).parent.name == "hand_capture"
    assert hasattr(bpy.types.Scene, "hand_capture")
    prefs = bpy.context.preferences.addons[EXT_MODULE].preferences
    assert hasattr(prefs, "python_path")


def test_operator_names(ext):
    """Class names follow HANDCAP_OT_<name> and bl_idname is hand_capture.<name>."""
    from importlib import import_module

    ops = import_module(f"{EXT_MODULE}.operators")
    assert len(ops.classes) >= 5
    for cls in ops.classes:
        m = re.fullmatch(r"HANDCAP_OT_(\w+)", cls.__name__)
        assert m, cls.__name__
        assert cls.bl_idname == f"hand_capture.{m.group(1)}"
        assert hasattr(getattr(bpy.ops.hand_capture, m.group(1)), "idname")
    for name in ("capture_video", "import_clip", "setup_runtime", "check_runtime", "pick_video"):
        assert getattr(bpy.ops.hand_capture, name).get_rna_type() is not None
    assert bpy.ops.hand_capture.capture_video.get_rna_type().properties["filepath"].subtype == "FILE_PATH"
    assert "UNDO" in ops.capture.HANDCAP_OT_capture_video.bl_options
    assert "UNDO" in ops.import_clip.HANDCAP_OT_import_clip.bl_options


def test_panel_registered(ext):
    p = bpy.types.HANDCAP_PT_main
    assert p.bl_space_type == "VIEW_3D" and p.bl_region_type == "UI" and p.bl_category == "Hand Capture"


def _py_files(dirs):
    for d in dirs:
        yield from sorted((ROOT / d).rglob("*.py"))


@pytest.mark.parametrize("path", list(_py_files(EXT_DIRS)) + [ROOT / "__init__.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_extension_imports(path):
    """No torch (or other heavy package) on Blender's side; project packages only through relative imports."""
    tree = ast.parse(path.read_text(), str(path))
    heavy = {"torch", "mediapipe", "cv2", "scipy", "smplx"}
    project = {"core", "blender_addon", "operators", "panels"}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        for n in names:
            top = n.split(".")[0]
            assert top not in heavy, f"{path.name} imports {n}"
            assert top not in project, f"{path.name} imports {n} absolutely; use a relative import"


@pytest.mark.parametrize("path", list(_py_files(("operators", "panels"))), ids=lambda p: str(p.relative_to(ROOT)))
def test_operators_and_panels_reach_the_core_through_blender_addon(path):
    """UI code imports blender_addon (which re-exports CaptureError, CORE_ROOT), never core directly."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            assert (node.module or "").split(".")[0] != "core", f"{path.name} imports ..{node.module}"
