"""The detector choice (issue 12 item 4): the panel shows it, the Capture button carries it, the worker gets it.

Real bpy: the panel's own draw() (into a recording layout, headless) copies the scene's settings onto the
Capture button's operator properties; those properties run the capture operator against the fake runtime
(conftest `fake_runtime`), which records the worker's command line.
"""
from __future__ import annotations

import json

import bpy
import pytest

from helpers import ext_module, write_clip


class _Recorder:
    """What UILayout.operator() hands back: records the properties the panel sets on the button."""

    def __init__(self, store):
        object.__setattr__(self, "_store", store)

    def __setattr__(self, key, value):
        self._store[key] = value


class _Layout:
    """A headless stand-in for UILayout: records props and the operator buttons' properties."""

    def __init__(self, log, buttons):
        self.log, self.buttons = log, buttons
        self.use_property_split = self.use_property_decorate = False
        self.scale_y = 1.0
        self.enabled = self.active = True

    def _child(self, *args, **kwargs):
        return _Layout(self.log, self.buttons)

    row = column = box = split = column_flow = grid_flow = _child

    def prop(self, data, prop, **kwargs):
        assert hasattr(data, prop), prop
        self.log.append(prop)

    def operator(self, idname, **kwargs):
        self.buttons[idname] = {}
        return _Recorder(self.buttons[idname])

    def label(self, text="", **kwargs):
        pass

    def separator(self, **kwargs):
        pass


def _draw(cls_name: str, context) -> tuple[list, dict]:
    cls = getattr(ext_module("panels.main"), cls_name)
    log, buttons = [], {}
    fake = type("P", (), {"layout": _Layout(log, buttons), "split_layout": cls.split_layout})()
    cls.draw(fake, context)
    return log, buttons


def test_detector_property_and_settings(scene):
    props, job = ext_module("blender_addon.props"), ext_module("blender_addon.job")
    hc = scene.hand_capture
    assert hc.detector == "AUTO"
    assert [i.identifier for i in type(hc).bl_rna.properties["detector"].enum_items] == ["AUTO", "MEDIAPIPE", "HYBRID", "TORCH"]
    assert "detector" in _draw("HANDCAP_PT_options", bpy.context)[0]  # the Options section offers it
    for ident, name in (("AUTO", "auto"), ("MEDIAPIPE", "mediapipe"), ("HYBRID", "hybrid"), ("TORCH", "torch")):
        hc.detector = ident
        s = props.settings_from(hc)
        assert s.detector == name and s.problems() == ["no video chosen: pick a video file in the Hand Capture panel"]
        argv = job.capture_argv("py", s, "o.npz")
        assert argv[argv.index("--detector") + 1] == name
    bad = job.CaptureSettings(video="", detector="gpu")
    assert any("detector must be one of auto, mediapipe, hybrid, torch; got 'gpu'" in p for p in bad.problems())


@pytest.mark.parametrize("choice", ["TORCH", "MEDIAPIPE", "HYBRID"])
def test_detector_choice_reaches_the_worker(scene, fake_runtime, synth_models, tmp_path, tiny_video, choice):
    """The panel's choice -> the Capture button's properties (the panel's own draw) -> the worker's argv."""
    clip_path, _ = write_clip(tmp_path, {"right": synth_models["right"]}, source=tiny_video, n_frames=3)
    argv_file = fake_runtime("ok", clip_path)
    hc = scene.hand_capture
    hc.filepath, hc.hands, hc.detector = str(tiny_video), "1", choice
    _, buttons = _draw("HANDCAP_PT_main", bpy.context)
    button = buttons["hand_capture.capture_video"]
    assert button["detector"] == choice
    assert bpy.ops.hand_capture.capture_video(**button) == {"FINISHED"}
    argv = json.loads(argv_file.read_text())
    assert argv[argv.index("--detector") + 1] == choice.lower()
    assert "tiny_hand_R" in bpy.data.objects
