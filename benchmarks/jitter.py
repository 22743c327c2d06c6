"""Temporal clean-up (`core.smooth.clean_up`): joint jitter and lag, raw vs cleaned.

(a) a synthetic clip with known motion (sinusoidal finger flexion, wrist rotation and travel, 30 fps)
    plus noise (2.5 deg RMS on every rotation, 3 mm on the translation), outlier frames and dropped
    frames: jitter of the noisy and cleaned joints, error against the truth, lag of a joint angle;
(b) captured clips (single_hand.mp4, two_hands.mp4; first --end frames): jitter of MediaPipe's world
    landmarks, of our fitted joints and of the cleaned fit's joints (root-relative, mm/frame^2), and the
    lag of the cleaned joints against ours;
(c) the real-world dev crops (292 consecutive frames with 3D ground truth, tracking mode): jitter and
    error against the ground truth (wrist-relative, Procrustes-aligned, camera frame) before and after.

Usage: python -m benchmarks.jitter [--end 200] [--synthetic-only]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from core import metrics
from core.hand_model import MANO_PARENTS, MP_FROM_MANO21, load_model
from core.mano import ManoLayer
from core.smooth import clean_up

FPS = 30.0


@dataclasses.dataclass(frozen=True)
class Synthetic:
    """A one-hand clip with known motion (numpy float32, T frames).

    true_global_orient (T, 3), true_hand_pose (T, 15, 3) axis-angle; true_transl (T, 3) metres;
    global_orient, hand_pose, transl: the same with noise and outliers; valid (T,) bool (dropped frames
    False); outlier_frames (K,) int; fps.
    """

    true_global_orient: np.ndarray
    true_hand_pose: np.ndarray
    true_transl: np.ndarray
    global_orient: np.ndarray
    hand_pose: np.ndarray
    transl: np.ndarray
    valid: np.ndarray
    outlier_frames: np.ndarray
    fps: float


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Axis-angles a, b (..., 3) -> axis-angle of R(a) R(b)."""
    from core.rot import aa_to_rotmat, rotmat_to_aa

    r = aa_to_rotmat(torch.as_tensor(a, dtype=torch.float64)) @ aa_to_rotmat(torch.as_tensor(b, dtype=torch.float64))
    return rotmat_to_aa(r).numpy()


def flexion_axes(layer: ManoLayer) -> np.ndarray:
    """A bend axis (15, 3) per finger joint: perpendicular to its rest bone and to the palm normal."""
    j = layer.rest_joints(torch.zeros(1, layer.n_betas))[0].double().numpy()
    tips = layer.rest_tips(torch.zeros(1, layer.n_betas))[0].double().numpy()
    normal = _unit(np.cross(j[1] - j[0], j[7] - j[0]))  # index1 x pinky1 about the wrist
    child = {p: c for c, p in enumerate(MANO_PARENTS) if c > 0 and p > 0}
    tip_of = {15: 0, 3: 1, 6: 2, 12: 3, 9: 4}  # last joint -> tip (thumb, index, middle, ring, pinky)
    axes = []
    for i in range(1, 16):
        end = j[child[i]] if i in child else tips[tip_of[i]]
        axes.append(_unit(np.cross(end - j[i], normal)))
    return np.stack(axes)


def synthetic_clip(seed: int = 0, n_frames: int = 150, fps: float = FPS, rot_noise_deg: float = 2.5,
                   transl_noise_m: float = 0.003, n_outliers: int = 4) -> Synthetic:
    """Known smooth motion plus realistic noise; frames 0-1, 60-65 and 100-114 are dropped."""
    rng = np.random.default_rng(seed)
    layer = ManoLayer(load_model("right"))
    axes = flexion_axes(layer)  # (15, 3)
    t = np.arange(n_frames) / fps
    # Fingers: 0..1.2 rad flexion at 0.5-1.1 Hz, proximal joints leading, thumb smaller.
    freq = rng.uniform(0.5, 1.1, 15)
    phase = rng.uniform(0, 2 * np.pi, 15)
    amp = np.full(15, 1.2)
    amp[12:] = 0.6
    angle = amp * (0.5 - 0.5 * np.cos(2 * np.pi * freq * t[:, None] + phase))  # (T, 15)
    hand_pose = angle[..., None] * axes[None]
    # Wrist: a fixed palm-to-camera orientation, swung about two axes; travel in x, y, z.
    base = np.array([np.pi * 0.9, 0.0, 0.0])
    swing = np.stack([0.5 * np.sin(2 * np.pi * 0.4 * t), 0.4 * np.sin(2 * np.pi * 0.7 * t + 1.0),
                      0.3 * np.sin(2 * np.pi * 0.3 * t)], -1)
    global_orient = _compose(np.tile(base, (n_frames, 1)), swing)
    transl = np.stack([0.06 * np.sin(2 * np.pi * 0.3 * t), 0.04 * np.sin(2 * np.pi * 0.5 * t), 0.5 + 0.05 * np.sin(2 * np.pi * 0.2 * t)], -1)
    # Noise: rotation vectors with 2.5 deg RMS angle (per component / sqrt 3), 3 mm per axis.
    sd = np.radians(rot_noise_deg) / np.sqrt(3)
    aa = np.concatenate([global_orient[:, None], hand_pose], 1)
    noisy = _compose(aa, rng.normal(0, sd, aa.shape))
    transl_n = transl + rng.normal(0, transl_noise_m, transl.shape)
    # Outliers: ~25 deg on a third of the joints and 3 cm on the translation.
    outl = np.sort(rng.choice(np.r_[5:55, 70:95, 120:n_frames - 3], n_outliers, replace=False)) if n_outliers else np.zeros(0, int)
    for f in outl:
        joints = rng.choice(16, 6, replace=False)
        noisy[f, joints] = _compose(noisy[f, joints], _unit(rng.normal(size=(6, 3))) * np.radians(25))
        transl_n[f] += _unit(rng.normal(size=3)) * 0.03
    valid = np.ones(n_frames, bool)
    valid[[0, 1]] = False
    valid[60:66] = False
    valid[100:115] = False
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    z = lambda a: np.where(valid.reshape((-1,) + (1,) * (a.ndim - 1)), a, 0).astype(np.float32)  # noqa: E731
    return Synthetic(f32(global_orient), f32(hand_pose), f32(transl), z(noisy[:, 0]), z(noisy[:, 1:]), z(transl_n),
                     valid, outl, fps)


def fk_joints(layer: ManoLayer, global_orient, hand_pose, transl, betas=None) -> np.ndarray:
    """Joints (T, 21, 3) metres, MediaPipe order, of axis-angle poses (T, 3), (T, 15, 3), transl (T, 3)."""
    f = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    t = len(global_orient)
    b = torch.zeros(t, layer.n_betas) if betas is None else f(betas).reshape(1, -1).expand(t, -1)
    with torch.no_grad():
        out = layer(b, f(global_orient), f(hand_pose), f(transl), with_vertices=False)
    return out.joints21[:, MP_FROM_MANO21].numpy()


def lag_frames(signal: np.ndarray, reference: np.ndarray, valid: np.ndarray | None = None, max_lag: int = 5) -> float:
    """Delay (frames, + = ``signal`` late) maximising the cross-correlation of two (T,) signals over the
    frames valid in both, refined to a fraction of a frame by a parabola through the peak."""
    ok = np.ones(len(signal), bool) if valid is None else np.asarray(valid, bool)
    scores = []
    for d in range(-max_lag, max_lag + 1):
        # signal[t + d] vs reference[t]
        lo, hi = max(0, -d), min(len(signal), len(signal) - d)
        s, r = signal[lo + d:hi + d], reference[lo:hi]
        m = ok[lo + d:hi + d] & ok[lo:hi]
        s, r = s[m] - s[m].mean(), r[m] - r[m].mean()
        scores.append(float((s * r).sum() / max(np.sqrt((s * s).sum() * (r * r).sum()), 1e-12)))
    c = np.asarray(scores)
    i = int(c.argmax())
    if 0 < i < len(c) - 1:
        den = c[i - 1] - 2 * c[i] + c[i + 1]
        frac = 0.5 * (c[i - 1] - c[i + 1]) / den if den < 0 else 0.0
    else:
        frac = 0.0
    return float(i - max_lag + frac)


def flexion_angle(joints: np.ndarray, j: int = 6) -> np.ndarray:
    """Bend angle (T,) radians at MediaPipe joint ``j`` (default index PIP) from joints (T, 21, 3)."""
    a, b = joints[:, j - 1] - joints[:, j], joints[:, j + 1] - joints[:, j]
    cos = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    return np.pi - np.arccos(np.clip(cos, -1, 1))


def evaluate_synthetic(seed: int = 0) -> dict:
    """Jitter (mm/frame^2), error (mm) against the truth and lag (frames) of the synthetic clip."""
    s = synthetic_clip(seed)
    layer = ManoLayer(load_model("right"))
    truth = fk_joints(layer, s.true_global_orient, s.true_hand_pose, s.true_transl)
    raw = fk_joints(layer, s.global_orient, s.hand_pose, s.transl)
    t0 = time.perf_counter()
    c = clean_up(s.global_orient, s.hand_pose, s.transl, s.valid, s.fps)
    dt = time.perf_counter() - t0
    clean = fk_joints(layer, c.global_orient, c.hand_pose, c.transl)
    v = s.valid
    err = lambda j, m: float(metrics.mpjpe(j[m], truth[m]).mean())  # noqa: E731
    return {
        "jitter_true": metrics.jitter(truth, v),
        "jitter_raw": metrics.jitter(raw, v),
        "jitter_clean": metrics.jitter(clean, v),
        "err_raw": err(raw, v),
        "err_clean": err(clean, v),
        "err_filled": err(clean, c.filled) if c.filled.any() else float("nan"),
        "n_filled": int(c.filled.sum()),
        "outliers_found": int(np.isin(s.outlier_frames, np.nonzero(c.outliers)[0]).sum()),
        "n_outliers": len(s.outlier_frames),
        "lag": lag_frames(flexion_angle(clean), flexion_angle(truth), v),
        "lag_raw": lag_frames(flexion_angle(raw), flexion_angle(truth), v),
        "seconds": dt,
    }


def capture(path, end: int | None = None, **opts):
    """Run the capture job on a video or image folder (``opts``: more CaptureOptions); returns the ClipResult."""
    from core.capture import CaptureOptions, run_capture

    gen = run_capture(CaptureOptions(input=str(path), end=end, **opts))
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value[0]


def evaluate_clip(clip) -> list[dict]:
    """Per hand: jitter of MediaPipe world landmarks, our joints and the cleaned joints; lag of cleaned
    vs ours (index PIP bend angle); filled and outlier frames."""
    rows = []
    for h, side in enumerate(clip.sides):
        layer = ManoLayer(load_model(side, clip.model_path(h)))
        v = clip.valid[h]
        t0 = time.perf_counter()
        c = clean_up(clip.global_orient[h], clip.hand_pose[h], clip.transl[h], v, clip.fps)
        dt = time.perf_counter() - t0
        ours = fk_joints(layer, clip.global_orient[h], clip.hand_pose[h], clip.transl[h], clip.betas[h])
        clean = fk_joints(layer, c.global_orient, c.hand_pose, c.transl, clip.betas[h])
        rows.append({
            "side": side,
            "frames": int(v.sum()),
            "fk_vs_clip_mm": float(metrics.mpjpe(ours[v], clip.joints[h][v]).mean()) if v.any() else 0.0,
            "jitter_mediapipe": metrics.jitter(clip.landmarks_world[h], v),
            "jitter_ours": metrics.jitter(clip.joints[h], v),
            "jitter_clean": metrics.jitter(clean, v),
            "jitter_wrist_ours": metrics.jitter(clip.joints[h][:, :1], v, root_relative=False),
            "jitter_wrist_clean": metrics.jitter(clean[:, :1], v, root_relative=False),
            "change_mm": float(metrics.mpjpe(clean[v], ours[v], root=0).mean()) if v.any() else 0.0,
            "lag": lag_frames(flexion_angle(clean), flexion_angle(ours), v),
            "n_filled": int(c.filled.sum()),
            "n_outliers": int(c.outliers.sum()),
            "seconds": dt,
        })
    return rows


def evaluate_dev(dev) -> dict:
    """The real-world dev crops (folder ``dev``): ours vs cleaned against the ground-truth joints."""
    from core.capture import load_intrinsics

    labels = dev / "labels.npz"
    clip = capture(dev / "images", static=False, hands=1, K=load_intrinsics(f"{labels}:K_crop"))
    with np.load(labels, allow_pickle=False) as z:
        gt = z["joints_cam"].astype(np.float64)[clip.frame_index]
    h = 0
    v = clip.valid[h]
    layer = ManoLayer(load_model(clip.sides[h], clip.model_path(h)))
    c = clean_up(clip.global_orient[h], clip.hand_pose[h], clip.transl[h], v, clip.fps)
    clean = fk_joints(layer, c.global_orient, c.hand_pose, c.transl, clip.betas[h])
    out = {"frames": int(v.sum()), "jitter_gt": metrics.jitter(gt, v),
           "jitter_mediapipe": metrics.jitter(clip.landmarks_world[h], v)}
    for name, j in (("ours", clip.joints[h].astype(np.float64)), ("clean", clean.astype(np.float64))):
        out[f"jitter_{name}"] = metrics.jitter(j, v)
        out[f"wrist_rel_{name}"] = float(metrics.mpjpe(j[v], gt[v], root=0).mean())
        out[f"pa_{name}"] = float(metrics.pa_mpjpe(j[v], gt[v]).mean())
        out[f"cam_{name}"] = float(metrics.mpjpe(j[v], gt[v]).mean())
        out[f"lag_{name}"] = lag_frames(flexion_angle(j), flexion_angle(gt), v)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--end", type=int, default=200, help="frames of each video to capture (default 200)")
    ap.add_argument("--synthetic-only", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    s = evaluate_synthetic()
    print("(a) synthetic clip, 150 frames at 30 fps (2.5 deg / 3 mm noise, 4 outlier frames, 23 dropped):")
    print(f"  jitter mm/frame^2: truth {s['jitter_true']:.2f}  raw {s['jitter_raw']:.2f}  cleaned {s['jitter_clean']:.2f}"
          f"  (raw / cleaned = {s['jitter_raw'] / s['jitter_clean']:.1f}x)")
    print(f"  error vs truth mm: raw {s['err_raw']:.2f}  cleaned {s['err_clean']:.2f}  filled frames {s['err_filled']:.2f}"
          f" ({s['n_filled']} filled)")
    print(f"  lag frames (index PIP angle): cleaned {s['lag']:+.2f}  raw {s['lag_raw']:+.2f};"
          f"  outliers flagged {s['outliers_found']}/{s['n_outliers']};  clean_up {s['seconds'] * 1000:.0f} ms")
    if a.synthetic_only:
        return
    from benchmarks.common import need_data

    print(f"(b) captured clips, first {a.end} frames; jitter root-relative mm/frame^2, wrist in camera frame:")
    for name in ("single_hand.mp4", "two_hands.mp4"):
        path = need_data(f"video/{name}")
        t0 = time.perf_counter()
        clip = capture(path, a.end)
        cap_s = time.perf_counter() - t0
        for r in evaluate_clip(clip):
            print(f"  {name} {r['side']:5s} ({r['frames']} valid frames, capture {cap_s:.0f} s): jitter MediaPipe world "
                  f"{r['jitter_mediapipe']:.2f}  ours {r['jitter_ours']:.2f}  cleaned {r['jitter_clean']:.2f}"
                  f" ({r['jitter_ours'] / max(r['jitter_clean'], 1e-9):.1f}x);  wrist ours {r['jitter_wrist_ours']:.2f}"
                  f" cleaned {r['jitter_wrist_clean']:.2f};  lag {r['lag']:+.2f} frames;  mean change {r['change_mm']:.1f} mm;"
                  f"  filled {r['n_filled']}, outlier frames {r['n_outliers']};  clean_up {r['seconds'] * 1000:.0f} ms")
    d = evaluate_dev(need_data("real_world_testset_dev"))
    print(f"(c) real-world dev crops with ground truth ({d['frames']} frames, tracking mode), mm:")
    print(f"  jitter: ground truth {d['jitter_gt']:.2f}  MediaPipe world {d['jitter_mediapipe']:.2f}"
          f"  ours {d['jitter_ours']:.2f}  cleaned {d['jitter_clean']:.2f}")
    for name, label in (("ours", "ours   "), ("clean", "cleaned")):
        print(f"  {label}: wrist-relative {d[f'wrist_rel_{name}']:.2f}  PA-MPJPE {d[f'pa_{name}']:.2f}"
              f"  camera frame {d[f'cam_{name}']:.2f}  lag vs ground truth {d[f'lag_{name}']:+.2f} frames")


if __name__ == "__main__":
    main()
