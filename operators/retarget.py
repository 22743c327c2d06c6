"""``hand_capture.retarget``: the captured hands onto a character's rig (a new action on the character); and the
custom mapping's fill / save / load."""
from __future__ import annotations

import bpy
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..blender_addon import CaptureError, retarget, retarget_props


def _settings(context):
    return context.scene.hand_capture.retarget


class HANDCAP_OT_retarget(bpy.types.Operator):
    """Put the captured finger (and wrist) motion on the character: a new action for the character starting as a
    copy of its own, its mapped finger bones keyed; its other keys and its old action stay"""

    bl_idname = "hand_capture.retarget"
    bl_label = "Retarget"
    bl_options = {"REGISTER", "UNDO"}

    __annotations__ = {
        "source": bpy.props.StringProperty(name="Source", description="Captured hand armatures, comma-separated "
                                                                      "(empty: every captured hand in the scene)"),
        "target": bpy.props.StringProperty(name="Target", description="The character's armature (empty: the panel's "
                                                                      "Character, else the active armature)"),
        "mapping": bpy.props.EnumProperty(name="Mapping", items=retarget_props.MAPPING_ITEMS, default="AUTO"),
        "mapping_file": bpy.props.StringProperty(name="Mapping File", subtype="FILE_PATH",
                                                 description="A saved mapping (.json) to use instead of Mapping"),
        **retarget_props.option_properties(),
    }

    def _target(self, context):
        if self.target:
            obj = bpy.data.objects.get(self.target)
            if obj is None:
                raise CaptureError(f"there is no object {self.target!r} to retarget onto: name the character's "
                                   f"armature")
            return obj
        obj = _settings(context).target
        if obj is None and context.active_object is not None and context.active_object.type == "ARMATURE" \
                and not retarget.hand_side(context.active_object):
            obj = context.active_object
        if obj is None:
            raise CaptureError("no character to retarget onto: pick its armature as Character in the Retarget panel")
        return obj

    def _sources(self, context):
        if not self.source.strip():
            return retarget.captured_hands(context.scene)
        out = []
        for name in (n.strip() for n in self.source.split(",")):
            obj = bpy.data.objects.get(name)
            if obj is None:
                raise CaptureError(f"there is no object {name!r} to retarget from: name the captured hand armatures")
            out.append(obj)
        return out

    def execute(self, context):
        try:
            target = self._target(context)
            custom = None
            preset = self.mapping
            if self.mapping_file:
                custom, preset = retarget.load_mapping(bpy.path.abspath(self.mapping_file)), "CUSTOM"
            elif preset == "CUSTOM":
                custom = retarget_props.custom_mapping(_settings(context))
            options = retarget.Options(fingers=tuple(f.lower() for f in retarget_props.FINGER_ITEMS_ORDER
                                                  if f in self.fingers),
                                    strength=self.strength, wrist=self.wrist, orientation=self.orientation)
            act, used = retarget.retarget(context.scene, self._sources(context), target, preset, custom, options)
        except CaptureError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Hand Capture: {target.name} keyed in the new action {act.name} "
                              f"({retarget_props.mapping_label(used.name)} mapping)")
        return {"FINISHED"}


class HANDCAP_OT_retarget_fill(bpy.types.Operator):
    """Fill the custom mapping from the preset that fits the character (or the chosen preset), to edit it"""

    bl_idname = "hand_capture.retarget_fill"
    bl_label = "Fill from Preset"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = _settings(context)
        try:
            if s.target is None:
                raise CaptureError("pick the character's armature as Character first")
            preset = "AUTO" if s.mapping == "CUSTOM" else s.mapping
            m = retarget.resolve_mapping(preset, s.target)
        except CaptureError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        retarget_props.set_custom_mapping(s, m)
        s.mapping = "CUSTOM"
        return {"FINISHED"}


class HANDCAP_OT_retarget_save(bpy.types.Operator, ExportHelper):
    """Save the custom mapping as a preset file (.json)"""

    bl_idname = "hand_capture.retarget_save"
    bl_label = "Save Mapping"
    bl_options = {"REGISTER"}  # writes a file only: no undo step
    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        m = retarget_props.custom_mapping(_settings(context))
        if m is None:
            self.report({"ERROR"}, "the custom mapping is empty: fill it from a preset first")
            return {"CANCELLED"}
        retarget.save_mapping(m, self.filepath)
        return {"FINISHED"}


class HANDCAP_OT_retarget_load(bpy.types.Operator, ImportHelper):
    """Load a mapping preset file (.json) into the custom mapping"""

    bl_idname = "hand_capture.retarget_load"
    bl_label = "Load Mapping"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        try:
            m = retarget.load_mapping(self.filepath)
        except CaptureError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        s = _settings(context)
        retarget_props.set_custom_mapping(s, m)
        s.mapping = "CUSTOM"
        return {"FINISHED"}


classes = (HANDCAP_OT_retarget, HANDCAP_OT_retarget_fill, HANDCAP_OT_retarget_save, HANDCAP_OT_retarget_load)
