"""The sidebar panels and the preferences draw without I/O: no folder is made, no file is touched."""
from __future__ import annotations

import contextlib
import os
import shutil
import sys

import bpy
import pytest

from helpers import EXT_MODULE, WORKER_PYTHON, ext_module

_watch = {"on": False, "events": []}


def _audit(event, args):
    if _watch["on"] and event.split(".")[0] in ("open", "os", "shutil", "subprocess", "glob", "pathlib"):
        _watch["events"].append((event, args[:2] if isinstance(args, tuple) else args))


sys.addaudithook(_audit)  # audit hooks cannot be removed: it only records while _watch["on"]


class Layout:
    """Stands in for UILayout in a headless session: records what draw asks for, does nothing else."""

    def __init__(self, log):
        self.log = log
        self.use_property_split = self.use_property_decorate = False
        self.scale_y = 1.0
        self.enabled = self.active = True

    def _child(self, *args, **kwargs):
        return Layout(self.log)

    row = column = box = split = column_flow = grid_flow = _child

    def prop(self, data, prop, **kwargs):
        assert hasattr(data, prop), prop
        self.log.append(("prop", prop))

    def operator(self, idname, **kwargs):
        self.log.append(("operator", idname))
        return type("OpProps", (), {"__setattr__": lambda s, k, v: None})()

    def label(self, text="", **kwargs):
        self.log.append(("label", text))

    def separator(self, **kwargs):
        pass


@contextlib.contextmanager
def no_io(monkeypatch):
    """Fail on any file-system access during the block: stat, exists, folder creation, open."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"file-system access during draw: {args[:1]}")

    for name in ("stat", "lstat", "makedirs", "mkdir", "listdir", "scandir"):
        monkeypatch.setattr(os, name, refuse)
    monkeypatch.setattr(bpy.utils, "extension_path_user", refuse)
    monkeypatch.setattr(bpy.utils, "user_resource", refuse)
    _watch["events"].clear()
    _watch["on"] = True
    try:
        yield
    finally:
        _watch["on"] = False
        monkeypatch.undo()
    assert _watch["events"] == [], _watch["events"]


def _draw_all(context) -> tuple:
    """Draw the three sidebar panels and the preferences into recording layouts: (panel log, prefs log)."""
    main = ext_module("panels.main")
    panel_log, prefs_log = [], []
    for cls in main.classes:
        fake = type("P", (), {"layout": Layout(panel_log), "split_layout": cls.split_layout})()
        cls.draw(fake, context)  # draw() only reads self.layout (and split_layout)
    prefs = bpy.context.preferences.addons[EXT_MODULE].preferences
    fake = type("P", (), {"layout": Layout(prefs_log), "python_path": prefs.python_path,
                          "model_right": prefs.model_right, "model_left": prefs.model_left})()
    type(prefs).draw(fake, context)
    return panel_log, prefs_log


@pytest.mark.parametrize("ready", [False, True])
def test_draw_does_no_io(scene, monkeypatch, ready):
    prefs = ext_module("blender_addon.prefs")
    user = bpy.utils.extension_path_user(ext_module("blender_addon").ADDON_PACKAGE)
    if ready:
        monkeypatch.setenv("HAND_CAPTURE_PYTHON", WORKER_PYTHON)
    else:
        monkeypatch.delenv("HAND_CAPTURE_PYTHON", raising=False)
    assert prefs.refresh_runtime_status()[0] == ready
    shutil.rmtree(user, ignore_errors=True)  # the user folder is gone: drawing must not make it again
    with no_io(monkeypatch):
        panel_log, prefs_log = _draw_all(bpy.context)
    assert not os.path.exists(user)
    assert ("operator", "hand_capture.capture_video") in panel_log
    assert (("operator", "hand_capture.setup_runtime") in panel_log) == (not ready)  # the "no runtime" box
    labels = [t for kind, t in prefs_log if kind == "label"]
    assert any(f"Using {WORKER_PYTHON}" in t for t in labels) == ready
