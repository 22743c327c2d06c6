"""docs/guide.md, the user guide, against the installed extension (real bpy): every picture it shows exists and is
small, every operator it names is registered, and every label it puts in bold is one the add-on really shows
(an operator's or panel's label, a button's text, a setting's name or choice) or one of Blender's own."""
from __future__ import annotations

import re
from pathlib import Path

import bpy

from helpers import ROOT

GUIDE = ROOT / "docs" / "guide.md"
# Blender's own interface and keys, named by the guide.
BLENDER_UI = {"3D Viewport's sidebar", "Ctrl+Z", "Edit > Preferences", "Edit > Preferences > Add-ons", "Esc",
              "Get Extensions", "Install from Disk", "Install from Disk...", "N", "Numpad 0", "drop-down arrow (v)"}


def test_pictures_exist_and_are_small():
    text = GUIDE.read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) >= 6, images
    sizes = {}
    for rel in images:
        path = (GUIDE.parent / rel).resolve()
        assert path.is_file(), f"docs/guide.md shows {rel}, which does not exist (run docs/render_guide.py)"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", rel
        sizes[rel] = path.stat().st_size
    assert max(sizes.values()) < 150_000, sizes
    assert sum(sizes.values()) < 1_000_000, sizes
    assert (ROOT / "docs" / "render_guide.py").is_file()


def _shown_labels(ext) -> set:
    """Every label the add-on shows: operator and panel labels, the panels' and preferences' button texts, the
    names and choices of the settings they draw."""
    labels = set()
    for name in dir(bpy.ops.hand_capture):
        rna = getattr(bpy.ops.hand_capture, name).get_rna_type()
        labels.add(rna.name)
        for prop in rna.properties:  # e.g. the Export buttons: the format choices
            if prop.type == "ENUM":
                labels |= {item.name for item in prop.enum_items}
    for cls in bpy.types.Panel.__subclasses__():
        if getattr(cls, "bl_category", "") == "Hand Capture":
            labels.add(cls.bl_label)
    package = Path(ext.__file__).parent
    for src in ("panels/main.py", "blender_addon/prefs.py"):
        labels |= set(re.findall(r'text="([^"{]+)"', (package / src).read_text()))
    settings = bpy.context.scene.hand_capture
    prefs = bpy.context.preferences.addons[ext.__name__].preferences
    for group in (settings, settings.retarget, prefs):
        for prop in group.bl_rna.properties:
            labels.add(prop.name)
            if prop.type == "ENUM":
                labels |= {item.name for item in prop.enum_items}
    return labels


def test_operators_and_labels_are_real(ext):
    text = GUIDE.read_text()
    ops = set(re.findall(r"bpy\.ops\.hand_capture\.(\w+)", text))
    assert {"setup_runtime", "capture_video", "refine_contact", "grasp_lock", "retarget", "export"} <= ops
    missing = sorted(op for op in ops if not hasattr(bpy.ops.hand_capture, op))
    assert not missing, f"docs/guide.md names operators that do not exist: {missing}"
    bold = {" ".join(b.split()) for b in re.findall(r"\*\*([^*]+)\*\*", text)}
    unknown = sorted(bold - _shown_labels(ext) - BLENDER_UI)
    assert not unknown, f"docs/guide.md puts labels in bold that the add-on does not show: {unknown}"
