"""The built-in demo (``python -m core demo``): render a known motion of the open hand model, capture
it back, and score the capture against the truth. Needs no download and no shared data.

Steps (`run_demo`):
1. author a smooth motion of the right hand model from hinge-axis angles (`author_motion`): open palm,
   slow fist, open, spread, thumb opposition, open; palm towards the camera, the wrist slowly turning;
   every angle inside `core.solve.limits` ranges;
2. forward kinematics (`core.hand.mano`) gives vertices and joints in the OpenCV camera frame; a forearm
   tube is added (MediaPipe's palm detector wants an arm behind a hand), and
   ``blender_addon/demo_render.py`` renders the frames headless with Workbench in a subprocess (core
   never imports bpy); the frames are also written as an mp4 so the video path is exercised;
3. `core.capture` runs on the mp4 with the known intrinsics, `core.eval.evaluate` scores it;
4. a 2x2 overlay of captured joints on rendered frames, and a summary.

Outputs in the demo folder: ``frames/`` (PNG), ``demo.mp4``, ``ground_truth.npz`` (joints_cam (T, 21, 3)
metres, MediaPipe order, camera frame; K (3, 3); the true MANO parameters), ``clip.npz``,
``overlay.png`` and ``report.json``.

Joint conventions: MediaPipe's wrist landmark is not placed where a skeleton's wrist joint (MANO's J0)
is (on real hands it sits up to ~2 cm nearer the fingers), so besides `core.eval.evaluate`'s figures the
demo reports errors over the 20 non-wrist joints; that difference is a convention, not a capture error.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .errors import CaptureError
from .hand.model import FINGERS, MP_FROM_MANO21, MP_PARENTS
from .progress import Progress

WIDTH, HEIGHT = 640, 480
FPS = 30.0
# Pinhole intrinsics of the demo camera (pixels, OpenCV pixel-centre convention): 56 degrees across.
K_DEMO = np.array([[600.0, 0.0, (WIDTH - 1) / 2], [0.0, 600.0, (HEIGHT - 1) / 2], [0.0, 0.0, 1.0]])
# Wrist joint in the camera frame (metres): 45 cm in front, below the centre so the hand is centred.
WRIST_CAM = np.array([0.0, 0.08, 0.45])
SKIN_RGB = (0.80, 0.52, 0.40)  # linear
WALL_RGB = (0.78, 0.78, 0.75)
RENDER_SCRIPT = Path(__file__).resolve().parent.parent / "blender_addon" / "demo_render.py"

# Key poses: per finger (flex1, flex2, flex3, abd1) degrees about core.solve.ik.hinge_axes (positive =
# flexion) and, at the first joint, about bone x hinge (positive = spread away from the middle finger).
_OPEN = {"thumb": (0, 5, 5, 0), "index": (5, 5, 3, 0), "middle": (5, 5, 3, 0), "ring": (5, 5, 3, 0),
         "pinky": (5, 5, 3, 0)}
_FIST = {"thumb": (-10, 30, 40, 0), "index": (70, 90, 45, 0), "middle": (72, 92, 45, 0),
         "ring": (72, 92, 45, 0), "pinky": (70, 90, 45, 0)}
_SPREAD = {"thumb": (-15, 0, 0, 20), "index": (0, 0, 0, 14), "middle": (0, 0, 0, 0), "ring": (0, 0, 0, 10),
           "pinky": (0, 0, 0, 22)}
_OPPOSE = {"thumb": (20, 30, 30, 25), "index": (8, 8, 5, 0), "middle": (12, 10, 6, 0), "ring": (22, 18, 10, 0),
           "pinky": (40, 30, 15, -5)}
# (phase 0..1, pose): the motion passes through these and eases in and out of each.
KEYS = ((0.0, _OPEN), (0.22, _FIST), (0.42, _OPEN), (0.56, _SPREAD), (0.68, _OPEN), (0.86, _OPPOSE), (1.0, _OPEN))


@dataclasses.dataclass(frozen=True)
class Motion:
    """A hand motion over T frames (torch float32, right hand model).

    betas (1, NB); rotmats (T, 16, 3, 3) local rotations (joint 0 = global orient, camera frame);
    global_orient (T, 3), hand_pose (T, 15, 3) axis-angle radians, MANO order; transl (T, 3) metres.
    """

    betas: torch.Tensor
    rotmats: torch.Tensor
    global_orient: torch.Tensor
    hand_pose: torch.Tensor
    transl: torch.Tensor


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """What the demo made and measured.

    out_dir, frames_dir, video, ground_truth, clip, overlay, report: paths.
    n_frames: rendered frames; detection_rate: fraction of frames where the hand was detected.
    rows: method ("mediapipe", "ours") -> figures (mm): pa_mpjpe_mm (21 joints, as core.eval.evaluate),
        pa_mpjpe_nowrist_mm, wrist_rel_mm, and for ours cam_mpjpe_nowrist_mm (camera frame, no alignment).
    seconds: stage -> wall time.
    """

    out_dir: Path
    frames_dir: Path
    video: Path
    ground_truth: Path
    clip: Path
    overlay: Path
    report: Path
    n_frames: int
    detection_rate: float
    rows: dict
    seconds: dict


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def peak_frames(frames: int) -> list[int]:
    """Frame indices (of ``frames``) where the motion reaches its fist, spread and opposition keys."""
    return [int(round(p * (frames - 1))) for p, pose in KEYS if pose is not _OPEN]


def key_angles(frames: int) -> np.ndarray:
    """Per-frame key-pose angles (T, 5, 4) degrees, fingers in core.solve.ik.FINGER_ORDER, eased between KEYS."""
    from .solve.ik import FINGER_ORDER

    phases = np.array([p for p, _ in KEYS])
    poses = np.array([[pose[f] for f in FINGER_ORDER] for _, pose in KEYS], np.float64)  # (K, 5, 4)
    s = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    k = np.clip(np.searchsorted(phases, s, side="right") - 1, 0, len(phases) - 2)
    w = _smoothstep((s - phases[k]) / (phases[k + 1] - phases[k]))[:, None, None]
    return (1 - w) * poses[k] + w * poses[k + 1]


def palm_to_camera(layer) -> torch.Tensor:
    """Global orient (3, 3) that turns ``layer``'s mean rest hand (shape 0) palm-first towards the camera,
    middle finger up: the rest up (wrist -> middle1) and palm normal go to camera -y and -z (OpenCV frame)."""
    from .solve.ik import volar_normal

    betas = torch.zeros(1, layer.n_betas, dtype=layer.v_template.dtype)
    j_rest = layer.rest_joints(betas)
    volar = volar_normal(j_rest, layer.side)[0].float()
    up = torch.nn.functional.normalize(j_rest[0, FINGERS["middle"][0][0]] - j_rest[0, 0], dim=-1).float()
    nrm = torch.nn.functional.normalize(volar - (volar @ up) * up, dim=-1)
    rest_basis = torch.stack([up, nrm, torch.cross(up, nrm, dim=-1)], 1)  # columns
    cam_up, cam_n = torch.tensor([0.0, -1.0, 0.0]), torch.tensor([0.0, 0.0, -1.0])
    cam_basis = torch.stack([cam_up, cam_n, torch.cross(cam_up, cam_n, dim=-1)], 1)
    return cam_basis @ rest_basis.T


def author_motion(layer, frames: int) -> Motion:
    """The demo motion of ``layer``'s hand (a right `core.hand.mano.ManoLayer`), ``frames`` >= 1 long.

    Finger joints: R = R(hinge, flex) @ R(bone x hinge, abd) at the first joint, R(hinge, flex) at the
    second and third (as `core.solve.limits.sample_poses` builds plausible poses). Wrist: palm normal towards
    the camera (-z), middle finger up (-y), then a slow turn (up to 20 degrees about the vertical,
    10 about the view axis, 8 about the horizontal); the wrist joint at WRIST_CAM plus a small drift.
    """
    from .solve.ik import FINGER_ORDER, hinge_axes
    from .rot import aa_to_rotmat, rotmat_to_aa

    def _unit(v: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(v, dim=-1)

    dt = torch.float32
    betas = torch.zeros(1, layer.n_betas, dtype=dt)
    j_rest = layer.rest_joints(betas)
    tips = layer.rest_tips(betas)
    axes = hinge_axes(j_rest, tips, layer.side)[0]  # (5, 3)
    ang = torch.as_tensor(np.radians(key_angles(frames)), dtype=dt)  # (T, 5, 4)
    n = ang.shape[0]
    rot = torch.eye(3, dtype=dt).repeat(n, 16, 1, 1)
    mid = j_rest[0, FINGERS["middle"][0][0]]
    for f, name in enumerate(FINGER_ORDER):
        (j1, j2, j3), _ = FINGERS[name]
        a = axes[f]
        bone = _unit(j_rest[0, j2] - j_rest[0, j1])
        c = torch.cross(bone, a, dim=-1)
        # Spread = away from the middle finger: the sign of d(bone)/d(abd) = c x bone along (base - middle base).
        away = j_rest[0, j1] - mid
        sign = 1.0 if name == "middle" or float(torch.cross(c, bone, dim=-1) @ away) >= 0 else -1.0
        rot[:, j1] = aa_to_rotmat(a * ang[:, f, 0:1]) @ aa_to_rotmat(c * (sign * ang[:, f, 3:4]))
        rot[:, j2] = aa_to_rotmat(a * ang[:, f, 1:2])
        rot[:, j3] = aa_to_rotmat(a * ang[:, f, 2:3])
    # Global orient: palm towards the camera, then the slow turn.
    r0 = palm_to_camera(layer).to(dt)
    s = torch.linspace(0.0, 1.0, n, dtype=dt) if n > 1 else torch.zeros(1, dtype=dt)
    yaw = math.radians(20) * torch.sin(2 * math.pi * s)
    roll = math.radians(10) * torch.sin(math.pi * s)
    tilt = math.radians(8) * torch.sin(4 * math.pi * s)
    e = torch.eye(3, dtype=dt)
    turn = aa_to_rotmat(e[1] * yaw[:, None]) @ aa_to_rotmat(e[2] * roll[:, None]) @ aa_to_rotmat(e[0] * tilt[:, None])
    rot[:, 0] = turn @ r0
    wrist = torch.as_tensor(WRIST_CAM, dtype=dt) + torch.stack(
        [0.02 * torch.sin(math.pi * s), 0.01 * torch.sin(2 * math.pi * s), 0.03 * s], -1)
    transl = wrist - j_rest[0, 0]
    aa = rotmat_to_aa(rot)
    return Motion(betas=betas, rotmats=rot, global_orient=aa[:, 0], hand_pose=aa[:, 1:], transl=transl)


def forearm_mesh(joints21: np.ndarray, rest_verts: np.ndarray, rest_joints: np.ndarray,
                 segments: int = 16, rings: int = 6, length: float = 0.26) -> tuple[np.ndarray, np.ndarray]:
    """A forearm tube per frame, from just inside the palm away from the fingers.

    joints21 (T, 21, 3) posed MANO-21 joints, metres, camera frame; rest_verts (V, 3) and rest_joints
    (16, 3) of the model size the tube (the hand's width and thickness at the wrist).
    Returns vertices (T, rings*segments, 3) float32 and faces ((rings-1)*segments*2, 3) int64.
    """
    # 1. Wrist cross-section of the rest hand: half extents across (thumb-pinky) and through the palm.
    up = rest_joints[4] - rest_joints[0]
    up /= np.linalg.norm(up)
    across = rest_joints[1] - rest_joints[7]
    across -= (across @ up) * up
    across /= np.linalg.norm(across)
    rel = rest_verts - rest_joints[0]
    near = np.abs(rel @ up) < 0.01
    half_w = 0.8 * np.abs(rel[near] @ across).max() if near.any() else 0.028
    through = np.cross(up, across)
    half_t = 0.8 * np.abs(rel[near] @ through).max() if near.any() else 0.018
    # 2. Per-frame axes from the posed palm: the arm runs from the wrist away from the middle finger.
    wrist, mid, idx, pinky = joints21[:, 0], joints21[:, 4], joints21[:, 1], joints21[:, 7]
    u = mid - wrist
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    a = idx - pinky
    a -= (a * u).sum(-1, keepdims=True) * u
    a /= np.linalg.norm(a, axis=-1, keepdims=True)
    b = np.cross(u, a)
    s = np.linspace(-0.015, length, rings)  # along the arm (negative = inside the palm)
    grow = 1.0 + 0.6 * np.clip(s / length, 0, 1)  # the forearm thickens towards the elbow
    th = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = (np.cos(th)[None, :, None] * half_w * a[:, None] + np.sin(th)[None, :, None] * half_t * b[:, None])  # (T, S, 3)
    centres = wrist[:, None] - s[None, :, None] * u[:, None]  # (T, R, 3)
    verts = centres[:, :, None] + grow[None, :, None, None] * ring[:, None]  # (T, R, S, 3)
    faces = []
    for r in range(rings - 1):
        for k in range(segments):
            p, q = r * segments + k, r * segments + (k + 1) % segments
            faces += [(p, q, q + segments), (p, q + segments, p + segments)]
    faces = np.asarray(faces, np.int64)
    # Outward orientation: flip when the first face's normal points at the axis.
    v0 = verts[0].reshape(-1, 3)
    f0 = faces[0]
    nrm = np.cross(v0[f0[1]] - v0[f0[0]], v0[f0[2]] - v0[f0[0]])
    if nrm @ (v0[f0[0]] - centres[0, 0]) < 0:
        faces = faces[:, ::-1].copy()
    return verts.reshape(len(joints21), -1, 3).astype(np.float32), faces


def render_frames(vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, frames_dir: Path, reporter,
                  image_size: tuple[int, int] = (WIDTH, HEIGHT), background_rgb: tuple = WALL_RGB) -> None:
    """Render vertices (T, V, 3) camera-frame metres with faces (F, 3) into frames_dir/0000.png ...
    by running ``blender_addon/demo_render.py`` in a subprocess (headless bpy). image_size [width, height]
    pixels and background_rgb (linear 0..1) default to the demo's (other views: benchmarks/hard_views.py)."""
    frames_dir.mkdir(parents=True, exist_ok=True)
    for old in frames_dir.glob("*.png"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="handcap-demo-") as tmp:
        scene = Path(tmp) / "scene.npz"
        np.savez(scene, vertices=vertices.astype(np.float32), faces=faces.astype(np.int64), K=K,
                 image_size=np.array(image_size), skin_rgb=np.array(SKIN_RGB),
                 background_rgb=np.array(background_rgb))
        env = dict(os.environ)
        env.setdefault("BLENDER_USER_RESOURCES", str(Path(tmp) / "blender"))  # leave the user's config alone
        cmd = [sys.executable, str(RENDER_SCRIPT), "--in", str(scene), "--out", str(frames_dir)]
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
            done = False
            for line in proc.stdout:
                if not line.startswith("{"):
                    continue
                event = json.loads(line)
                if event.get("event") == "progress":
                    reporter.progress(Progress("render", int(event["done"]), int(event["total"])))
                elif event.get("event") == "done":
                    done = True
            rc = proc.wait()
            if rc != 0 or not done:
                err.seek(0)
                tail = [ln for ln in err.read().decode("utf-8", "replace").splitlines() if ln.strip()][-3:]
                raise CaptureError(f"rendering the demo frames with headless Blender failed (exit {rc}): "
                                   f"{' | '.join(tail) or 'no message'}; check that the bpy module runs "
                                   f"(python -c 'import bpy')")


def write_video(frames_dir: Path, path: Path, fps: float = FPS, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Path:
    """Encode frames_dir/*.png (sorted, size [width, height] pixels) as an mp4 (OpenCV, mp4v)."""
    import cv2

    files = sorted(frames_dir.glob("*.png"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, tuple(int(x) for x in size))
    if not writer.isOpened():
        raise CaptureError(f"OpenCV cannot write {path.name} with the mp4v codec")
    try:
        for f in files:
            writer.write(cv2.imread(str(f), cv2.IMREAD_COLOR))
    finally:
        writer.release()
    return path


def score(clip, gt: np.ndarray) -> tuple[float, dict]:
    """Detection rate and per-method errors (mm) of a one-hand clip against gt (N, 21, 3) MediaPipe order.

    Adds to `core.eval.evaluate`'s rows: pa_mpjpe_nowrist_mm (Procrustes over the 20 non-wrist joints) and,
    for ours, cam_mpjpe_nowrist_mm (camera frame, no alignment: includes depth and placement).
    """
    from .eval import metrics
    from .eval.evaluate import evaluate

    report = evaluate(clip, gt, "right" if "right" in clip.sides else None)
    h = clip.hand(report.side)
    det = clip.detected[h] & clip.valid[h]
    g = gt[np.asarray(clip.frame_index)][det]
    rows = {name: dict(row) for name, row in report.rows.items() if name != "gt"}
    preds = {"mediapipe": clip.landmarks_world[h], "ours": clip.joints[h]}
    for name, pred in preds.items():
        if det.any():
            p = pred[det].astype(np.float64)
            rows[name]["pa_mpjpe_nowrist_mm"] = float(metrics.pa_mpjpe(p[:, 1:], g[:, 1:]).mean())
            if name == "ours":
                rows[name]["cam_mpjpe_nowrist_mm"] = float(metrics.mpjpe(p[:, 1:], g[:, 1:]).mean())
    return report.n_detected / max(report.n_frames, 1), rows


def _project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """points (..., 3) camera frame -> pixels (..., 2), OpenCV pixel centres."""
    return points[..., :2] / points[..., 2:3] * K[[0, 1], [0, 1]] + K[:2, 2]


def draw_overlay(frames_dir: Path, clip, gt: np.ndarray, K: np.ndarray, path: Path, picks: int = 4) -> Path:
    """A 2x2 sheet of rendered frames with the captured joints (green bones, ours), the detector's 2D
    landmarks (blue crosses) and the true joints (red dots), 3D points projected with K: the first frame, then the fist, spread and opposition peaks (KEYS)."""
    import cv2

    files = sorted(frames_dir.glob("*.png"))
    n = len(files)
    h = clip.hand("right") if "right" in clip.sides else 0
    want = ([0] + peak_frames(n))[:picks]
    tiles = []
    for t in want:
        img = cv2.imread(str(files[t]), cv2.IMREAD_COLOR)
        k = int(np.searchsorted(clip.frame_index, t))
        ok = k < clip.n_frames and clip.frame_index[k] == t and clip.valid[h, k]
        for p in _project(gt[t], K):
            cv2.circle(img, (int(round(p[0])), int(round(p[1]))), 3, (40, 40, 220), -1, cv2.LINE_AA)
        if ok:
            px = _project(clip.joints[h, k].astype(np.float64), K)
            for j in range(1, 21):
                a, b = px[j], px[MP_PARENTS[j]]
                cv2.line(img, (int(round(a[0])), int(round(a[1]))), (int(round(b[0])), int(round(b[1]))),
                         (60, 200, 60), 2, cv2.LINE_AA)
            for p in px:
                cv2.circle(img, (int(round(p[0])), int(round(p[1]))), 2, (20, 120, 20), -1, cv2.LINE_AA)
            for p in clip.landmarks_px[h, k]:
                cv2.drawMarker(img, (int(round(p[0])), int(round(p[1]))), (200, 110, 0), cv2.MARKER_CROSS, 7, 1)
        label = f"frame {t}: " + ("ours green, MediaPipe 2D blue, truth red" if ok else "no hand detected")
        cv2.putText(img, label, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (30, 30, 30), 1, cv2.LINE_AA)
        tiles.append(img)
    while len(tiles) < 4:
        tiles.append(np.full_like(tiles[0], 255))
    sheet = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:4])])
    cv2.imwrite(str(path), sheet)
    return path


def run_demo(out_dir: Path, frames: int = 48, reporter=None) -> DemoResult:
    """Run the whole demo into ``out_dir`` (created) with ``frames`` frames; print a summary; return
    the paths and figures. Progress goes to ``reporter`` (a `core.progress.Reporter`)."""
    from .capture import CaptureOptions, capture_to_file
    from .io.clip import load_clip
    from .hand.load import load_model
    from .hand.mano import ManoLayer
    from .progress import Reporter

    if frames < 8:
        raise CaptureError(f"--frames must be at least 8 for the demo motion; got {frames}")
    reporter = reporter or Reporter("quiet")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = {}
    t0 = time.perf_counter()

    # 1. Motion and forward kinematics.
    from .hand.gen import ensure_open_model

    ensure_open_model()  # generated into the user cache once (source checkout)
    model = load_model("right")
    layer = ManoLayer(model)
    motion = author_motion(layer, frames)
    with torch.no_grad():
        out = layer(motion.betas.expand(frames, -1), None, None, motion.transl, rotmats=motion.rotmats)
    joints21 = out.joints21.numpy().astype(np.float64)
    joints_cam = joints21[:, MP_FROM_MANO21]
    arm_v, arm_f = forearm_mesh(joints21, model.v_template, model.rest_joints())
    verts = np.concatenate([out.vertices.numpy(), arm_v], 1)
    faces = np.concatenate([model.faces, arm_f + model.n_verts], 0)
    gt_path = out_dir / "ground_truth.npz"
    np.savez(gt_path, joints_cam=joints_cam, K=K_DEMO, betas=motion.betas[0].numpy(),
             global_orient=motion.global_orient.numpy(), hand_pose=motion.hand_pose.numpy(),
             transl=motion.transl.numpy(), side=np.array("right"), model=np.array(model.name))
    seconds["motion"] = time.perf_counter() - t0

    # 2. Render (subprocess) and encode.
    t = time.perf_counter()
    frames_dir = out_dir / "frames"
    render_frames(verts, faces, K_DEMO, frames_dir, reporter)
    video = write_video(frames_dir, out_dir / "demo.mp4")
    seconds["render"] = time.perf_counter() - t

    # 3. Capture with the known intrinsics, then score.
    t = time.perf_counter()
    clip_path = capture_to_file(CaptureOptions(input=str(video), K=K_DEMO, hands=1), out_dir / "clip.npz", reporter)
    seconds["capture"] = time.perf_counter() - t
    clip = load_clip(clip_path)
    rate, rows = score(clip, joints_cam)
    overlay = draw_overlay(frames_dir, clip, joints_cam, K_DEMO, out_dir / "overlay.png")
    seconds["total"] = time.perf_counter() - t0
    report = out_dir / "report.json"
    report.write_text(json.dumps({"frames": frames, "detection_rate": rate, "rows": rows,
                                  "seconds": {k: round(v, 2) for k, v in seconds.items()}}, indent=1))
    result = DemoResult(out_dir=out_dir, frames_dir=frames_dir, video=video, ground_truth=gt_path, clip=clip_path,
                        overlay=overlay, report=report, n_frames=frames, detection_rate=rate, rows=rows,
                        seconds=seconds)
    print(summary(result))
    return result


def summary(r: DemoResult) -> str:
    """The demo's printed summary: detection, errors (mm) for MediaPipe and ours, output paths."""
    def f(row, key):
        v = row.get(key)
        return "    -" if v is None else f"{v:5.1f}"

    lines = [f"Hand Capture demo: {r.n_frames} frames of the open hand model rendered, captured and scored "
             f"in {r.seconds['total']:.1f} s",
             f"hand detected on {100 * r.detection_rate:.0f} % of frames",
             "errors in mm       PA-MPJPE  PA-MPJPE(no wrist)  wrist-relative  camera frame(no wrist)"]
    for name in ("mediapipe", "ours"):
        row = r.rows.get(name, {})
        lines.append(f"  {name:<15}  {f(row, 'pa_mpjpe_mm')}   {f(row, 'pa_mpjpe_nowrist_mm'):>17}"
                     f"   {f(row, 'wrist_rel_mm'):>13}   {f(row, 'cam_mpjpe_nowrist_mm'):>21}")
    lines.append("  (MediaPipe's wrist landmark is not the model's wrist joint, a convention difference:"
                 " compare the no-wrist columns)")
    lines += [f"frames   {r.frames_dir}", f"video    {r.video}", f"truth    {r.ground_truth}",
              f"clip     {r.clip}", f"overlay  {r.overlay}", f"report   {r.report}"]
    return "\n".join(lines)
