"""Render the pictures of the user guide (docs/guide.md) headless, with the add-on's own operators.

    .venv/bin/python docs/render_guide.py --out docs/img            # every picture (a few minutes)
    .venv/bin/python docs/render_guide.py --out /tmp/img --only contact

Runs in the project's .venv (bpy as a module, plus torch and MediaPipe for the capture worker, which is this
same interpreter: HAND_CAPTURE_PYTHON). Blender's user folder is a temporary one, so the user's own Blender
configuration is never touched. What it does, step by step (the guide's steps):

1. install: ``build.py`` builds the extension zip, which is installed and enabled with
   ``bpy.ops.extensions.package_install_files`` (as Edit > Preferences > Get Extensions > Install from Disk does);
   picture: the hand model the extension ships, at rest.
2. runtime: a short video of the project's own hand is rendered (``core.demo``: the demo motion, Workbench);
   picture: a video frame with the 21 points per hand the runtime finds (after step 3's capture).
3. capture: ``hand_capture.capture_video`` on that video (the runtime is this interpreter); picture: the captured
   hand rendered through the capture camera over the video frame.
4. contact: a grasp of a procedurally made soup can (a YCB-like cylinder, ``core.contact.scenes``: the hand
   pushed 4 mm into it) is imported with ``hand_capture.import_clip``, the can keyed on its motion, then
   ``hand_capture.refine_contact``; picture: before and after, hand vertices inside the can in red, the can
   half see-through.
5. retarget: a Rigify human rig is generated (``pose.rigify_generate``), given a simple skinned body (one box per
   deforming bone), and ``hand_capture.retarget`` puts step 3's fingers on it; picture: our hand and the
   character's hand on one frame.
6. export: ``hand_capture.export`` writes the character to FBX, which is imported into an empty scene;
   picture: the re-imported character's hand on the same frame.

Pictures: small PNGs (480 pixels wide) in ``--out``. Workbench only (no GPU, no OpenGL window needed).
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HANDCAP_CACHE", str(ROOT / "build" / "cache"))
_TMP = Path(tempfile.mkdtemp(prefix="handcap-guide-"))
os.environ["BLENDER_USER_RESOURCES"] = str(_TMP / "blender")  # before bpy is imported

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from mathutils import Matrix, Vector  # noqa: E402

EXT = "bl_ext.user_default.hand_capture"
STEPS = ("install", "runtime", "capture", "contact", "retarget", "export")
FRAMES = 24  # the guide's video: the demo motion (open, fist, open, spread, thumb) in 24 frames
WIDTH = 480
SKIN = (0.80, 0.52, 0.40)
CAN = (0.75, 0.18, 0.12)
BODY = (0.55, 0.62, 0.72)
WALL = (0.78, 0.78, 0.75)
CAN_RADIUS, CAN_HEIGHT = 0.0335, 0.102  # metres: the size of YCB's tomato soup can


def ext(name: str):
    return importlib.import_module(f"{EXT}.{name}")


def say(text: str) -> None:
    print(f"render_guide: {text}", flush=True)


# --- pictures -------------------------------------------------------------------------------------------------

def workbench(scene, width: int, height: int, transparent: bool = False) -> None:
    """Workbench, object colours, studio light, a plain light background (or a transparent film)."""
    r = scene.render
    r.engine = "BLENDER_WORKBENCH"
    r.resolution_x, r.resolution_y, r.resolution_percentage = width, height, 100
    r.film_transparent = transparent
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGBA"
    r.image_settings.color_depth = "8"
    scene.display.render_aa = "8"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "OBJECT"
    shading.show_specular_highlight = False
    scene.view_settings.view_transform = "Standard"
    if scene.world is None:
        scene.world = bpy.data.worlds.new("guide_wall")
    scene.world.color = WALL


def render(scene, frame: int) -> np.ndarray:
    """Render ``frame`` through the scene camera; the image (H, W, 4), rows top to bottom, display values 0..1."""
    scene.frame_set(frame)
    path = _TMP / "render.png"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return read_png(path)


def read_png(path: Path) -> np.ndarray:
    img = bpy.data.images.load(str(path), check_existing=False)
    try:
        w, h = img.size
        px = np.empty(w * h * img.channels, np.float32)
        img.pixels.foreach_get(px)
        px = px.reshape(h, w, img.channels)[::-1]
    finally:
        bpy.data.images.remove(img)
    if px.shape[2] == 3:
        px = np.concatenate([px, np.ones_like(px[..., :1])], 2)
    return px


def save_png(pixels: np.ndarray, path: Path, width: int = WIDTH) -> None:
    """Write ``pixels`` (H, W, 3|4, rows top to bottom) as an 8-bit RGB PNG scaled to ``width`` pixels."""
    h, w = pixels.shape[:2]
    width = min(width, w)  # never scaled up
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = pixels[..., :3]
    img = bpy.data.images.new(path.stem, w, h, alpha=False)
    try:
        img.pixels.foreach_set(np.ascontiguousarray(rgba[::-1]).ravel())
        if w != width:
            img.scale(width, int(round(h * width / w)))
        img.filepath_raw = str(path)
        img.file_format = "PNG"
        scene = bpy.context.scene
        old = scene.render.image_settings.color_mode
        scene.render.image_settings.color_mode = "RGB"
        scene.render.image_settings.compression = 100
        img.save_render(str(path), scene=scene)
        scene.render.image_settings.color_mode = old
    finally:
        bpy.data.images.remove(img)
    say(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def over(fore: np.ndarray, back: np.ndarray) -> np.ndarray:
    a = fore[..., 3:4]
    return fore[..., :3] * a + back[..., :3] * (1 - a)


def crop_around(img: np.ndarray, uv: np.ndarray, aspect: float = 4 / 3, margin: float = 1.6) -> np.ndarray:
    """The part of ``img`` around the points ``uv`` (N, 2 pixels), ``aspect`` wide, inside the image."""
    h, w = img.shape[:2]
    c = (uv.min(0) + uv.max(0)) / 2
    half_h = min(h / 2, max((uv[:, 1].max() - uv[:, 1].min()) / 2, (uv[:, 0].max() - uv[:, 0].min()) / 2 / aspect) * margin)
    half_w = min(w / 2, half_h * aspect)
    x0 = int(np.clip(c[0] - half_w, 0, w - 2 * half_w))
    y0 = int(np.clip(c[1] - half_h, 0, h - 2 * half_h))
    return img[y0:y0 + int(2 * half_h), x0:x0 + int(2 * half_w)]


def side_by_side(*images: np.ndarray, gap: int = 4) -> np.ndarray:
    h = images[0].shape[0]
    parts = []
    for i, im in enumerate(images):
        if i:
            parts.append(np.ones((h, gap, 4), np.float32))
        parts.append(im)
    return np.concatenate(parts, 1)


def frame_camera(scene, points: np.ndarray, view: tuple, up: tuple = (0.0, 0.0, 1.0), lens: float = 50.0,
                 margin: float = 1.25, name: str = "guide_camera"):
    """A camera looking along ``view`` (world) at the points' centre, far enough to show all of them."""
    cam = bpy.data.objects.get(name)
    if cam is None:
        cam = bpy.data.objects.new(name, bpy.data.cameras.new(name))
        scene.collection.objects.link(cam)
    cam.data.lens = lens
    cam.data.sensor_fit = "AUTO"
    cam.data.clip_start, cam.data.clip_end = 0.005, 100.0
    c = points.mean(0)
    radius = float(np.linalg.norm(points - c, axis=1).max())
    aspect = scene.render.resolution_x / scene.render.resolution_y
    half = math.atan(cam.data.sensor_width / 2 / lens) * (min(1.0, 1.0 / aspect) if aspect < 1 else 1.0 / aspect)
    dist = margin * radius / math.sin(half)
    v = Vector(view).normalized()
    cam.location = Vector(c.tolist()) - v * dist
    cam.rotation_mode = "QUATERNION"
    cam.rotation_quaternion = (-v).to_track_quat("Z", "Y") if abs(v.dot(Vector(up))) > 0.99 else \
        _look(v, Vector(up))
    scene.camera = cam
    return cam


def _look(v: Vector, up: Vector):
    """The rotation of a camera looking along ``v`` with ``up`` up in the picture."""
    z = -v
    x = up.cross(z).normalized()
    y = z.cross(x)
    return Matrix((x, y, z)).transposed().to_quaternion()


def mesh_points(obj, depsgraph=None) -> np.ndarray:
    """World vertices of a mesh object, evaluated (modifiers and armature applied)."""
    depsgraph = depsgraph or bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(depsgraph)
    me = ev.to_mesh()
    try:
        co = np.empty(len(me.vertices) * 3, np.float32)
        me.vertices.foreach_get("co", co)
    finally:
        ev.to_mesh_clear()
    m = np.array([list(r) for r in obj.matrix_world], np.float64)
    return co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]


def colour(obj, rgb) -> None:
    obj.color = (*rgb, 1.0)


# --- the steps ------------------------------------------------------------------------------------------------

class Guide:
    def __init__(self, out: Path):
        self.out = out
        self.video = None  # the rendered demo video
        self.frames_dir = None
        self.clip_path = None  # step 3's clip file
        self.hand = None  # name of the captured hand armature
        self.char_blend = None  # step 5's scene, saved for step 6
        self.frame = None  # the frame shown in steps 3, 5 and 6

    def install(self, render_it: bool = True) -> None:
        proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "--out-dir", str(_TMP / "dist"),
                               "--stage-dir", str(_TMP / "stage" / "hand_capture")],
                              capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f"build.py failed: {proc.stderr.strip()[-500:]}")
        zip_path = proc.stdout.strip().splitlines()[-1]
        bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
        if EXT not in bpy.context.preferences.addons:
            raise SystemExit("installing the extension zip did not enable it")
        assert hasattr(bpy.ops.hand_capture, "capture_video")
        say(f"installed {Path(zip_path).name}")

    def render_install(self) -> None:
        """The hand model the extension ships, at rest (from step 3's import)."""
        self._open_capture()
        scene = bpy.context.scene
        arm = bpy.data.objects[self.hand]
        arm.data.pose_position = "REST"
        mesh = bpy.data.objects[f"{self.hand}_mesh"]
        colour(mesh, SKIN)
        workbench(scene, 960, 540)
        pts = mesh_points(mesh)
        frame_camera(scene, pts, view=(0.3, 1.0, -0.35), up=(0.0, 0.0, 1.0), margin=1.1)
        save_png(render(scene, scene.frame_current), self.out / "install.png")

    def make_video(self) -> None:
        import torch

        from core import demo
        from core.hand.gen import ensure_open_model
        from core.hand.load import load_model
        from core.hand.mano import ManoLayer
        from core.progress import Reporter

        ensure_open_model()
        model = load_model("right")
        layer = ManoLayer(model)
        motion = demo.author_motion(layer, FRAMES)
        with torch.no_grad():
            out = layer(motion.betas.expand(FRAMES, -1), None, None, motion.transl, rotmats=motion.rotmats)
        j21 = out.joints21.numpy().astype(np.float64)
        arm_v, arm_f = demo.forearm_mesh(j21, model.v_template, model.rest_joints())
        verts = np.concatenate([out.vertices.numpy(), arm_v], 1)
        faces = np.concatenate([model.faces, arm_f + model.n_verts], 0)
        self.frames_dir = _TMP / "video_frames"
        demo.render_frames(verts, faces, demo.K_DEMO, self.frames_dir, Reporter("quiet"))
        self.video = demo.write_video(self.frames_dir, _TMP / "my_hands.mp4")
        say(f"rendered the video {self.video.name} ({FRAMES} frames)")

    def capture(self) -> None:
        from core import demo

        self.make_video()
        bpy.ops.wm.read_homefile(use_empty=True)
        os.environ["HAND_CAPTURE_PYTHON"] = sys.executable  # the runtime: this interpreter (the project's .venv)
        K = demo.K_DEMO
        result = bpy.ops.hand_capture.capture_video(filepath=str(self.video), hands="1", camera="PIXELS",
                                                    fx=float(K[0, 0]), fy=float(K[1, 1]))
        if result != {"FINISHED"}:
            raise SystemExit(f"capture_video returned {result}")
        self.clip_path = ext("blender_addon.job").clip_path_for(str(self.video), ext("blender_addon.prefs").user_dir("clips"))
        self.hand = next(o.name for o in bpy.context.scene.objects if o.type == "ARMATURE")
        say(f"captured {self.hand}")

    def _open_capture(self) -> None:
        bpy.ops.wm.read_homefile(use_empty=True)
        assert bpy.ops.hand_capture.import_clip(filepath=self.clip_path) == {"FINISHED"}

    def _shown_frame(self):
        """(scene frame, clip row, video frame) in the fist of the demo motion, where the hand was found."""
        from core.demo import peak_frames
        from core.io.clip import load_clip

        clip = load_clip(self.clip_path)
        rows = np.flatnonzero(clip.detected[0])
        fist = peak_frames(FRAMES)[0]  # the demo motion's first key pose is the fist
        t = int(rows[np.argmin(np.abs(clip.frame_index[rows] - fist))])
        return int(clip.frame_index[t]) + 1, t, int(clip.frame_index[t]), clip

    def render_runtime(self) -> None:
        """A video frame with the 21 points the runtime found (the clip's landmarks), joined as a hand."""
        from core.hand.model import MP_PARENTS

        _, t, vf, clip = self._shown_frame()
        img = read_png(self.frames_dir / f"{vf:04d}.png")[..., :3].copy()
        h, w = img.shape[:2]
        uv = clip.landmarks_px[0, t].astype(np.float64)
        yy, xx = np.mgrid[0:h, 0:w]

        def dot(p, r, rgb):
            m = (xx - p[0]) ** 2 + (yy - p[1]) ** 2 <= r * r
            img[m] = rgb

        for j, p in enumerate(MP_PARENTS):
            if p >= 0:
                for s in np.linspace(0, 1, 40):
                    dot(uv[p] + s * (uv[j] - uv[p]), 1.6, (1.0, 1.0, 1.0))
        for q in uv:
            dot(q, 4.0, (0.05, 0.35, 0.9))
        save_png(crop_around(img, uv), self.out / "runtime.png")

    def render_capture(self) -> None:
        """The captured hand through the capture camera over the video frame."""
        frame, t, vf, clip = self._shown_frame()
        self.frame = frame
        self._open_capture()
        scene = bpy.context.scene
        mesh = bpy.data.objects[f"{self.hand}_mesh"]
        colour(mesh, (0.25, 0.65, 1.0))
        w, h = scene.render.resolution_x, scene.render.resolution_y  # the video's size (Set Render Size)
        workbench(scene, w, h, transparent=True)
        shot = render(scene, frame)
        back = read_png(self.frames_dir / f"{vf:04d}.png")
        shot[..., 3] *= 0.85
        save_png(crop_around(over(shot, back), clip.landmarks_px[0, t]), self.out / "capture.png")

    def contact(self) -> None:
        """A soup can held by a hand pushed 4 mm into it; Refine Contact; before and after."""
        import torch

        from core.contact.mesh import mesh_from_arrays
        from core.contact.scenes import grasp_scene
        from core.hand.gen import ensure_open_model
        from core.hand.load import load_model
        from core.hand.mano import ManoLayer
        from core.hand.model import MP_FROM_MANO21
        from core.io.clip import ClipResult, save_clip
        from core.rot import rotmat_to_aa

        ensure_open_model()
        model = load_model("right")
        layer = ManoLayer(model, dtype=torch.float64)
        n = 8
        scene_ = grasp_scene(layer, soup_can(), n_frames=n, pen_mm=4.0, seed=2)
        rot, tr = scene_.capture_rot, scene_.capture_transl
        with torch.no_grad():
            out = layer(scene_.betas.expand(n, -1), None, None, tr, rotmats=rot)
        joints = out.joints21.numpy()[:, MP_FROM_MANO21]
        K = np.array([[600.0, 0, 319.5], [0, 600.0, 239.5], [0, 0, 1]])
        uv = joints[..., :2] / joints[..., 2:] * 600.0 + K[:2, 2]
        aa = rotmat_to_aa(rot).numpy()
        clip = ClipResult(
            source=str(_TMP / "soup_can.mp4"), fps=30.0, image_size=np.array([640, 480]), frame_index=np.arange(n),
            time=np.arange(n) / 30.0, K=np.repeat(K[None], n, 0), K_guessed=False, sides=("right",),
            model_names=(model.name,), model_paths=("",), valid=np.ones((1, n), bool), detected=np.ones((1, n), bool),
            confidence=np.ones((1, n), np.float32), betas=scene_.betas.numpy().astype(np.float32),
            global_orient=aa[None, :, 0].astype(np.float32), hand_pose=aa[None, :, 1:].astype(np.float32),
            transl=tr.numpy()[None].astype(np.float32), joints=joints[None].astype(np.float32),
            landmarks_px=uv[None].astype(np.float32), landmarks_world=(joints - joints[:, :1])[None].astype(np.float32))
        path = save_clip(clip, _TMP / "soup_can.npz")
        bpy.ops.wm.read_homefile(use_empty=True)
        assert bpy.ops.hand_capture.import_clip(filepath=str(path)) == {"FINISHED"}
        scene = bpy.context.scene
        arm = next(o for o in scene.objects if o.type == "ARMATURE")
        hand_mesh = bpy.data.objects[f"{arm.name}_mesh"]
        # The can, keyed on its motion (camera frame -> Blender world: the add-on's own conversion).
        can = new_mesh("SoupCan", scene_.mesh.vertices, scene_.mesh.faces)
        c2w = np.eye(4)
        c2w[:3, :3] = ext("blender_addon.convert").CAM_TO_WORLD
        for t in range(n):
            can.matrix_world = Matrix((c2w @ scene_.transforms[t]).tolist())
            can.keyframe_insert("location", frame=t + 1)
            can.keyframe_insert("rotation_euler", frame=t + 1)
        colour(can, CAN)
        scene.frame_set(1)
        workbench(scene, 480, 540)
        pts = mesh_points(hand_mesh)
        centre = np.array(can.matrix_world.translation)
        view = pts.mean(0) - centre  # from beyond the can, towards the hand: the finger pads on it face the camera
        view[2] = 0.0
        frame_camera(scene, np.concatenate([pts, mesh_points(can)]), view=tuple(view), margin=1.05)
        before = self._inside_shot(scene, hand_mesh, can)
        os.environ["HAND_CAPTURE_PYTHON"] = sys.executable
        result = bpy.ops.hand_capture.refine_contact("EXEC_DEFAULT", True)
        if result != {"FINISHED"}:
            raise SystemExit(f"refine_contact returned {result}")
        after = self._inside_shot(scene, hand_mesh, can)
        save_png(side_by_side(before, after), self.out / "contact.png")

    @staticmethod
    def _inside_shot(scene, hand_mesh, can, radius: float = CAN_RADIUS, height: float = CAN_HEIGHT):
        """The hand at frame 1 with its vertices inside the can in red (measured exactly: the can is a cylinder), the
        can half see-through."""
        scene.frame_set(1)
        pts = mesh_points(hand_mesh)
        m = np.array([list(r) for r in can.matrix_world])
        local = (pts - m[:3, 3]) @ m[:3, :3]  # the can's frame (rotation only: its scale is 1)
        inside = (np.hypot(local[:, 0], local[:, 1]) < radius) & (np.abs(local[:, 2]) < height / 2)
        say(f"{int(inside.sum())} hand vertices inside the can")
        ev = hand_mesh.evaluated_get(bpy.context.evaluated_depsgraph_get())
        me = bpy.data.meshes.new_from_object(ev)
        me.transform(hand_mesh.matrix_world)
        rgb = np.where(inside[:, None], np.array([0.9, 0.05, 0.05]), np.array(SKIN))
        attr = me.color_attributes.new("inside", "FLOAT_COLOR", "POINT")
        attr.data.foreach_set("color", np.c_[rgb, np.ones(len(rgb))].astype(np.float32).ravel())
        me.color_attributes.active_color = attr
        shot = bpy.data.objects.new("hand_shot", me)
        scene.collection.objects.link(shot)
        hand_mesh.hide_render = True
        shading = scene.display.shading
        shading.color_type = "VERTEX"
        try:
            whole = render(scene, 1)
            can.hide_render = True
            hand = render(scene, 1)
            can.hide_render = False
            return whole * 0.5 + hand * 0.5  # the can half see-through: the hand inside it shows
        finally:
            shading.color_type = "OBJECT"
            hand_mesh.hide_render = False
            bpy.data.objects.remove(shot)
            bpy.data.meshes.remove(me)

    def retarget(self) -> None:
        """Step 3's hand onto a generated Rigify character; our hand and the character's, same frame."""
        import addon_utils

        self._open_capture()
        scene = bpy.context.scene
        frame = self.frame or self._shown_frame()[0]
        addon_utils.enable("rigify", default_set=True)
        bpy.ops.object.armature_human_metarig_add()
        meta = bpy.context.active_object
        bpy.ops.pose.rigify_generate()
        char = bpy.context.active_object
        meta.hide_render = meta.hide_viewport = True
        body = skin_boxes(char, [b.name for b in char.data.bones if b.use_deform], scene.collection)
        colour(body, BODY)
        if bpy.ops.hand_capture.retarget(target=char.name) != {"FINISHED"}:
            raise SystemExit("retarget failed")
        self.char_blend = _TMP / "character.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(self.char_blend), copy=True)
        scene.frame_set(frame)
        hand_mesh = bpy.data.objects[f"{self.hand}_mesh"]
        colour(hand_mesh, SKIN)
        workbench(scene, 480, 540)
        ours = self._hand_shot(scene, [hand_mesh], frame, hide=[body])
        theirs = self._character_shot(scene, char, body, frame, hide=[hand_mesh])
        save_png(side_by_side(ours, theirs), self.out / "retarget.png", width=WIDTH)

    def _hand_shot(self, scene, objs, frame, hide):
        for o in hide:
            o.hide_render = True
        scene.frame_set(frame)
        pts = np.concatenate([mesh_points(o) for o in objs])
        # our hand as the camera saw it: looking along the camera's view (world +Y)
        frame_camera(scene, pts, view=(0.0, 1.0, 0.0), margin=1.05)
        img = render(scene, frame)
        for o in hide:
            o.hide_render = False
        return img

    def _character_shot(self, scene, char, body, frame, hide):
        for o in hide:
            o.hide_render = True
        scene.frame_set(frame)
        m = np.array([list(r) for r in char.matrix_world])
        names = [b.name for b in char.pose.bones if b.name.startswith(("DEF-f_", "DEF-thumb", "DEF-palm"))
                 and b.name.endswith(".R")]
        pts = np.array([m[:3, :3] @ np.array(char.pose.bones[n].tail) + m[:3, 3] for n in names]
                       + [m[:3, :3] @ np.array(char.pose.bones["DEF-hand.R"].head) + m[:3, 3]])
        frame_camera(scene, pts, view=(0.0, 1.0, 0.0), margin=1.3)
        img = render(scene, frame)
        for o in hide:
            o.hide_render = False
        return img

    def _body_shot(self, scene, body, frame, hide):
        for o in hide:
            o.hide_render = True
        scene.frame_set(frame)
        frame_camera(scene, mesh_points(body), view=(0.0, 1.0, 0.0), margin=1.05)
        img = render(scene, frame)
        for o in hide:
            o.hide_render = False
        return img

    def export(self) -> None:
        """The character to FBX with Export > FBX, re-imported into an empty scene."""
        if self.char_blend is None:
            self.retarget()
        bpy.ops.wm.open_mainfile(filepath=str(self.char_blend))
        char = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE" and "DEF-hand.R" in o.data.bones)
        frame = self.frame or self._shown_frame()[0]
        path = _TMP / "character.fbx"
        if bpy.ops.hand_capture.export(format="FBX", filepath=str(path), target=char.name) != {"FINISHED"}:
            raise SystemExit("export failed")
        bpy.ops.wm.read_homefile(use_empty=True)
        kw = {"anim_offset": 0.0} if "anim_offset" in bpy.ops.import_scene.fbx.get_rna_type().properties else {}
        bpy.ops.import_scene.fbx(filepath=str(path), **kw)
        scene = bpy.context.scene
        body = next(o for o in scene.objects if o.type == "MESH")
        arm = next(o for o in scene.objects if o.type == "ARMATURE")
        colour(body, BODY)
        workbench(scene, 480, 540)
        full = self._body_shot(scene, body, frame, hide=[])
        scene.frame_set(frame)
        m = np.array([list(r) for r in arm.matrix_world])
        names = [b.name for b in arm.pose.bones if b.name.startswith(("DEF-f_", "DEF-thumb", "DEF-palm"))
                 and b.name.endswith(".R")]
        pts = np.array([m[:3, :3] @ np.array(arm.pose.bones[n].tail) + m[:3, 3] for n in names]
                       + [m[:3, :3] @ np.array(arm.pose.bones["DEF-hand.R"].head) + m[:3, 3]])
        frame_camera(scene, pts, view=(0.0, 1.0, 0.0), margin=1.3)
        hand = render(scene, frame)
        save_png(side_by_side(full, hand), self.out / "export.png", width=WIDTH)


def soup_can(radius: float = CAN_RADIUS, height: float = CAN_HEIGHT, segments: int = 40):
    """A closed cylinder the size of YCB's tomato soup can (metres, centred at the origin, axis z)."""
    from core.contact.mesh import mesh_from_arrays

    a = np.linspace(0, 2 * math.pi, segments, endpoint=False)
    ring = np.stack([radius * np.cos(a), radius * np.sin(a)], 1)
    v = np.concatenate([np.c_[ring, np.full(segments, -height / 2)], np.c_[ring, np.full(segments, height / 2)],
                        [[0, 0, -height / 2], [0, 0, height / 2]]])
    i = np.arange(segments)
    j = (i + 1) % segments
    b, t = 2 * segments, 2 * segments + 1
    faces = np.concatenate([np.c_[i, j, j + segments], np.c_[i, j + segments, i + segments],
                            np.c_[np.full(segments, b), j, i], np.c_[np.full(segments, t), i + segments, j + segments]])
    return mesh_from_arrays(v, faces, "soup_can")


def new_mesh(name: str, vertices: np.ndarray, faces: np.ndarray):
    me = bpy.data.meshes.new(name)
    me.from_pydata(np.asarray(vertices, np.float64).tolist(), [], np.asarray(faces).tolist())
    me.update()
    obj = bpy.data.objects.new(name, me)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def skin_boxes(obj, names, collection):
    """A mesh deformed by armature ``obj``: a box along each bone in ``names`` (a quarter of its length wide, the hand's
    bones wider, at least 1 cm), weighted to it: a simple character body."""
    verts, faces, groups = [], [], []
    m = np.array([list(r) for r in obj.matrix_world])
    for n in names:
        b = obj.data.bones[n]
        head, tail = np.array(b.head_local), np.array(b.tail_local)
        y = tail - head
        length = np.linalg.norm(y)
        if length < 1e-6:
            continue
        x = np.array(b.matrix_local)[:3, 0]
        z = np.cross(x, y / length)
        hand = n.startswith(("DEF-f_", "DEF-thumb", "DEF-palm"))
        r = max(0.005, (0.3 if hand else 0.12) * length)
        base = len(verts)
        for s in (0.0, 1.0):
            for dx in (-r, r):
                for dz in (-r, r):
                    verts.append((head + s * y + dx * x + dz * z).tolist())
        faces += [[base + a for a in q] for q in ((0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6),
                                                   (0, 2, 6, 4), (1, 5, 7, 3))]
        groups.append((n, range(base, base + 8)))
    me = bpy.data.meshes.new(f"{obj.name}_body")
    me.from_pydata(verts, [], faces)
    body = bpy.data.objects.new(f"{obj.name}_body", me)
    collection.objects.link(body)
    body.parent = obj
    body.matrix_parent_inverse = Matrix(np.linalg.inv(m).tolist())
    for n, idx in groups:
        body.vertex_groups.new(name=n).add(list(idx), 1.0, "REPLACE")
    body.modifiers.new("Armature", "ARMATURE").object = obj
    return body


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="folder for the PNGs")
    ap.add_argument("--only", action="append", choices=STEPS, help="render only this step's picture (repeatable)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    want = args.only or list(STEPS)
    g = Guide(args.out)
    g.install()
    if {"runtime", "capture", "install", "retarget", "export"} & set(want):
        g.capture()
    if "install" in want:
        g.render_install()
    if "runtime" in want:
        g.render_runtime()
    if "capture" in want:
        g.render_capture()
    if "contact" in want:
        g.contact()
    if "retarget" in want or "export" in want:
        g.retarget()
    if "export" in want:
        g.export()
    return 0


if __name__ == "__main__":
    sys.exit(main())
