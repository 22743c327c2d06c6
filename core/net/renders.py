"""The detector's systematic error on the project's own hand, measured on renders (for `core.net.corpus`).

    python -m core.net.renders [--out core/net/data/detector_bias.npz] [--n 400] [--seed 0] [--frames DIR]

MediaPipe's joints are not the hand model's joints: it places knuckles, the thumb and fingertips by
its own convention. The paper's VAE refinement is meant to close that gap, so the refiner must see it in
training. Where the truth is known exactly, on renders of our own hand, the gap can be measured:
1. ``n`` right hands: corpus poses (`corpus.sample_angles`, taxonomy and captured key poses), shapes
   betas ~ N(0, 0.7^2), palm towards the camera (`core.demo.palm_to_camera`) turned by up to
   +-60 deg about the vertical, +-40 about the view axis, +-35 about the horizontal, a quarter of them
   back first; the wrist near `core.demo.WRIST_CAM`; a forearm; rendered headless with Workbench
   (`core.demo.render_frames`, 640 x 480, `core.demo.K_DEMO`);
2. MediaPipe in static mode on every frame;
3. per detected frame, the true joints similarity-fitted onto MediaPipe's world landmarks (the wrist left
   out, as the training targets are), the residual turned into the model frame (the frame of the
   corpus's clean joints) and averaged: ``bias`` (21, 3) metres, MANO-21 order. The wrist's entry is 0:
   the wrist convention is drawn separately (`corpus.NoiseConfig.wrist_shift_mm`).
Only as good as the model's anatomy and Workbench shading: the gain is checked on the real crops
(`python -m benchmarks.dev_eval`). The file records the detector version, counts and the seed.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

DETECTOR_BIAS = Path(__file__).resolve().parent / "data" / "detector_bias.npz"
# The 2D landmark convention (`measure_2d`): read by the capture's fit (`core.solve.fit.RefineConfig.offsets`).
from .landmarks import LANDMARK_OFFSETS, load_offsets  # noqa: E402,F401  (the file and its loader live apart)


def render_set(n: int, seed: int) -> dict:
    """The ``n`` posed right hands of step 1: rotmats (n, 16, 3, 3), betas (n, NB), transl (n, 3), joints
    (n, 21, 3) MANO-21 camera frame, and the meshes to render: vertices (n, V', 3), faces (F', 3)."""
    from .. import demo
    from ..hand.load import load_model
    from ..hand.mano import ManoLayer
    from ..rot import aa_to_rotmat
    from . import corpus
    from .captured import CAPTURED_POSES, load_captured

    from ..hand.gen import ensure_open_model

    ensure_open_model()  # generated into the user cache once (source checkout)
    model = load_model("right")
    layer = ManoLayer(model)
    g = torch.Generator().manual_seed(seed)
    captured = load_captured(CAPTURED_POSES)[0] if CAPTURED_POSES.is_file() else None
    ang = corpus.sample_angles(n, g, captured=captured)
    betas = torch.randn(n, layer.n_betas, generator=g) * 0.7
    rot = corpus.angles_to_rotmats(layer, torch.deg2rad(ang).float(), betas)

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=g)

    yaw, roll, tilt = (torch.deg2rad(uniform(-a, a)) for a in (60.0, 40.0, 35.0))
    yaw = yaw + (torch.rand(n, generator=g) < 0.25) * math.pi  # back of the hand first
    e = torch.eye(3)
    turn = aa_to_rotmat(e[1] * yaw[:, None]) @ aa_to_rotmat(e[2] * roll[:, None]) @ aa_to_rotmat(e[0] * tilt[:, None])
    rot[:, 0] = turn @ demo.palm_to_camera(layer)
    wrist = torch.as_tensor(demo.WRIST_CAM, dtype=torch.float32) + torch.stack(
        [uniform(-0.05, 0.05), uniform(-0.03, 0.05), uniform(-0.05, 0.08)], -1)
    transl = wrist - layer.rest_joints(betas)[:, 0]
    with torch.no_grad():
        out = layer(betas, None, None, transl, rotmats=rot)
    joints = out.joints21.numpy().astype(np.float64)
    arm_v, arm_f = demo.forearm_mesh(joints, model.v_template, model.rest_joints())
    return {"rotmats": rot, "betas": betas, "transl": transl, "joints": joints,
            "vertices": np.concatenate([out.vertices.numpy(), arm_v], 1),
            "faces": np.concatenate([model.faces, arm_f + model.n_verts], 0)}


def model_frame_residuals(joints_cam: np.ndarray, world: np.ndarray, global_rot: np.ndarray) -> np.ndarray:
    """Detector residuals (N, 21, 3) metres in the model frame, MANO-21 order.

    joints_cam (N, 21, 3): true joints, MANO-21, camera frame; world (N, 21, 3): the detector's world
    landmarks, MediaPipe order; global_rot (N, 3, 3): the true global orient. The truth is
    similarity-fitted onto the landmarks (wrist weight 0); residual = landmark - fitted truth, turned
    back by (fit rotation @ global orient) and divided by the fit's scale.
    """
    from ..hand.model import MANO21_FROM_MP
    from ..rot import similarity_fit

    gt = torch.as_tensor(joints_cam, dtype=torch.float64)
    det = torch.as_tensor(np.asarray(world)[:, MANO21_FROM_MP], dtype=torch.float64)
    w = torch.ones(21, dtype=torch.float64)
    w[0] = 0.0
    r, scale, cs, cd = similarity_fit(gt, det, w)
    fitted = scale[:, None, None] * (gt - cs) @ r.transpose(1, 2) + cd
    to_model = r @ torch.as_tensor(global_rot, dtype=torch.float64)  # model -> detector frame
    res = torch.einsum("nji,nkj->nki", to_model, det - fitted) / scale[:, None, None]
    return res.numpy()


def measure(n: int = 400, seed: int = 0, frames_dir: Path | None = None, reporter=None) -> dict:
    """Steps 1-3: the arrays of a detector-bias file."""
    import cv2
    import mediapipe

    from .. import demo
    from ..detect import create_detector
    from ..progress import Reporter

    reporter = reporter or Reporter("quiet")
    data = render_set(n, seed)
    with tempfile.TemporaryDirectory(prefix="handcap-renders-") as tmp:
        frames = Path(frames_dir) if frames_dir else Path(tmp) / "frames"
        demo.render_frames(data["vertices"], data["faces"], demo.K_DEMO, frames, reporter)
        world = np.zeros((n, 21, 3))
        found = np.zeros(n, bool)
        with create_detector("mediapipe", static=True, max_hands=1) as det:
            for i, path in enumerate(sorted(frames.glob("*.png"))):
                hands = det.detect(cv2.imread(str(path)), 0.0)
                if hands:
                    found[i], world[i] = True, hands[0].world
    if found.sum() < n // 4:
        raise RuntimeError(f"MediaPipe found the hand on only {found.sum()} of {n} renders")
    res = model_frame_residuals(data["joints"][found], world[found], data["rotmats"][found, 0].numpy())
    bias = res.mean(0)
    bias[0] = 0.0
    rms = float(np.sqrt((np.linalg.norm(res, axis=-1) ** 2).mean()))
    return {"bias": bias.astype(np.float32), "n_rendered": np.array(n), "n_detected": np.array(int(found.sum())),
            "seed": np.array(seed), "detector": np.array(f"mediapipe {mediapipe.__version__}"),
            "residual_rms_mm": np.array(rms * 1000.0)}


def bone_of(k: int) -> int:
    """MANO joint (0..15) whose global rotation carries the landmark of MANO-21 joint ``k``: the bone that
    ends at it (its parent), the root for the wrist."""
    from ..hand.model import MANO21_PARENTS

    return 0 if k == 0 else int(MANO21_PARENTS[k])


def solve_offsets(joints: np.ndarray, bone_rot: np.ndarray, px: np.ndarray, K: np.ndarray,
                  facing: np.ndarray | None = None, iters: int = 10,
                  huber_px: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Per joint, the 3D offset in its bone's frame such that the detector's 2D landmark is the projection
    of ``joint + R_bone @ (o + facing * d)`` (robust least squares over the frames).

    joints (N, 21, 3) true joints, camera frame, metres; bone_rot (N, 21, 3, 3) the global rotation of each
    joint's bone (`bone_of`); px (N, 21, 2) the detector's 2D (K's pixel convention); K (3, 3); facing (N,)
    in [-1, 1] (`core.solve.fit.palm_facing`: +1 palm to the camera, -1 its back) or None (no ``d``).
    Returns offsets (21, 3) ``o``, or (21, 6) ``o, d`` with ``facing``, metres, and the residual rms per
    joint (21,) pixels after the offsets. IRLS with Huber weights on the linearised projection."""
    n = len(joints)
    f = np.array([K[0, 0], K[1, 1]])
    c = K[:2, 2]
    npar = 3 if facing is None else 6
    offs = np.zeros((21, npar))
    rms = np.zeros(21)

    def points(k, o):
        r = bone_rot[:, k]
        off = o[:3][None] if facing is None else o[:3][None] + facing[:, None] * o[3:][None]
        return joints[:, k] + (r @ off[..., None])[..., 0]

    for k in range(21):
        o = np.zeros(npar)
        for _ in range(iters):
            p = points(k, o)
            z = p[:, 2:3]
            uv = p[:, :2] / z * f + c
            r = (px[:, k] - uv).reshape(-1)  # (2N,)
            jp = np.zeros((n, 2, 3))
            jp[:, 0, 0] = f[0] / z[:, 0]
            jp[:, 1, 1] = f[1] / z[:, 0]
            jp[:, :, 2] = -(p[:, :2] * f) / z ** 2
            a = jp @ bone_rot[:, k]  # (N, 2, 3) d uv / d o
            if facing is not None:
                a = np.concatenate([a, a * facing[:, None, None]], -1)
            a = a.reshape(-1, npar)
            e = np.linalg.norm(r.reshape(n, 2), axis=1)
            w = np.repeat(np.where(e <= huber_px, 1.0, huber_px / np.maximum(e, 1e-9)), 2)
            do = np.linalg.lstsq(a * w[:, None] ** 0.5, r * w ** 0.5, rcond=None)[0]
            o = o + do
            if np.linalg.norm(do) < 1e-7:
                break
        offs[k] = o
        p = points(k, o)
        rms[k] = np.sqrt((((p[:, :2] / p[:, 2:3] * f + c) - px[:, k]) ** 2).sum(-1).mean())
    return offs, rms


def measure_2d(n: int = 400, seed: int = 0, reporter=None) -> dict:
    """The detector's 2D landmark convention on renders of our hand: `render_set` (its own poses and views,
    none of the evaluation views), MediaPipe in static mode, and per joint the offsets of `solve_offsets`
    with the palm's facing (MANO-21 order, metres, each in its bone's frame; (21, 6): ``o`` and ``d``).
    The arrays of a landmark-offsets file."""
    import cv2
    import mediapipe

    from .. import demo
    from ..detect import create_detector
    from ..hand.load import load_model
    from ..hand.mano import ManoLayer
    from ..hand.model import MANO21_FROM_MP
    from ..progress import Reporter
    from ..solve.fit import fk_rigid, palm_facing

    reporter = reporter or Reporter("quiet")
    data = render_set(n, seed)
    px = np.zeros((n, 21, 2))
    found = np.zeros(n, bool)
    with tempfile.TemporaryDirectory(prefix="handcap-renders-") as tmp:
        frames = Path(tmp) / "frames"
        demo.render_frames(data["vertices"], data["faces"], demo.K_DEMO, frames, reporter)
        with create_detector("mediapipe", static=True, max_hands=1) as det:
            for i, path in enumerate(sorted(frames.glob("*.png"))):
                hands = det.detect(cv2.imread(str(path)), 0.0)
                if hands:
                    found[i], px[i] = True, hands[0].landmarks_px - 0.5  # corner -> OpenCV pixel centres
    if found.sum() < n // 4:
        raise RuntimeError(f"MediaPipe found the hand on only {found.sum()} of {n} renders")
    layer = ManoLayer(load_model("right"))
    with torch.no_grad():
        rest21 = torch.cat([layer.rest_joints(data["betas"]), layer.rest_tips(data["betas"])], 1)
        _, g = fk_rigid(data["rotmats"], rest21, data["transl"])
    g = g.numpy().astype(np.float64)
    bone_rot = np.stack([g[:, bone_of(k)] for k in range(21)], 1)  # (n, 21, 3, 3)
    kp = px[:, MANO21_FROM_MP]
    before = np.sqrt(((demo_project(data["joints"], demo.K_DEMO) - kp)[found] ** 2).sum(-1).mean(0))
    facing = palm_facing(torch.as_tensor(data["joints"]), "right").numpy()
    offs, rms = solve_offsets(data["joints"][found], bone_rot[found], kp[found], np.asarray(demo.K_DEMO, np.float64),
                              facing[found])
    return {"offsets": offs.astype(np.float32), "rms_before_px": before.astype(np.float32),
            "rms_after_px": rms.astype(np.float32), "n_rendered": np.array(n),
            "n_detected": np.array(int(found.sum())), "seed": np.array(seed),
            "detector": np.array(f"mediapipe {mediapipe.__version__}")}


def demo_project(points: np.ndarray, K) -> np.ndarray:
    """Pinhole projection (..., 3) -> (..., 2) pixels."""
    K = np.asarray(K, np.float64)
    return points[..., :2] / points[..., 2:3] * np.array([K[0, 0], K[1, 1]]) + K[:2, 2]


def load_bias(path: Path = DETECTOR_BIAS) -> tuple[np.ndarray, str]:
    """(bias (21, 3) float64 metres, MANO-21, model frame; a one-line description) of a detector-bias file."""
    with np.load(path, allow_pickle=False) as z:
        bias = np.asarray(z["bias"], np.float64)
        desc = (f"detector bias from {int(z['n_detected'])} of {int(z['n_rendered'])} renders "
                f"({z['detector']}, seed {int(z['seed'])})")
    return bias, desc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.net.renders", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DETECTOR_BIAS)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=Path, help="keep the rendered frames here")
    ap.add_argument("--landmarks-2d", action="store_true",
                    help=f"measure the 2D landmark offsets instead (`measure_2d`; default --out {LANDMARK_OFFSETS.name})")
    a = ap.parse_args(argv)
    from ..errors import CaptureError

    if a.landmarks_2d:
        out = a.out if a.out != DETECTOR_BIAS else LANDMARK_OFFSETS
        try:
            arrays = measure_2d(a.n, a.seed)
        except (CaptureError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, **arrays)
        print(f"{out}: {int(arrays['n_detected'])} of {int(arrays['n_rendered'])} renders; rms px per joint "
              f"before {[round(float(x), 1) for x in arrays['rms_before_px']]} after "
              f"{[round(float(x), 1) for x in arrays['rms_after_px']]}; |offset| mm "
              f"{[round(float(x), 1) for x in np.linalg.norm(arrays['offsets'][:, :3], axis=-1) * 1000]}, facing part "
              f"{[round(float(x), 1) for x in np.linalg.norm(arrays['offsets'][:, 3:], axis=-1) * 1000]}")
        return 0
    try:
        arrays = measure(a.n, a.seed, a.frames)
    except (CaptureError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, **arrays)
    print(f"{a.out}: {load_bias(a.out)[1]}; residual rms {float(arrays['residual_rms_mm']):.1f} mm; "
          f"|bias| per joint mm {[round(float(x), 1) for x in np.linalg.norm(arrays['bias'], axis=-1) * 1000]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
