"""Capture and contact settings: one PropertyGroup behind ``Scene.hand_capture`` (what the panel shows) and the
same properties on the capture and refine operators (what a script or the panel passes to them), defined once
here (the group's contact settings carry a ``contact_`` prefix)."""
from __future__ import annotations

import math

import bpy

from .contact import ContactSettings
from .contact_keys import REGIONS
from .job import VIDEO_EXTENSIONS, CaptureSettings
from .retarget_props import HandCaptureRetargetSettings
from .retarget_props import classes as retarget_classes
from .scene import SceneOptions

CAMERA_ITEMS = (
    ("AUTO", "Automatic", "Guess the field of view (a phone's main camera, about 69 degrees across the long side)"),
    ("FOV", "Field of View", "Field of view across the longer image side"),
    ("FOCAL_MM", "Focal Length", "35 mm-equivalent focal length (a phone's main camera is about 26 mm)"),
    ("PIXELS", "Pixels", "Focal length and principal point in pixels (from a calibration)"),
)
HANDS_ITEMS = (("1", "One Hand", "One hand over the whole clip, never switching: the most confident and largest"),
               ("2", "Two Hands", "Track up to two hands"),
               ("RIGHT", "Right Hand", "Only the right hand, over the whole clip"),
               ("LEFT", "Left Hand", "Only the left hand, over the whole clip"))
SIDE_OF_HANDS = {"RIGHT": "right", "LEFT": "left"}  # the Hands choices that keep one given side
DETECTOR_ITEMS = (("AUTO", "Automatic", "The torch port on a GPU, Hybrid on the CPU (the faster one there)"),
                  ("MEDIAPIPE", "MediaPipe", "MediaPipe's legacy Hands graph (CPU)"),
                  ("HYBRID", "Hybrid", "MediaPipe's own networks with a lighter palm-detector schedule (CPU): "
                                       "the same landmarks, faster with one hand in view"),
                  ("TORCH", "Torch", "The torch port of MediaPipe's hand networks and graph (GPU where torch sees one, "
                                     "else CPU)"))
MODEL_ITEMS = (("PIPELINE", "Pipeline", "The detector's landmarks through the VAE and the image-aligned fit"),
               ("PAPER", "Paper Network", "Experimental: the paper's network on the detector's crops (core/net/paper); "
                                          "less accurate than the pipeline on real footage today"))
VIDEO_GLOB = ";".join(f"*{e}" for e in VIDEO_EXTENSIONS)


def capture_properties() -> dict:
    """Property definitions shared by `HandCaptureSettings` and the capture operator (fresh each call)."""
    p = bpy.props
    return {
        "filepath": p.StringProperty(name="Video", description="Video file to capture", subtype="FILE_PATH"),
        "frame_first": p.IntProperty(name="First Frame", description="First video frame to capture (1 = the start)",
                                     default=1, min=1),
        "frame_last": p.IntProperty(name="Last Frame", description="Last video frame to capture (0 = to the end)",
                                    default=0, min=0),
        "stride": p.IntProperty(name="Frame Step", description="Capture every N-th frame", default=1, min=1, max=100),
        "hands": p.EnumProperty(name="Hands", items=HANDS_ITEMS, default="2"),
        "camera": p.EnumProperty(name="Camera", description="How the video camera's lens is known",
                                 items=CAMERA_ITEMS, default="AUTO"),
        "fov": p.FloatProperty(name="Field of View", subtype="ANGLE", default=math.radians(69.0),
                               min=math.radians(1.0), max=math.radians(170.0)),
        "focal_mm": p.FloatProperty(name="Focal Length", description="35 mm-equivalent focal length",
                                    subtype="DISTANCE_CAMERA", default=26.0, min=1.0, max=5000.0),
        "fx": p.FloatProperty(name="Focal X (px)", default=1000.0, min=0.0),
        "fy": p.FloatProperty(name="Focal Y (px)", description="0 = same as Focal X", default=0.0, min=0.0),
        "cx": p.FloatProperty(name="Centre X (px)", description="Negative = image centre", default=-1.0),
        "cy": p.FloatProperty(name="Centre Y (px)", description="Negative = image centre", default=-1.0),
        "match_fps": p.BoolProperty(name="Match Scene FPS", default=True,
                                    description="Set the scene's frame rate to the video's (else keys keep real time)"),
        "set_frame_range": p.BoolProperty(name="Set Frame Range", default=True,
                                          description="Set the scene's start and end to the captured frames"),
        "set_resolution": p.BoolProperty(name="Set Render Size", default=True,
                                         description="Set the render size to the video's, so the hand lines up "
                                                     "with the footage in camera view"),
        "with_vertices": p.BoolProperty(name="Store Mesh in Clip", default=False,
                                        description="Also store the posed mesh of every frame in the clip file"),
        "min_confidence": p.FloatProperty(name="Detection Confidence", default=0.5, min=0.05, max=0.95,
                                          description="Lower finds more hands, with more false detections"),
        "detector": p.EnumProperty(name="Detector", items=DETECTOR_ITEMS, default="AUTO",
                                   description="Which hand detector the capture runs"),
        "model": p.EnumProperty(name="Model", items=MODEL_ITEMS, default="PIPELINE",
                                description="What makes the hands' 3D from the detector's output"),
    }


CAPTURE_KEYS = tuple(capture_properties())


def settings_from(props, model_right: str = "", model_left: str = "") -> CaptureSettings:
    """CaptureSettings from an operator's (or the panel group's) properties."""
    return CaptureSettings(
        video=bpy.path.abspath(props.filepath) if props.filepath else "",
        frame_first=props.frame_first,
        frame_last=props.frame_last,
        stride=props.stride,
        hands=1 if props.hands in SIDE_OF_HANDS else int(props.hands),
        side=SIDE_OF_HANDS.get(props.hands, ""),
        camera=props.camera,
        fov_deg=math.degrees(props.fov),
        focal_mm=props.focal_mm,
        fx=props.fx,
        fy=props.fy,
        cx=props.cx,
        cy=props.cy,
        with_vertices=props.with_vertices,
        min_confidence=props.min_confidence,
        detector=props.detector.lower(),
        model=props.model.lower(),
        model_right=bpy.path.abspath(model_right) if model_right else "",
        model_left=bpy.path.abspath(model_left) if model_left else "",
    )


def scene_options_from(props) -> SceneOptions:
    return SceneOptions(match_fps=props.match_fps, set_frame_range=props.set_frame_range,
                        set_resolution=props.set_resolution)


def copy_settings(src, dst, keys=CAPTURE_KEYS) -> None:
    """Copy the capture properties from one holder (panel group) to another (operator properties)."""
    for k in keys:
        setattr(dst, k, getattr(src, k))


REGION_ITEMS = tuple((r.upper(), r.capitalize(), f"The {r}" + ("" if r == "palm" else "'s last segment"))
                     for r in REGIONS)


def contact_properties() -> dict:
    """Property definitions of the refine operator (fresh each call); `HandCaptureSettings` holds them as
    ``contact_<name>``."""
    p = bpy.props
    return {
        "selected_only": p.BoolProperty(name="Selected Only", default=False,
                                        description="Refine against the selected mesh objects only (else every "
                                                    "visible mesh object near the hands)"),
        "pin": p.EnumProperty(name="Pin", items=REGION_ITEMS, options={"ENUM_FLAG"}, default=set(),
                              description="Regions always pulled onto the nearest surface"),
        "exclude": p.EnumProperty(name="Exclude", items=REGION_ITEMS, options={"ENUM_FLAG"}, default=set(),
                                  description="Regions never pulled onto a surface (still kept out of objects)"),
        "hand_hand": p.BoolProperty(name="Hands Apart", default=True,
                                    description="Keep two hands from passing through each other"),
    }


CONTACT_KEYS = tuple(contact_properties())


def contact_settings_from(props) -> ContactSettings:
    """ContactSettings from the refine operator's properties."""
    return ContactSettings(selected_only=props.selected_only, pin=tuple(r for r in REGIONS if r.upper() in props.pin),
                           exclude=tuple(r for r in REGIONS if r.upper() in props.exclude), hand_hand=props.hand_hand)


def copy_contact_settings(group, op) -> None:
    """The panel group's ``contact_*`` settings onto the refine operator's properties."""
    for k in CONTACT_KEYS:
        setattr(op, k, getattr(group, f"contact_{k}"))


class HandCaptureSettings(bpy.types.PropertyGroup):
    """Scene.hand_capture: the panel's capture and contact settings."""

    # The panel's own browse button filters for videos, so the path field has none of its own.
    __annotations__ = {**capture_properties(),
                       "filepath": bpy.props.StringProperty(name="Video", description="Video file to capture"),
                       **{f"contact_{k}": v for k, v in contact_properties().items()},
                       "grasp_first": bpy.props.IntProperty(name="Lock Frames", default=0, min=0,
                                                            description="First frame the held object follows the "
                                                                        "hand (0 = the scene's start)"),
                       "grasp_last": bpy.props.IntProperty(name="Last", default=0, min=0,
                                                           description="Last frame the held object follows the hand "
                                                                       "(0 = the scene's end)"),
                       "retarget": bpy.props.PointerProperty(type=HandCaptureRetargetSettings)}


classes = (*retarget_classes, HandCaptureSettings)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.hand_capture = bpy.props.PointerProperty(type=HandCaptureSettings)


def unregister():
    del bpy.types.Scene.hand_capture
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
