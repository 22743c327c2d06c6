"""Image alignment on hard views with truth, and on the shared videos (issue 15, item 5).

Renders of the project's own open hand (the demo's motion, renderer and forearm: `core.demo`) in views
where the keyed hand tends to leave the hand in the image, each a short clip with known joints, K and
depth; every clip is captured with the current pipeline (`core.capture`, tracking mode, known K) and scored
with `core.eval.reproj`:

* reprojection median / p95 in hand sizes (wrist -> middle MCP in the image) of the clip's joints
  projected with K, against the **true 2D** (K @ the true joints: independent of the capture) and against
  the **detector's own 2D** (``landmarks_px``; carries the detector's errors); also the detector's 2D against
  the true 2D (what the detector itself gets wrong);
* camera-frame 3D error, mm, mean per joint, no alignment;
* hand size error, %: 3D wrist -> middle MCP length of the result over the truth's, minus 1 (median of frames);
* fingers bent against the truth: (frame, finger) pairs where a hinge joint is flexed >= 10 deg one way in
  the truth and >= 10 deg the other way in the result (`core.eval.reproj.bent_against`).
The ``depth_change`` view moves the hand from 85 to 30 cm during the clip (`Hand.to`).

Two-hand views are captured twice, with one size for both hands (`CaptureOptions.shared_size`, the default)
and with each hand sized alone (the ablation): hand size, depth error and camera error of each.

Then the reprojection against the detector's 2D (the only reference there) on the three shared videos,
fixed frame ranges (`SHARED`), guessed intrinsics (the CLI default), up to two hands (a right and a left hand
seen together are captured again sized alone: each hand's 3D size and median depth); and `core.eval.evaluate`'s
image-alignment columns on the real dev crops (known K: against the detector's 2D and against the labels
projected with K; the labels' joint placement differs from the hand model's, knuckles ~12 mm nearer the wrist).

Every view: the demo's 48 frames of motion at 30 fps (1.6 s: open, fist, open, spread, thumb opposition, open),
320x240 unless stated, Workbench. The hand (and arm) is turned rigidly about its frame-0 middle MCP and placed there (camera
frame, metres): the motion's own slow wrist turn and drift stay on top. Outputs under ``--out``
(default out/hard_views): per view ``frames/``, ``view.mp4``, ``ground_truth.npz`` (joints_cam (T, H, 21, 3),
hand_order, K, depth = true joint depths (T, H, 21)), ``clip.npz``; ``sheet.png`` (a middle frame of each
view: truth red, ours green, detector blue).

``--focal-study`` runs only `focal_study`: whether one focal length per clip can be found from the hand alone.
Usage: python -m benchmarks.hard_views [--out out/hard_views] [--frames 48] [--fps 30] [--only top_down,...]
       [--no-videos] [--focal-study]   (the whole run: ~3-4 min on 2 busy cores)
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, need_data

FPS = 30.0
FRAMES = 48
SHARED = (("single_hand.mp4", 0, 150), ("two_hands.mp4", 0, 150), ("hand_object.mp4", 0, None))


def _rx(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def _ry(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def _f_eq(mm: float, width: int) -> float:
    """Focal length in pixels of a 35 mm-equivalent lens (36 mm across the image width)."""
    return mm / 36.0 * width


@dataclasses.dataclass(frozen=True)
class Hand:
    side: str
    R: np.ndarray  # (3, 3) turn applied to the demo's palm-to-camera motion (camera frame)
    at: tuple  # where the frame-0 middle MCP goes, metres, camera frame
    to: tuple | None = None  # where it goes by the last frame (a straight move, eased), or None: stays at ``at``


@dataclasses.dataclass(frozen=True)
class View:
    name: str
    what: str
    hands: tuple
    f: float
    size: tuple = (320, 240)
    background: tuple = (0.78, 0.78, 0.75)

    @property
    def K(self) -> np.ndarray:
        w, h = self.size
        return np.array([[self.f, 0.0, (w - 1) / 2], [0.0, self.f, (h - 1) / 2], [0.0, 0.0, 1.0]])


I3 = np.eye(3)
VIEWS = (
    View("front", "reference: palm to the camera, 45 cm, 59 deg (the demo's view, smaller)",
         (Hand("right", I3, (0.0, 0.0, 0.45)),), f=280.0),
    View("top_down", "back of the hand up on a table (brown background), camera above the wrist side "
         "looking down at 45 deg; fingers away, foreshortened to cos 45", (Hand("right", _rx(-45) @ _ry(180), (0.0, 0.0, 0.50)),),
         f=280.0, background=(0.30, 0.22, 0.15)),
    View("at_camera", "fingers pointing at the camera (70 deg out of the image plane), palm down, 50 cm",
         (Hand("right", _rx(70), (0.0, 0.0, 0.50)),), f=280.0),
    View("away", "fingers pointing away (60 deg out of the image plane), palm up, seen from the wrist side and above",
         (Hand("right", _rx(-60), (0.0, 0.06, 0.45)),), f=280.0),
    View("small_wide", "small hand in a wide frame: 480x270, 80 deg across, 70 cm, off-centre",
         (Hand("right", _ry(20), (0.25, 0.02, 0.70)),), f=286.0, size=(480, 270)),
    View("long_85mm", "long lens, 85 mm-eq (24 deg across), 90 cm, turned 25 deg",
         (Hand("right", _ry(25), (0.0, 0.0, 0.90)),), f=_f_eq(85, 320)),
    View("short_16mm", "short lens, 16 mm-eq (97 deg across), 22 cm, off-centre, fingers tilted 25 deg to the camera",
         (Hand("right", _rx(25), (-0.07, 0.02, 0.22)),), f=_f_eq(16, 320)),
    View("two_depths", "two hands at different depths: right at 40 cm, left at 75 cm",
         (Hand("right", I3, (-0.07, 0.0, 0.40)), Hand("left", _ry(-15), (0.10, -0.01, 0.75))), f=280.0),
    View("depth_change", "the hand comes from 85 cm to 30 cm (towards the camera), palm to the camera, 59 deg across",
         (Hand("right", I3, (0.0, 0.0, 0.85), to=(0.0, 0.0, 0.30)),), f=280.0),
)


def build(view: View, frames: int) -> dict:
    """Vertices (T, V, 3), faces (F, 3) and the truth of ``view``: joints (T, H, 21, 3) MediaPipe order."""
    import torch

    from core import demo
    from core.hand.load import load_model
    from core.hand.mano import ManoLayer
    from core.hand.model import MP_FROM_MANO21

    verts, faces, joints, n_v = [], [], [], 0
    for hand in view.hands:
        model = load_model(hand.side)
        layer = ManoLayer(model)
        motion = demo.author_motion(layer, frames)
        with torch.no_grad():
            out = layer(motion.betas.expand(frames, -1), None, None, motion.transl, rotmats=motion.rotmats)
        j21 = out.joints21.numpy().astype(np.float64)
        v = out.vertices.numpy().astype(np.float64)
        anchor = j21[0, 4].copy()  # MANO-21 4 = middle MCP
        at = np.repeat(np.asarray(hand.at, np.float64)[None], frames, 0)
        if hand.to is not None:  # a move (towards or away from the camera), eased in and out
            s = np.linspace(0.0, 1.0, frames)
            at = at + (3 * s**2 - 2 * s**3)[:, None] * (np.asarray(hand.to) - np.asarray(hand.at))
        move = lambda p: (p - anchor) @ hand.R.T + at[:, None]  # noqa: E731
        j21, v = move(j21), move(v)
        arm_v, arm_f = demo.forearm_mesh(j21, model.v_template, model.rest_joints())
        hv = np.concatenate([v, arm_v], 1)
        hf = np.concatenate([model.faces, arm_f + model.n_verts], 0)
        verts.append(hv)
        faces.append(hf + n_v)
        n_v += hv.shape[1]
        joints.append(j21[:, MP_FROM_MANO21])
    return {"vertices": np.concatenate(verts, 1).astype(np.float32), "faces": np.concatenate(faces, 0),
            "joints": np.stack(joints, 1)}


DETECTOR = "auto"  # the captures' detector backend (`--detector`)


def render_and_capture(view: View, out: Path, frames: int, fps: float = FPS):
    """Render ``view`` into out/<name>/, capture it with the known K; returns (truth joints, clip, seconds, and
    for a two-hand view the clip captured with each hand sized alone (`CaptureOptions.shared_size` off: the
    ablation of the shared size) or None)."""
    from core import demo
    from core.capture import CaptureOptions, capture_to_file
    from core.io.clip import load_clip
    from core.progress import Reporter

    d = out / view.name
    d.mkdir(parents=True, exist_ok=True)
    scene = build(view, frames)
    K = view.K
    px = scene["joints"][..., :2] / scene["joints"][..., 2:3] * K[0, 0] + K[:2, 2]
    w, h = view.size
    inside = float(((px >= 0) & (px <= [w - 1, h - 1])).all(-1).mean())
    np.savez(d / "ground_truth.npz", joints_cam=scene["joints"], K=K, depth=scene["joints"][..., 2],
             hand_order=np.array([hd.side for hd in view.hands]))
    t0 = time.perf_counter()
    rep = Reporter("quiet")
    demo.render_frames(scene["vertices"], scene["faces"], K, d / "frames", rep, image_size=view.size,
                       background_rgb=view.background)
    video = demo.write_video(d / "frames", d / "view.mp4", fps=fps, size=view.size)
    t1 = time.perf_counter()
    clip_path = capture_to_file(CaptureOptions(input=str(video), K=K, hands=len(view.hands), detector=DETECTOR),
                                d / "clip.npz", rep)
    t2 = time.perf_counter()
    alone = None
    if len(view.hands) == 2:
        alone = load_clip(capture_to_file(CaptureOptions(input=str(video), K=K, hands=2, shared_size=False,
                                                         detector=DETECTOR),
                                          d / "clip_separate.npz", rep))
    return scene["joints"], load_clip(clip_path), {"render": t1 - t0, "capture": t2 - t1, "inside": inside}, alone


def score_view(view: View, truth: np.ndarray, clip) -> list[dict]:
    """One row per hand of ``view``: the figures of the module docstring."""
    from core.eval import reproj

    rows = []
    for k, hand in enumerate(view.hands):
        gt_all = truth[:, k]
        K = view.K
        true_px_all = reproj.project(gt_all, K)
        row = {"view": view.name, "hand": hand.side, "frames": len(truth),
               "size_px": float(np.median(reproj.hand_size_px(true_px_all)))}
        if hand.side not in clip.sides:
            rows.append(row | {"detected": 0})
            continue
        h = clip.hand(hand.side)
        fi = np.asarray(clip.frame_index)
        det = clip.detected[h] & clip.valid[h]
        row["detected"] = int(det.sum())
        if not det.any():
            rows.append(row)
            continue
        ours = clip.joints[h][det].astype(np.float64)
        gt = gt_all[fi[det]]
        true_px = true_px_all[fi[det]]
        kp = clip.landmarks_px[h][det].astype(np.float64)
        Kc = clip.K[det]
        r_gt = reproj.reprojection(ours, Kc, true_px)
        r_det = reproj.reprojection(ours, Kc, kp)
        d_vs_gt = np.linalg.norm(kp - true_px, axis=-1) / reproj.hand_size_px(true_px)[:, None]
        bent = reproj.bent_against(ours, gt, hand.side)
        row.update(size_mm=1000 * float(np.median(reproj.hand_size_3d(ours))),
                   depth_err_mm=1000 * float(np.median(ours[:, 9, 2] - gt[:, 9, 2])), gt_med=r_gt.median, gt_p95=r_gt.p95, det_med=r_det.median, det_p95=r_det.p95,
                   detector_med=float(np.median(d_vs_gt)), detector_p95=float(np.percentile(d_vs_gt, 95)),
                   cam_mm=float(reproj.camera_error_mm(ours, gt).mean()),
                   size_pct=100.0 * float(np.median(reproj.hand_size_error(ours, gt))),
                   bent=int(bent.sum()), bent_frames=int(bent.any(1).sum()))
        rows.append(row)
    return rows


def shared_videos(out: Path) -> list[dict]:
    """Reprojection against the detector's 2D on the shared videos (`SHARED` ranges, guessed K, up to 2 hands);
    a clip with a right and a left hand is captured again with each hand sized alone (``sized`` "alone": the
    ablation of `CaptureOptions.shared_size`), and each hand's 3D size and median depth are reported."""
    from core.capture import CaptureOptions, capture_to_file
    from core.eval import reproj
    from core.io.clip import load_clip
    from core.progress import Reporter

    rows = []
    for name, start, end in SHARED:
        src = need_data(f"video/{name}")
        for shared in (True, False):
            t0 = time.perf_counter()
            path = capture_to_file(CaptureOptions(input=str(src), start=start, end=end, hands=2, shared_size=shared,
                                                         detector=DETECTOR),
                                   out / f"{Path(name).stem}{'' if shared else '_separate'}.npz", Reporter("quiet"))
            sec = time.perf_counter() - t0
            clip = load_clip(path)
            for h, side in enumerate(clip.sides):
                det = clip.detected[h] & clip.valid[h]
                if not det.any():
                    continue
                j = clip.joints[h][det].astype(np.float64)
                r = reproj.reprojection(j, clip.K[det], clip.landmarks_px[h][det].astype(np.float64))
                rows.append({"video": name, "range": f"{start}-{(end or clip.frame_index[-1] + 1) - 1}", "hand": side,
                             "frames": int(clip.n_frames), "detected": int(det.sum()),
                             "size_px": float(np.median(r.hand_size)), "det_med": r.median, "det_p95": r.p95,
                             "size_mm": 1000 * float(np.median(reproj.hand_size_3d(j))),
                             "depth_m": float(np.median(j[:, 9, 2])),
                             "sized": "shared" if clip.shared_size else ("alone" if shared else "alone (ablation)"),
                             "seconds": sec})
            if not clip.shared_size:
                break  # one hand, or not one person's two: the same capture either way
    return rows


def dev_crops(out: Path) -> dict:
    """The real dev crops (292 images, static mode, one hand, known per-crop K): `core.eval.evaluate`'s
    image-alignment columns, against the detector's 2D and against the labels projected with K."""
    from core.capture import CaptureOptions, capture_to_file, load_intrinsics
    from core.eval.evaluate import evaluate, load_gt
    from core.io.clip import load_clip
    from core.progress import Reporter

    d = need_data("real_world_testset_dev")
    t0 = time.perf_counter()
    path = capture_to_file(CaptureOptions(input=str(d / "images"), static=True, hands=1, detector=DETECTOR,
                                          K=load_intrinsics(f"{d / 'labels.npz'}:K_crop")),
                           out / "dev_crops.npz", Reporter("quiet"))
    sec = time.perf_counter() - t0
    rep = evaluate(load_clip(path), load_gt(d / "labels.npz"))
    return rep.rows["ours"] | {"detected": rep.n_detected, "frames": rep.n_frames, "seconds": sec}


def sheet(views, out: Path, frames: int) -> Path:
    """A contact sheet: the middle frame of each view with the true joints (red), ours (green) and the
    detector's 2D (blue), each tile scaled to 320 px wide."""
    import cv2

    from core.eval import reproj
    from core.io.clip import load_clip

    t = frames // 2
    tiles = []
    for v in views:
        d = out / v.name
        img = cv2.imread(str(d / "frames" / f"{t:04d}.png"))
        if img is None:
            continue
        truth = np.load(d / "ground_truth.npz")["joints_cam"]
        clip = load_clip(d / "clip.npz")
        for k in range(truth.shape[1]):
            for p in reproj.project(truth[t, k], v.K):
                cv2.circle(img, (int(round(p[0])), int(round(p[1]))), 2, (40, 40, 220), -1)
        k = int(np.searchsorted(clip.frame_index, t))
        for h in range(clip.n_hands):
            if k < clip.n_frames and clip.detected[h, k]:
                for p in reproj.project(clip.joints[h, k].astype(np.float64), clip.K[k]):
                    cv2.circle(img, (int(round(p[0])), int(round(p[1]))), 2, (20, 180, 20), -1)
                for p in clip.landmarks_px[h, k]:
                    cv2.drawMarker(img, (int(round(p[0])), int(round(p[1]))), (200, 110, 0), cv2.MARKER_CROSS, 5, 1)
        img = cv2.resize(img, (320, int(round(320 * img.shape[0] / img.shape[1]))))
        img = cv2.copyMakeBorder(img, 0, 270 - img.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=(255, 255, 255))
        cv2.putText(img, v.name, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(img)
    while len(tiles) % 4:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.hstack(tiles[i:i + 4]) for i in range(0, len(tiles), 4)]
    path = out / "sheet.png"
    cv2.imwrite(str(path), np.vstack(rows))
    return path


def _detect(video: Path):
    """The capture's detection and tracking of ``video`` (tracking mode, up to two hands): its `TrackResult`."""
    from core.detect import create_detector
    from core.io.video import open_video
    from core.solve.track import Tracker

    src = open_video(str(video))
    tracker = Tracker()
    with create_detector("mediapipe", static=False, max_hands=2, min_detection_confidence=0.5) as det:
        for idx, frame in src:
            tracker.update(det.detect(frame, idx / src.fps), idx)
    return tracker.finish()


def focal_study(out: Path, frames: int) -> list[str]:
    """Can one focal length per clip be found from the hand alone (a self-calibration)? On the ``depth_change``
    view (85 -> 30 cm, true 59.5 deg across, the default 69 deg is a focal 17 % too short), the same detections
    fitted with a focal f from 20 to 120 deg across; three criteria a self-calibration could minimise:

    * size: |d log(size) / d log(depth)| of the per-frame 3D target (the fit's step 1): the hand's size constant
      across the depth change;
    * rigid: median reprojection (hand sizes) of the detector's metric 3D landmarks placed rigidly per frame
      (rotation and translation, least squares) on its 2D: perspective within the hand;
    * fit: median reprojection of the whole fit (no temporal clean-up) on the detector's 2D.

    The same rigid criterion with the true 3D joints on the true 2D shows how large the signal is at best.
    Returns the report's lines."""
    import torch
    from scipy.optimize import least_squares
    from scipy.spatial.transform import Rotation

    from core import demo
    from core.eval import reproj
    from core.hand.load import load_model
    from core.hand.mano import ManoLayer
    from core.hand.model import MANO21_FROM_MP
    from core.net import load_refiner
    from core.progress import Reporter
    from core.solve import camera, pose, shape
    from core.solve.fit import FitConfig

    view = next(v for v in VIEWS if v.name == "depth_change")
    d = out / "focal_study"
    scene = build(view, frames)
    demo.render_frames(scene["vertices"], scene["faces"], view.K, d / "frames", Reporter("quiet"),
                       image_size=view.size, background_rgb=view.background)
    tr = _detect(demo.write_video(d / "frames", d / "view.mp4", fps=FPS, size=view.size))["right"]
    det = tr.detected
    w, h = view.size
    truth = scene["joints"][:, 0]
    true_px = reproj.project(truth, view.K)
    px = tr.landmarks_px - 0.5
    layer, refiner = ManoLayer(load_model("right")), load_refiner()

    def rigid(shape3d, uv, f):  # per frame: median |residual| / hand size of the best rigid placement
        K = camera.intrinsics(w, h, fx=f)
        res = []
        for x3, u in zip(shape3d, uv):
            c = x3 - x3.mean(0)
            size = np.linalg.norm(u[9] - u[0])
            z0 = f * np.linalg.norm(c[9] - c[0]) / size
            m = (u.mean(0) - K[:2, 2]) / f * z0

            def r(p, c=c, u=u, size=size):
                x = c @ Rotation.from_rotvec(p[:3]).as_matrix().T + p[3:]
                return ((x[:, :2] / x[:, 2:] * f + K[:2, 2] - u) / size).ravel()
            res.append(np.median(np.abs(least_squares(r, np.r_[0, 0, 0, m, z0], method="lm").fun)))
        return float(np.mean(res))

    f_true = view.K[0, 0]
    f_default = camera.intrinsics(w, h)[0, 0]
    fovs = np.arange(20.0, 121.0, 10.0)
    focals = 0.5 * w / np.tan(np.radians(fovs) / 2)
    rows, crit = [], {"size": [], "rigid": [], "fit": []}
    for fov, f in zip(fovs, focals):
        K = np.repeat(camera.intrinsics(w, h, fx=f)[None], len(det), 0)
        w_mp, _, target, _, _ = pose._targets(layer, px, tr.world, det, K, True, tr.landmarks_z, w, FitConfig(), refiner)
        lengths = shape.pair_lengths(target[:, MANO21_FROM_MP]).numpy()
        size = (lengths * shape.PAIR_WEIGHTS).sum(1) / shape.PAIR_WEIGHTS.sum()
        crit["size"].append(abs(np.polyfit(np.log(target[:, 9, 2].numpy()), np.log(size), 1)[0]))
        crit["rigid"].append(rigid(tr.world[det].astype(np.float64), px[det], f))
        with torch.no_grad():
            fit = pose.fit_hand(layer, px, tr.world, det, K, landmarks_z=tr.landmarks_z, image_width=w, refiner=refiner)
        crit["fit"].append(reproj.reprojection(fit.joints[det].astype(np.float64), K[det], px[det]).median)
        rows.append((fov, f, rigid(truth[det], true_px[det], f)))
    lines = ["| fov deg | focal px | size criterion | rigid criterion | fit criterion | rigid, true 3D on true 2D |",
             "|---|---|---|---|---|---|"]
    for k, (fov, f, ideal) in enumerate(rows):
        lines.append(f"| {fov:.0f} | {f:.0f} | {crit['size'][k]:.3f} | {crit['rigid'][k]:.4f} | {crit['fit'][k]:.4f} | "
                     f"{ideal:.4f} |")
    picks = {name: focals[int(np.argmin(v))] for name, v in crit.items()}

    def score(f):  # the whole capture's fit (video: clean-up and alignment) with focal f
        K = np.repeat(camera.intrinsics(w, h, fx=f)[None], len(det), 0)
        fit = pose.fit_hand(layer, px, tr.world, det, K, landmarks_z=tr.landmarks_z, image_width=w, fps=FPS,
                            refiner=refiner)
        v = fit.valid & det
        j = fit.joints[v].astype(np.float64)
        return reproj.camera_error_mm(j, truth[v]).mean(), 1000 * np.median(j[:, 9, 2] - truth[v][:, 9, 2])

    lines += ["", "| focal | px | focal error | camera mm | depth error mm (median) |", "|---|---|---|---|---|"]
    for name, f in [("true K", f_true), ("default 69 deg", f_default)] + [(f"picked by {k}", v) for k, v in picks.items()]:
        cam, dz = score(f)
        lines.append(f"| {name} | {f:.0f} | {100 * (f / f_true - 1):+.1f} % | {cam:.1f} | {dz:+.0f} |")
    return lines


def _f(v, spec=".3f"):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "out" / "hard_views"))
    ap.add_argument("--frames", type=int, default=FRAMES)
    ap.add_argument("--fps", type=float, default=FPS, help="frame rate written into the clips' mp4")
    ap.add_argument("--only", default="", help="comma-separated view names (default: all)")
    ap.add_argument("--no-videos", action="store_true", help="skip the shared videos")
    ap.add_argument("--detector", default="auto", help="the captures' --detector (default auto)")
    ap.add_argument("--focal-study", action="store_true",
                    help="only the focal self-calibration study on the depth_change view (`focal_study`)")
    args = ap.parse_args(argv)
    global DETECTOR
    DETECTOR = args.detector
    from core.hand.gen import ensure_open_model

    ensure_open_model()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.focal_study:
        t0 = time.perf_counter()
        print("\n".join(focal_study(out, args.frames)))
        print(f"total {time.perf_counter() - t0:.0f} s")
        return
    views = [v for v in VIEWS if not args.only or v.name in args.only.split(",")]
    t_all = time.perf_counter()
    rows, secs = [], {}
    ablation = []
    for v in views:
        truth, clip, s, alone = render_and_capture(v, out, args.frames, args.fps)
        secs[v.name] = s
        rows += score_view(v, truth, clip)
        if alone is not None:
            ablation += [r | {"sized": "shared" if clip.shared_size else "alone"} for r in score_view(v, truth, clip)]
            ablation += [r | {"sized": "alone (ablation)"} for r in score_view(v, truth, alone)]
    print(f"Hard views: {args.frames} frames each at {args.fps:g} fps, known K, tracking mode; reprojection in hand sizes "
          "(median / p95 of every joint of every detected frame); vs truth = K @ true joints; vs detector = "
          "its landmarks_px; detector = its landmarks_px vs the true 2D")
    head = ("| view | hand | detected | hand size px | vs truth 2D med / p95 | vs detector 2D med / p95 | "
            "detector vs truth med / p95 | camera mm | hand size % | bent fingers (frames) |")
    print(head)
    print("|---" * 10 + "|")
    for r in rows:
        print(f"| {r['view']} | {r['hand']} | {r.get('detected', 0)} / {r['frames']} | {r['size_px']:.0f} | "
              f"{_f(r.get('gt_med'))} / {_f(r.get('gt_p95'))} | {_f(r.get('det_med'))} / {_f(r.get('det_p95'))} | "
              f"{_f(r.get('detector_med'))} / {_f(r.get('detector_p95'))} | {_f(r.get('cam_mm'), '.1f')} | "
              f"{_f(r.get('size_pct'), '+.1f')} | {r.get('bent', '-')} ({r.get('bent_frames', '-')}) |")
    print("seconds per view (render, capture): " + ", ".join(
        f"{k} {s['render']:.1f}+{s['capture']:.1f}" for k, s in secs.items()))
    low = [k for k, s in secs.items() if s["inside"] < 1.0]
    if low:
        print("true joints outside the image on some frames: " + ", ".join(
            f"{k} ({100 * (1 - secs[k]['inside']):.1f} % of joints)" for k in low))
    if ablation:
        print("\nOne size per person (two-hand views; `CaptureOptions.shared_size` on vs off, same video): 3D hand "
              "size (wrist -> middle MCP, median), its error, the middle MCP's depth error (median), camera mm")
        print("| view | hand | sized | hand size mm | hand size % | depth error mm | camera mm | vs truth 2D med / p95 |")
        print("|---" * 8 + "|")
        for r in ablation:
            print(f"| {r['view']} | {r['hand']} | {r['sized']} | {_f(r.get('size_mm'), '.1f')} | "
                  f"{_f(r.get('size_pct'), '+.1f')} | {_f(r.get('depth_err_mm'), '+.0f')} | {_f(r.get('cam_mm'), '.1f')} | "
                  f"{_f(r.get('gt_med'))} / {_f(r.get('gt_p95'))} |")
    print(f"sheet: {sheet(views, out, args.frames)}")
    if not args.no_videos:
        vrows = shared_videos(out)
        print("\nShared videos: reprojection vs the detector's own 2D (no truth), guessed K (default field of view)")
        print("| video | frames | hand | sized | detected | hand size px | vs detector 2D med / p95 | hand size mm | depth m |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in vrows:
            print(f"| {r['video']} | {r['range']} | {r['hand']} | {r['sized']} | {r['detected']} / {r['frames']} | "
                  f"{r['size_px']:.0f} | {_f(r['det_med'])} / {_f(r['det_p95'])} | {r['size_mm']:.1f} | {r['depth_m']:.3f} |")
        print("seconds per video (capture): " + ", ".join(f"{r['video']} ({r['sized']}) {r['seconds']:.1f}" for r in vrows
                                                         if r['hand'] == 'right'))
        r = dev_crops(out)
        print("\nReal dev crops (real_world_testset_dev, 292 crops 256x256, static mode, known K; python -m core eval's "
              "columns): detected {} / {}; reprojection vs detector 2D {} / {}, vs labels projected with K {} / {} "
              "(med / p95, hand sizes); camera {:.1f} mm; hand size {:+.1f} %; capture {:.1f} s".format(
                  r["detected"], r["frames"], _f(r.get("reproj_med")), _f(r.get("reproj_p95")),
                  _f(r.get("reproj_gt_med")), _f(r.get("reproj_gt_p95")), r["camera_mm"], r["size_err_pct"],
                  r["seconds"]))
    print(f"total {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
