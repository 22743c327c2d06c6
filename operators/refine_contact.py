"""``hand_capture.refine_contact``: the captured hands touch the scene's objects (and each other) without
passing through them; the result is keyed into a new action on each hand."""
from __future__ import annotations

import os

import bpy

from ..blender_addon import CORE_ROOT, contact, prefs, props
from .jobrun import JobOperator, running


class HANDCAP_OT_refine_contact(JobOperator, bpy.types.Operator):
    """Refine the captured hands against the scene's mesh objects (keyed or still) so they touch without passing
    through; keys the result into a new action, keeping the captured one"""

    bl_idname = "hand_capture.refine_contact"
    bl_label = "Refine Contact"
    bl_options = {"REGISTER", "UNDO"}

    __annotations__ = props.contact_properties()

    @classmethod
    def poll(cls, context):
        if running(cls.bl_idname):
            cls.poll_message_set("A contact refinement is already running (Esc cancels it)")
            return False
        return context.scene is not None

    def make_steps(self, context, wait):
        python, _where = prefs.runtime_python(context)
        return contact.refine_steps(
            props.contact_settings_from(self), python, CORE_ROOT, context.scene, context.view_layer,
            active=context.view_layer.objects.active if context.view_layer else None, wait=wait,
            log_path=os.path.join(prefs.user_dir("logs"), "refine.log"), cache_dir=prefs.user_dir("cache"),
            clips_dir=prefs.user_dir("clips"))

    def finished(self, context, outcome):
        for w in outcome.warnings:
            self.report({"WARNING"}, w)
        self.report({"INFO"}, outcome.info)


classes = (HANDCAP_OT_refine_contact,)
