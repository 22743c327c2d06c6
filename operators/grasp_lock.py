"""``hand_capture.grasp_lock``: the active object, placed in a captured hand at the current frame, follows the
hand over a range of frames (keyed on the object)."""
from __future__ import annotations

import bpy

from ..blender_addon import CaptureError, grasp


class HANDCAP_OT_grasp_lock(bpy.types.Operator):
    """Key the active object to follow the captured hand that holds it at the current frame, over the lock
    frames (then Refine Contact cleans up the grip against that motion)"""

    bl_idname = "hand_capture.grasp_lock"
    bl_label = "Grasp Lock"
    bl_options = {"REGISTER", "UNDO"}

    frame_first: bpy.props.IntProperty(name="First Frame", description="First frame the object follows the hand "
                                       "(0 = the scene's start)", default=0, min=0)
    frame_last: bpy.props.IntProperty(name="Last Frame", description="Last frame the object follows the hand "
                                      "(0 = the scene's end)", default=0, min=0)

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        if obj is None or obj.type != "MESH":
            cls.poll_message_set("Select the mesh object the hand holds")
            return False
        return True

    def execute(self, context):
        scene = context.scene
        first = self.frame_first or scene.frame_start
        last = self.frame_last or scene.frame_end
        try:
            plan = grasp.lock_plan(scene, context.view_layer, context.active_object, first, last)
            grasp.write_lock(plan, scene)
        except CaptureError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        worst = float(plan.residual_mm.max(initial=0.0))
        if worst > 2.0:
            self.report({"WARNING"}, f"the hand's grip moved by up to {worst:.1f} mm relative to the palm (fingers "
                                     f"sliding on the object); {plan.obj} follows their best rigid fit")
        self.report({"INFO"}, f"Hand Capture: {plan.obj} keyed on frames {first}..{last} following {plan.hand} "
                              f"({plan.anchors[0]} palm and {plan.anchors[1]} contact points)")
        return {"FINISHED"}


classes = (HANDCAP_OT_grasp_lock,)
