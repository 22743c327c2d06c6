"""Temporal clean-up (`core.solve.smooth.clean_up`): joint jitter and lag, raw vs cleaned.

(a) a synthetic clip with known motion (sinusoidal finger flexion, wrist rotation and travel, 30 fps)
    plus noise (2.5 deg RMS on every rotation, 3 mm on the translation), outlier frames and dropped
    frames: jitter of the noisy and cleaned joints, error against the truth, lag of a joint angle;
(b) captured clips (video/single_hand.mp4, two_hands.mp4, hand_object.mp4; whole clips unless --end),
    per hand, on the frames the detector saw it: jitter of MediaPipe's world landmarks (raw), of the fit
    before the capture's temporal clean-up (recorded from the capture's own `core.solve.smooth.clean_up` call,
    put through the same joint-limit projection) and of ours (the clip's joints), root-relative,
    mm/frame^2; lag of ours against both (cross-correlation of the index PIP bend angle, of ten finger
    bend angles (median) and of the wrist's image x/y); clips are written to out/jitter/NAME.npz;
(c) the real-world dev crops (292 consecutive frames with 3D ground truth, tracking mode): jitter and
    error against the ground truth (wrist-relative, Procrustes-aligned, camera frame) before and after.

A PNG (default out/jitter.png) shows per-frame error / joint acceleration before vs after for each part.

Usage: python -m benchmarks.jitter [--end N] [--videos NAME ...] [--plot PNG] [--no-dev] [--synthetic-only]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from core.eval import metrics
from core.hand.model import MANO_PARENTS, MP_FROM_MANO21
from core.hand.load import load_model
from core.hand.mano import ManoLayer
from core.solve.smooth import clean_up

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
        # per frame, for the plot
        "valid": v,
        "frame_err_raw": np.where(v, metrics.mpjpe(raw, truth), np.nan),
        "frame_err_clean": np.where(c.valid, metrics.mpjpe(clean, truth), np.nan),
        "accel_true": frame_accel(truth, v),
        "accel_raw": frame_accel(raw, v),
        "accel_clean": frame_accel(clean, v),
    }


def capture(path, end: int | None = None, **opts):
    """Run the capture job on a video or image folder (``opts``: more CaptureOptions); returns the ClipResult."""
    from core.capture import CaptureOptions, capture

    return capture(CaptureOptions(input=str(path), end=end, **opts))[0]


@contextlib.contextmanager
def recording_clean_up():
    """Within the block, every `core.solve.smooth.clean_up` call (the capture's temporal clean-up, one per hand)
    is recorded: yields a list that gets (inputs (global_orient, hand_pose, transl, valid), `Cleaned`)."""
    from core.solve import smooth

    calls, real = [], smooth.clean_up

    def spy(global_orient, hand_pose, transl, valid, fps, **cfg):
        out = real(global_orient, hand_pose, transl, valid, fps, **cfg)
        calls.append(((np.array(global_orient), np.array(hand_pose), np.array(transl), np.array(valid, bool)), out))
        return out

    smooth.clean_up = spy
    try:
        yield calls
    finally:
        smooth.clean_up = real


def capture_with_uncleaned(path, end: int | None = None):
    """Capture a video (as ``python -m core capture`` does) and also keep each hand's per-frame fit before
    the temporal clean-up. Returns (ClipResult, [per hand: dict(global_orient, hand_pose, transl,
    valid, outliers)] or None when the clean-up was not seen)."""
    with recording_clean_up() as calls:
        clip = capture(path, end)
    if len(calls) != clip.n_hands:
        return clip, None
    return clip, [dict(zip(("global_orient", "hand_pose", "transl", "valid"), inp), outliers=np.asarray(out.outliers, bool))
                  for inp, out in calls]


def limited_fk(layer: ManoLayer, global_orient, hand_pose, transl, betas, valid) -> np.ndarray:
    """Joints (T, 21, 3), MediaPipe order, of a pose after the capture's joint-limit projection (zeros
    where not ``valid``): the un-cleaned fit as the clip would hold it without the clean-up."""
    from core.solve.limits import project_to_limits
    from core.rot import aa_to_rotmat, rotmat_to_aa

    v = np.asarray(valid, bool)
    out = np.zeros((len(v), 21, 3), np.float32)
    if not v.any():
        return out
    aa = torch.as_tensor(np.concatenate([global_orient[v][:, None], hand_pose[v]], 1), dtype=torch.float32)
    b = torch.as_tensor(np.asarray(betas), dtype=torch.float32).reshape(1, -1).expand(len(aa), -1)
    with torch.no_grad():
        rot = torch.cat([project_to_limits(layer, aa_to_rotmat(aa[i:i + 256]), b[i:i + 256]) for i in range(0, len(aa), 256)])
        aa = rotmat_to_aa(rot).numpy()
    out[v] = fk_joints(layer, aa[:, 0], aa[:, 1:], np.asarray(transl)[v], betas)
    return out


def frame_accel(joints: np.ndarray, valid: np.ndarray, root_relative: bool = True) -> np.ndarray:
    """Per frame (T,) mean joint acceleration, mm/frame^2, centred (frames t-1, t, t+1 all valid, else NaN);
    its mean over the frames is `core.eval.metrics.jitter`."""
    j = np.asarray(joints, np.float64)
    j = j - j[:, :1] if root_relative else j
    v = np.asarray(valid, bool)
    out = np.full(len(j), np.nan)
    if len(j) >= 3:
        ok = v[:-2] & v[1:-1] & v[2:]
        acc = np.linalg.norm(j[2:] - 2 * j[1:-1] + j[:-2], axis=-1).mean(-1) * 1000.0
        out[1:-1] = np.where(ok, acc, np.nan)
    return out


BEND_JOINTS = (2, 3, 6, 7, 10, 11, 14, 15, 18, 19)  # MediaPipe joints whose neighbours j-1, j+1 are parent, child


def lags(joints: np.ndarray, reference: np.ndarray, valid: np.ndarray, wrist_px=None, wrist_px_ref=None) -> dict:
    """Delay (frames, + = ``joints`` late) against ``reference`` (both (T, 21, 3)): of the index PIP bend
    angle, the median over the ten finger bend angles of `BEND_JOINTS`, and of the wrist's image x and y
    when (T, 2) pixel tracks are given."""
    per = [lag_frames(flexion_angle(joints, j), flexion_angle(reference, j), valid) for j in BEND_JOINTS]
    out = {"index_pip": lag_frames(flexion_angle(joints), flexion_angle(reference), valid), "fingers": float(np.median(per))}
    if wrist_px is not None:
        out["wrist"] = float(np.mean([lag_frames(wrist_px[:, k], wrist_px_ref[:, k], valid) for k in (0, 1)]))
    return out


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixels (T, 2) of camera-frame points (T, 3) with per-frame K (T, 3, 3)."""
    p = (K @ np.asarray(points, np.float64)[..., None])[..., 0]
    return p[:, :2] / np.maximum(p[:, 2:], 1e-9)


def evaluate_clip(clip, uncleaned=None) -> list[dict]:
    """Per hand, on the frames the detector saw: jitter of MediaPipe's world landmarks (raw), of the fit
    before the temporal clean-up (``uncleaned``, from `capture_with_uncleaned`) and of ours (the clip);
    lag of ours against both; per-frame accelerations for the plot."""
    rows = []
    for h, side in enumerate(clip.sides):
        det, val = clip.detected[h] & clip.valid[h], clip.valid[h]
        ours = clip.joints[h]
        raw = clip.landmarks_world[h]
        wrist = project(ours[:, 0], clip.K)
        r = {
            "side": side,
            "frames": int(det.sum()),
            "n_filled": int((val & ~clip.detected[h]).sum()),
            "jitter_mediapipe": metrics.jitter(raw, det),
            "jitter_ours": metrics.jitter(ours, det),
            "jitter_ours_all": metrics.jitter(ours, val),
            "jitter_wrist_ours": metrics.jitter(ours[:, :1], det, root_relative=False),
            "lag_vs_mediapipe": lags(ours, raw, det, wrist, clip.landmarks_px[h][:, 0]),
            "accel_mediapipe": frame_accel(raw, det),
            "accel_ours": frame_accel(ours, det),
        }
        if uncleaned is not None:
            u = uncleaned[h]
            layer = ManoLayer(load_model(side, clip.model_path(h)))
            un = limited_fk(layer, u["global_orient"], u["hand_pose"], u["transl"], clip.betas[h], u["valid"])
            r.update({
                "jitter_uncleaned": metrics.jitter(un, det),
                "jitter_wrist_uncleaned": metrics.jitter(un[:, :1], det, root_relative=False),
                "change_mm": float(metrics.mpjpe(ours[det], un[det], root=0).mean()) if det.any() else 0.0,
                "lag_vs_uncleaned": lags(ours, un, det, wrist, project(un[:, 0], clip.K)),
                "n_outliers": int(u["outliers"].sum()),
                "accel_uncleaned": frame_accel(un, det),
            })
        rows.append(r)
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
        out[f"frame_wrist_rel_{name}"] = np.where(v, metrics.mpjpe(j, gt, root=0), np.nan)
    out["frame_index"] = clip.frame_index
    return out


def plot(path, synthetic: dict, clips: list[tuple[str, list[dict]]], dev: dict | None = None) -> Path:
    """PNG of per-frame error / joint acceleration before vs after: the synthetic clip (error vs truth,
    acceleration), every captured clip's hands (acceleration: MediaPipe world, un-cleaned fit, ours)
    and the dev crops (wrist-relative error vs ground truth, ours vs cleaned)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 2 + sum(len(rows) for _, rows in clips) + (dev is not None)
    fig, axes = plt.subplots(n, 1, figsize=(12, 2.4 * n))
    mean = lambda a: float(np.nanmean(a))  # noqa: E731
    line = dict(lw=0.7)
    ax = axes[0]
    f = np.arange(len(synthetic["frame_err_raw"]))
    ax.plot(f, synthetic["frame_err_raw"], color="tab:red", label=f"raw (noisy) {mean(synthetic['frame_err_raw']):.2f}", **line)
    ax.plot(f, synthetic["frame_err_clean"], color="tab:blue", label=f"cleaned {mean(synthetic['frame_err_clean']):.2f}", **line)
    ax.set_title("synthetic clip: per-frame joint error vs truth, mm (gaps = dropped frames; cleaned fills short ones)", fontsize=9)
    ax = axes[1]
    for key, colour, name in (("accel_raw", "tab:red", "raw"), ("accel_clean", "tab:blue", "cleaned"), ("accel_true", "k", "truth")):
        ax.plot(f, synthetic[key], color=colour, label=f"{name} {mean(synthetic[key]):.2f}", **line)
    ax.set_yscale("log")
    ax.set_title("synthetic clip: per-frame joint acceleration (root-relative), mm/frame^2", fontsize=9)
    k = 2
    for name, rows in clips:
        for r in rows:
            ax = axes[k]
            k += 1
            f = np.arange(len(r["accel_ours"]))
            ax.plot(f, r["accel_mediapipe"], color="tab:red", label=f"MediaPipe world {r['jitter_mediapipe']:.2f}", **line)
            if "accel_uncleaned" in r:
                ax.plot(f, r["accel_uncleaned"], color="tab:orange", label=f"fit before clean-up {r['jitter_uncleaned']:.2f}", **line)
            ax.plot(f, r["accel_ours"], color="tab:blue", label=f"ours {r['jitter_ours']:.2f}", **line)
            ax.set_yscale("log")
            ax.set_title(f"{name} {r['side']} hand: per-frame joint acceleration (root-relative), mm/frame^2"
                         f" ({r['frames']} detected frames; gaps = not detected)", fontsize=9)
    if dev is not None:
        ax = axes[k]
        fi = dev["frame_index"]
        ax.plot(fi, dev["frame_wrist_rel_ours"], color="tab:orange", label=f"ours (no clean-up) {dev['wrist_rel_ours']:.2f}", **line)
        ax.plot(fi, dev["frame_wrist_rel_clean"], color="tab:blue", label=f"cleaned {dev['wrist_rel_clean']:.2f}", **line)
        ax.set_title("real-world dev crops: per-frame wrist-relative joint error vs ground truth, mm", fontsize=9)
    for ax in axes:
        ax.legend(loc="upper right", fontsize=7, title="mean", title_fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("frame")
    from core.eval.evaluate import save_figure

    return save_figure(fig, path)


VIDEOS = ("single_hand.mp4", "two_hands.mp4", "hand_object.mp4")


def main(argv=None):
    from benchmarks.common import ROOT

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--end", type=int, default=None, help="frames of each video to capture (default: whole clips)")
    ap.add_argument("--videos", nargs="+", default=list(VIDEOS), help=f"clips of the shared data's video/ (default: {' '.join(VIDEOS)})")
    ap.add_argument("--plot", default=str(ROOT / "out" / "jitter.png"), help="PNG of per-frame error / jitter (default out/jitter.png)")
    ap.add_argument("--no-dev", action="store_true", help="skip (c), the dev crops")
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
        if a.plot:
            print(f"plot: {plot(a.plot, s, [])}")
        return
    from benchmarks.common import need_data
    from core.io.clip import save_clip

    span = "whole clips" if a.end is None else f"first {a.end} frames"
    print(f"(b) captured clips ({span}, tracking mode, 2 hands), on the frames the detector saw the hand: jitter"
          " root-relative mm/frame^2 of MediaPipe's world landmarks (raw), of the fit before the temporal clean-up"
          " and of ours (the clip); lag in frames (+ = ours late) of ours vs each: index PIP bend angle, median of"
          " 10 finger bend angles, wrist image x/y")
    clips = []
    for name in a.videos:
        path = need_data(f"video/{name}")
        t0 = time.perf_counter()
        clip, un = capture_with_uncleaned(path, a.end)
        cap_s = time.perf_counter() - t0
        save_clip(clip, ROOT / "out" / "jitter" / f"{Path(name).stem}.npz")
        rows = evaluate_clip(clip, un)
        clips.append((name, rows))
        print(f"  {name}: {clip.n_frames} frames {clip.image_size[0]}x{clip.image_size[1]}, capture {cap_s:.0f} s"
              f" ({clip.n_frames / cap_s:.1f} fps); hands {', '.join(clip.sides) or 'none'}")
        for r in rows:
            lm = r["lag_vs_mediapipe"]
            print(f"    {r['side']:5s} ({r['frames']} detected frames, {r['n_filled']} filled): jitter MediaPipe "
                  f"{r['jitter_mediapipe']:.2f}"
                  + (f"  before clean-up {r['jitter_uncleaned']:.2f}" if "jitter_uncleaned" in r else "")
                  + f"  ours {r['jitter_ours']:.2f} (MediaPipe / ours = {r['jitter_mediapipe'] / max(r['jitter_ours'], 1e-9):.1f}x"
                  + (f", before / ours = {r['jitter_uncleaned'] / max(r['jitter_ours'], 1e-9):.1f}x" if "jitter_uncleaned" in r else "")
                  + f"; ours with filled frames {r['jitter_ours_all']:.2f})")
            print(f"          lag vs MediaPipe: index PIP {lm['index_pip']:+.2f}  fingers {lm['fingers']:+.2f}"
                  f"  wrist {lm['wrist']:+.2f}", end="")
            if "lag_vs_uncleaned" in r:
                lu = r["lag_vs_uncleaned"]
                print(f";  vs before clean-up: index PIP {lu['index_pip']:+.2f}  fingers {lu['fingers']:+.2f}"
                      f"  wrist {lu['wrist']:+.2f};  wrist jitter (camera frame) before {r['jitter_wrist_uncleaned']:.2f}"
                      f" ours {r['jitter_wrist_ours']:.2f};  mean change {r['change_mm']:.1f} mm; outlier frames {r['n_outliers']}")
            else:
                print(f";  wrist jitter (camera frame) ours {r['jitter_wrist_ours']:.2f} (no un-cleaned fit recorded)")
    d = None
    if not a.no_dev:
        d = evaluate_dev(need_data("real_world_testset_dev"))
        print(f"(c) real-world dev crops with ground truth ({d['frames']} frames, tracking mode), mm:")
        print(f"  jitter: ground truth {d['jitter_gt']:.2f}  MediaPipe world {d['jitter_mediapipe']:.2f}"
              f"  ours {d['jitter_ours']:.2f}  cleaned {d['jitter_clean']:.2f}")
        for name, label in (("ours", "ours   "), ("clean", "cleaned")):
            print(f"  {label}: wrist-relative {d[f'wrist_rel_{name}']:.2f}  PA-MPJPE {d[f'pa_{name}']:.2f}"
                  f"  camera frame {d[f'cam_{name}']:.2f}  lag vs ground truth {d[f'lag_{name}']:+.2f} frames")
    if a.plot:
        print(f"plot: {plot(a.plot, s, clips, d)}")


if __name__ == "__main__":
    main()
