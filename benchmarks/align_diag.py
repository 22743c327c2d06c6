"""Where the remaining reprojection error is (issue 15): per joint, per frame, systematic offsets, focal, smoothing.

    python -m benchmarks.align_diag [--out out/align_diag] [--no-videos] [--only front,...] [--frames-max N]
                                    [--variants base,bias,...] [--detail] [--tail]
    python -m benchmarks.align_diag --synthetic     # the hyperextension prior's bias on exact synthetic clips
    python -m benchmarks.align_diag --dev-crops --variants off,nohyper,hyper

Every clip is captured once with the real capture path (`core.capture.run_capture`); the arguments it hands to
`core.solve.pose.fit_hand` (the tracked 2D, the detector's 3D and relative depth, K, the shared size) are
recorded and cached under ``--out``; then each *variant* refits the same inputs (`fit_hand`, one thing
changed) and is scored on the same frames:

* the hard views (`benchmarks.hard_views.VIEWS`, truth known): against the **true 2D**, and against the
  detector's 2D; camera-frame error and hand size;
* the three shared videos, whole clips, guessed K (the CLI default): against the **detector's 2D**.

Per variant and hand: median / p95 (hand sizes, `core.eval.reproj`), the medians per joint group (wrist, thumb
CMC, MCPs, PIP, DIP, tips), the share of frames whose own median is above 0.03, the mean signed offset of
each joint in the hand's image frame (the systematic part), and jitter (root-relative joint acceleration,
mm/frame^2, on runs of consecutive detected frames).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, need_data

GROUPS = {"wrist": [0], "thumb CMC": [1], "MCPs": [2, 5, 9, 13, 17], "PIPs": [3, 6, 10, 14, 18],
          "DIPs": [7, 11, 15, 19], "tips": [4, 8, 12, 16, 20]}
VIDEOS = ("single_hand.mp4", "two_hands.mp4", "hand_object.mp4")


def record_capture(opts) -> tuple[list[dict], object]:
    """Run `core.capture.run_capture` with `fit_hand` wrapped: returns the recorded calls (one per hand:
    the arrays and keyword arguments it got, ``side``) and the ClipResult."""
    import core.solve.pose as pose
    from core.capture import capture

    calls = []
    real = pose.fit_hand

    def spy(layer, kp_px, world, detected, K, **kw):
        calls.append({"side": layer.side, "kp_px": np.asarray(kp_px), "world": np.asarray(world),
                      "detected": np.asarray(detected), "K": np.asarray(K),
                      "landmarks_z": None if kw.get("landmarks_z") is None else np.asarray(kw["landmarks_z"]),
                      "image_width": kw.get("image_width"), "fps": kw.get("fps"),
                      "lengths": None if kw.get("lengths") is None else np.asarray(kw["lengths"]),
                      "vae": kw.get("refiner") is not None})
        return real(layer, kp_px, world, detected, K, **kw)

    pose.fit_hand = spy
    try:
        clip, _ = capture(opts)
    finally:
        pose.fit_hand = real
    return calls, clip


def _save(path: Path, calls: list[dict], extra: dict) -> None:
    arrays = {}
    for h, c in enumerate(calls):
        for k, v in c.items():
            if v is None:
                continue
            arrays[f"{h}_{k}"] = np.asarray(v)
    np.savez(path, n_hands=len(calls), **arrays, **extra)


def _load(path: Path) -> tuple[list[dict], dict]:
    z = np.load(path, allow_pickle=False)
    calls = []
    for h in range(int(z["n_hands"])):
        c = {"side": str(z[f"{h}_side"])}
        for k in ("kp_px", "world", "detected", "K", "landmarks_z", "image_width", "fps", "lengths", "vae"):
            key = f"{h}_{k}"
            c[k] = z[key] if key in z.files else None
        c["image_width"] = int(c["image_width"])
        c["fps"] = None if c["fps"] is None else float(c["fps"])
        c["vae"] = bool(c["vae"])
        calls.append(c)
    extra = {k: z[k] for k in z.files if not k[0].isdigit() and k != "n_hands"}
    return calls, extra


def prepare(out: Path, views, videos, frames: int) -> dict:
    """Render and capture the hard views and capture the videos (cached: a present ``inputs.npz`` is reused)."""
    from core import demo
    from core.capture import CaptureOptions
    from core.progress import Reporter

    from benchmarks import hard_views as hv

    cases = {}
    for v in views:
        d = out / v.name
        path = d / "inputs.npz"
        if not path.is_file():
            d.mkdir(parents=True, exist_ok=True)
            scene = hv.build(v, frames)
            demo.render_frames(scene["vertices"], scene["faces"], v.K, d / "frames", Reporter("quiet"),
                               image_size=v.size, background_rgb=v.background)
            video = demo.write_video(d / "frames", d / "view.mp4", fps=hv.FPS, size=v.size)
            calls, _ = record_capture(CaptureOptions(input=str(video), K=v.K, hands=len(v.hands)))
            _save(path, calls, {"truth": scene["joints"], "truth_sides": np.array([h.side for h in v.hands])})
        cases[v.name] = path
    for name in videos:
        d = out / Path(name).stem
        path = d / "inputs.npz"
        if not path.is_file():
            d.mkdir(parents=True, exist_ok=True)
            calls, clip = record_capture(CaptureOptions(input=str(need_data(f"video/{name}")), hands=2))
            _save(path, calls, {"image_size": np.asarray(clip.image_size)})
        cases[Path(name).stem] = path
    return cases


def jitter(joints: np.ndarray, det: np.ndarray) -> float:
    """Mean root-relative joint acceleration, mm/frame^2, over frames whose two neighbours are detected too."""
    rel = joints - joints[:, :1]
    ok = det[1:-1] & det[:-2] & det[2:]
    if not ok.any():
        return float("nan")
    acc = rel[2:] - 2 * rel[1:-1] + rel[:-2]
    return float(np.linalg.norm(acc[ok], axis=-1).mean() * 1000.0)


def image_frame_offsets(ours_px: np.ndarray, ref_px: np.ndarray) -> np.ndarray:
    """Mean signed offset (21, 2) of ``ref_px - ours_px`` in the hand's image frame (x: wrist -> middle MCP,
    y: perpendicular), in hand sizes: the part of the error the same on every frame."""
    ax = ref_px[:, 9] - ref_px[:, 0]
    size = np.linalg.norm(ax, axis=-1, keepdims=True)
    ex = ax / np.maximum(size, 1e-9)
    ey = np.stack([-ex[:, 1], ex[:, 0]], -1)
    d = ref_px - ours_px
    return np.stack([(d * ex[:, None]).sum(-1), (d * ey[:, None]).sum(-1)], -1).mean(0) / 1.0 / np.median(size)


def score(joints: np.ndarray, K: np.ndarray, ref_px: np.ndarray, det: np.ndarray) -> dict:
    from core.eval import reproj

    r = reproj.reprojection(joints[det], K[det], ref_px[det])
    per_frame = np.nanmedian(r.dist, 1)
    out = {"med": r.median, "p95": r.p95, "frames_over": float((per_frame > 0.03).mean()),
           "frame_med_p90": float(np.percentile(per_frame, 90)),
           "groups": {g: float(np.nanmedian(r.dist[:, j])) for g, j in GROUPS.items()},
           "groups_p95": {g: float(np.nanpercentile(r.dist[:, j], 95)) for g, j in GROUPS.items()},
           "offsets": image_frame_offsets(reproj.project(joints[det], K[det]), ref_px[det]), "dist": r.dist}
    return out


def run_variant(calls: list[dict], extra: dict, variant, frames_max: int | None = None) -> list[dict]:
    """Refit each recorded hand with ``variant`` (callable(call) -> (fit kwargs override, config)) and score it."""
    import torch

    from core.eval import reproj
    from core.hand.load import load_model
    from core.hand.mano import ManoLayer
    from core.net import load_refiner
    from core.solve.pose import fit_hand

    rows = []
    refiner = None
    priors = None
    if getattr(variant, "pair", False) and len(calls) == 2 and {c["side"] for c in calls} == {"left", "right"}:
        priors = pair_priors(calls, variant.pair, frames_max, getattr(variant, "base_cfg", None))
    for h, c in enumerate(calls):
        if c["vae"] and refiner is None:
            refiner = load_refiner()
        layer = ManoLayer(load_model(c["side"]))
        args = dict(kp_px=c["kp_px"], world=c["world"], detected=c["detected"], K=c["K"])
        kw = dict(landmarks_z=c["landmarks_z"], image_width=c["image_width"], fps=c["fps"], lengths=c["lengths"],
                  refiner=refiner if c["vae"] else None)
        if frames_max:
            sl = slice(0, frames_max)
            args = {k: v[sl] for k, v in args.items()}
            kw["landmarks_z"] = None if kw["landmarks_z"] is None else kw["landmarks_z"][sl]
        over, cfg = variant(c)
        over = dict(over)
        if priors is not None:
            over["depth_prior"] = priors[h]
        if "K" in over:  # a variant's own intrinsics (focal): ours are projected with them
            args["K"] = np.asarray(over.pop("K"))[: len(args["K"])]
        kw.update(over)
        t0 = time.perf_counter()
        with torch.no_grad():
            fit = fit_hand(layer, *args.values(), config=cfg, **kw)
        sec = time.perf_counter() - t0
        det = fit.valid & args["detected"]
        j = fit.joints.astype(np.float64)
        Kk = args["K"]
        # The fit's joints in the detector's landmark convention (`core.solve.fit.landmarks_of`, the shipped
        # offsets), projected: like for like against the detector's 2D.
        from core.net.renders import LANDMARK_OFFSETS, load_offsets
        from core.rot import aa_to_rotmat
        from core.solve.fit import landmarks_of
        from core.hand.model import MP_FROM_MANO21

        with torch.no_grad():
            aa = torch.as_tensor(np.concatenate([fit.global_orient[:, None], fit.hand_pose], 1))
            lm = landmarks_of(layer, torch.as_tensor(fit.betas)[None].expand(len(aa), -1), aa_to_rotmat(aa),
                              torch.as_tensor(fit.transl), load_offsets(LANDMARK_OFFSETS))[:, MP_FROM_MANO21]
        conv = score(lm.numpy().astype(np.float64), Kk, args["kp_px"].astype(np.float64), det)
        from core.eval.plausibility import LIMIT_DEG, check_poses

        v = fit.valid
        lim, pen = check_poses(layer, aa_to_rotmat(aa[torch.as_tensor(v)]), torch.as_tensor(fit.betas)[None])
        row = {"side": c["side"], "frames": int(det.sum()), "seconds": sec, "conv_vs_det": conv,
               "limit_frames": int((lim > LIMIT_DEG).sum()), "pen_frames": int((pen > 2.0).sum()),
               "pen_max": float(pen.max()) if len(pen) else 0.0,
               "vs_det": score(j, Kk, args["kp_px"].astype(np.float64), det), "jitter": jitter(j, det),
               "size_mm": 1000 * float(np.median(reproj.hand_size_3d(j[det]))), "depth_m": float(np.median(j[det][:, 9, 2])),
               "motion": motion(args["kp_px"].astype(np.float64), args["detected"])[det]}
        if "truth" in extra:
            k = list(extra["truth_sides"]).index(c["side"])
            gt = extra["truth"][: len(det), k]
            true_px = reproj.project(gt, c["K"][: len(det)])  # the true K
            row["vs_true"] = score(j, Kk, true_px, det)
            row["detector_vs_true"] = score_px(args["kp_px"].astype(np.float64), true_px, det)
            row["cam_mm"] = float(reproj.camera_error_mm(j[det], gt[det]).mean())
            row["size_pct"] = 100 * float(np.median(reproj.hand_size_error(j[det], gt[det])))
            row["bent"] = int(reproj.bent_against(j[det], gt[det], c["side"]).sum())
            from core.eval.metrics import mpjpe, pa_mpjpe

            row["pa_mm"] = float(np.mean(pa_mpjpe(j[det], gt[det])))
            row["wrist_mm"] = float(np.mean(mpjpe(j[det], gt[det], root=0)))
            row["jitter_true"] = jitter(gt, det)
        rows.append(row)
    return rows


def motion(kp: np.ndarray, det: np.ndarray) -> np.ndarray:
    """(T, 2) per frame, hand sizes (`core.eval.reproj.hand_size_px`), median over the 21 landmarks: the detector
    2D's speed |kp[t+1] - kp[t-1]| / 2 and its jerk |kp[t] - (kp[t-1] + kp[t+1]) / 2| (a landmark off the line
    through its neighbours: a fast turn or a detector glitch); nan without both neighbours detected."""
    from core.eval import reproj

    out = np.full((len(kp), 2), np.nan)
    ok = np.zeros(len(kp), bool)
    ok[1:-1] = det[1:-1] & det[:-2] & det[2:]
    if ok.any():
        t = np.flatnonzero(ok)
        size = reproj.hand_size_px(kp[t])
        out[t, 0] = np.median(np.linalg.norm(kp[t + 1] - kp[t - 1], axis=-1), 1) / 2 / size
        out[t, 1] = np.median(np.linalg.norm(kp[t] - (kp[t - 1] + kp[t + 1]) / 2, axis=-1), 1) / size
    return out


def tail_report(results: dict) -> None:
    """What makes the p95: per hand and variant, the reference's distances (true 2D on renders; on videos the
    detector's 2D against our landmark points) above their own p95, by joint group (share of the tail over the
    group's share of joints: 1 = as many as its size), by frame (share of the tail on the worst 5 % of frames),
    and the p95 on the detected frames split by the detector 2D's speed and jerk (`motion`) quartiles."""
    print("\nThe tail (distances above the p95): joint groups' share of it over their share of joints; share on the "
          "worst 5 % of frames; p95 per quartile of the detector 2D's speed, then of its jerk (slow/low -> fast/high)")
    print("| case | hand | variant | p95 | " + " | ".join(GROUPS) + " | worst 5 % frames | p95 by speed quartile | "
          "by jerk quartile |")
    print("|---" * (7 + len(GROUPS)) + "|")
    rows = []
    for (case, side, name), r in results.items():
        rows.append((case, side, name, r["vs_true"]["dist"] if "vs_true" in r else r["conv_vs_det"]["dist"], r))
        if "detector_vs_true" in r and name == next(n for (c, s, n) in results if (c, s) == (case, side)):
            rows.append((case, side, "(detector vs true 2D)", r["detector_vs_true"]["dist"], r))
    for case, side, name, d, r in rows:
        thr = np.nanpercentile(d, 95)
        tail = d > thr
        share = [tail[:, j].sum() / max(tail.sum(), 1) / (len(j) / 21) for j in GROUPS.values()]
        per_frame = tail.sum(1)
        k = max(1, int(round(0.05 * len(d))))
        worst = np.sort(per_frame)[::-1][:k].sum() / max(tail.sum(), 1)
        cols = []
        for m in (0, 1):
            v = r["motion"][:, m]
            ok = np.isfinite(v)
            if ok.sum() < 8:
                cols.append("-")
                continue
            q = np.quantile(v[ok], [0.25, 0.5, 0.75])
            bins = np.digitize(v[ok], q)
            cols.append(" / ".join(f"{np.nanpercentile(d[ok][bins == b], 95):.3f}" for b in range(4)))
        print(f"| {case} | {side} | {name} | {thr:.3f} | " + " | ".join(f"{x:.1f}" for x in share)
              + f" | {100 * worst:.0f} % | {cols[0]} | {cols[1]} |")


def pair_priors(calls, pair_cfg, frames_max=None, cfg=None):
    """`core.solve.pose.pair_depths` of a recorded right-left pair fitted alone (the shipped fit)."""
    import torch

    from core.hand.load import load_model
    from core.hand.mano import ManoLayer
    from core.net import load_refiner
    from core.solve.pose import fit_hand, pair_depths

    refiner = load_refiner() if calls[0]["vae"] else None
    fits, kps, dets = [], [], []
    sl = slice(0, frames_max) if frames_max else slice(None)
    for c in calls:
        with torch.no_grad():
            fits.append(fit_hand(ManoLayer(load_model(c["side"])), c["kp_px"][sl], c["world"][sl], c["detected"][sl],
                                 c["K"][sl], landmarks_z=None if c["landmarks_z"] is None else c["landmarks_z"][sl],
                                 image_width=c["image_width"], fps=c["fps"], lengths=c["lengths"], refiner=refiner,
                                 config=cfg))
        kps.append(c["kp_px"][sl])
        dets.append(c["detected"][sl])
    return pair_depths(fits, kps, calls[0]["K"][sl], dets, pair_cfg)


def score_px(px: np.ndarray, ref: np.ndarray, det: np.ndarray) -> dict:
    from core.eval import reproj

    d = np.linalg.norm(px[det] - ref[det], axis=-1) / reproj.hand_size_px(ref[det])[:, None]
    return {"med": float(np.median(d)), "p95": float(np.percentile(d, 95)),
            "groups": {g: float(np.median(d[:, j])) for g, j in GROUPS.items()}, "dist": d}


def variants() -> dict:
    """The named refits: ``base`` is the shipped pipeline; each other changes one thing."""
    from core.solve.fit import FitConfig

    import core.solve.fit as fitmod
    from core.net.renders import LANDMARK_OFFSETS, load_offsets

    base = FitConfig()

    def with_offsets(cfg, three_d=False, align_only=False, fingers_only=False, shape=False):
        from core.solve.fit import BONE_OF

        o = load_offsets(LANDMARK_OFFSETS)
        if fingers_only:  # the palm's joints (carried by the root: wrist, MCPs, thumb CMC) keep no offset
            o = o * (BONE_OF != 0)[:, None]
        off = tuple(map(tuple, o))
        ref = cfg.refine if align_only else dataclasses.replace(cfg.refine, offsets=off, offsets_3d=three_d,
                                                                  offsets_shape=shape)
        return dataclasses.replace(cfg, refine=ref, align=dataclasses.replace(cfg.align, offsets=off, offsets_3d=three_d))

    from core.solve.pose import PairDepthConfig

    def paired(cfg_pair, cfg=base):
        def v(c):
            return {}, cfg
        v.pair = cfg_pair
        v.base_cfg = cfg
        return v

    shipped = fitmod.with_landmark_offsets(base, load_offsets(LANDMARK_OFFSETS), True, False)

    def hyper(cfg, gate, w=3.0, align=True):  # the hyperextension prior, gated by the bend's visibility
        return dataclasses.replace(cfg, refine=dataclasses.replace(cfg.refine, w_hyper=w, hyper_gate=gate),
                                   align=dataclasses.replace(cfg.align, w_hyper=w if align else 0.0, hyper_gate=gate))

    return {
        "pair": paired(PairDepthConfig()),
        "pair_strong": paired(PairDepthConfig(gap_sigma=0.05)),
        "shipped": lambda c: ({}, shipped),
        "shipped_hyper": lambda c: ({}, hyper(shipped, None)),  # ungated
        "shipped_nohyper": lambda c: ({}, hyper(shipped, None, 0.0)),  # the prior off (the fit before it)
        "shipped_gate_0.03": lambda c: ({}, hyper(shipped, 0.03)),  # the prior gated by the mirror's 2D fit
        "shipped_gate_0.1": lambda c: ({}, hyper(shipped, 0.1)),
        "shipped_pair": paired(PairDepthConfig(), shipped),
        # the alignment (6b) with one weight changed (issue 15 p95 study)
        "align_robust_0.2": lambda c: ({}, dataclasses.replace(shipped, align=dataclasses.replace(shipped.align, robust_2d=0.2))),
        "align_robust_0.3": lambda c: ({}, dataclasses.replace(shipped, align=dataclasses.replace(shipped.align, robust_2d=0.3))),
        "align_robust_frame": lambda c: ({}, dataclasses.replace(shipped, align=dataclasses.replace(shipped.align,
                                                                                                   robust_2d_frame=1.0))),
        "align_w2d_10": lambda c: ({}, dataclasses.replace(shipped, align=dataclasses.replace(shipped.align, w_2d=10.0))),
        "align_wrist_free": lambda c: ({}, dataclasses.replace(shipped, align=dataclasses.replace(shipped.align,
                                                                                                 joint_w_3d=None))),
        # per-frame fit (no clean-up, no alignment) with the convention in its 2D term and shape fit: the
        # shipped fit's per-frame counterpart
        "static_conv": lambda c: ({"fps": None}, fitmod.with_landmark_offsets(base, load_offsets(LANDMARK_OFFSETS))),
        "offsets": lambda c: ({}, with_offsets(base)),
        "offsets3d": lambda c: ({}, with_offsets(base, True)),
        "offsets_fingers": lambda c: ({}, with_offsets(base, fingers_only=True)),
        "offsets_shape": lambda c: ({}, with_offsets(base, shape=True)),
        "align_shape": lambda c: ({}, fitmod.with_landmark_offsets(base, load_offsets(LANDMARK_OFFSETS), True, False)),
        "align_only": lambda c: ({}, fitmod.with_landmark_offsets(base, load_offsets(LANDMARK_OFFSETS), False, False)),
        "offsets_shape3d": lambda c: ({}, with_offsets(base, True, shape=True)),
        "offsets_align": lambda c: ({}, with_offsets(base, False, True)),
        "base": lambda c: ({}, base),
        "no_align": lambda c: ({}, dataclasses.replace(base, align=None)),
        "static": lambda c: ({"fps": None}, base),  # no temporal clean-up, no alignment (per-frame fit)
    }


def dev_crops(out: Path, only=(False, True)) -> None:
    """The real dev crops (292, static, one hand, known K): `core.eval.evaluate`'s figures with the landmark
    convention (`CaptureOptions.landmark_offsets`, the default) and without (the ablation), same run."""
    from core.capture import CaptureOptions, capture_to_file, load_intrinsics
    from core.eval.evaluate import evaluate, load_gt
    from core.io.clip import load_clip
    from core.progress import Reporter

    import core.solve.fit as fitmod

    d = need_data("real_world_testset_dev")
    real = fitmod.with_landmark_offsets
    for on in only:
        t0 = time.perf_counter()
        real_cfg = fitmod.FitConfig
        if on == "2d":  # the convention in the 2D terms only, not in the shape fit
            fitmod.with_landmark_offsets = lambda cfg, off, shape=True, refine=True: real(cfg, off, shape=False)
        elif on == "on_all":  # the convention in the per-frame refinement too (stills)
            fitmod.with_landmark_offsets = lambda cfg, off, shape=True, refine=True: real(cfg, off, True, True)
        else:
            fitmod.with_landmark_offsets = real
        if on in ("hyper", "nohyper"):  # the hyperextension prior (RefineConfig.w_hyper 3) ungated / off, both stages
            def hyper(w=3.0 if on == "hyper" else 0.0):
                c = real_cfg()
                return dataclasses.replace(c, refine=dataclasses.replace(c.refine, w_hyper=w, hyper_gate=None),
                                           align=dataclasses.replace(c.align, w_hyper=w, hyper_gate=None))
            fitmod.FitConfig = hyper
        path = capture_to_file(CaptureOptions(input=str(d / "images"), static=True, hands=1, landmark_offsets=bool(on),
                                              K=load_intrinsics(f"{d / 'labels.npz'}:K_crop")),
                               out / f"dev_crops_{on}.npz", Reporter("quiet"))
        fitmod.FitConfig = real_cfg
        rep = evaluate(load_clip(path), load_gt(d / "labels.npz"))
        print(f"landmark offsets {on}: detected {rep.n_detected} / {rep.n_frames}; "
              + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in rep.rows["ours"].items())
              + f"; {time.perf_counter() - t0:.0f} s", flush=True)


def synthetic(seeds=(60, 61), n=(12, 40)) -> None:
    """The hyperextension prior's bias on exact inputs: tests/test_fit.py's synthetic clips (random in-range poses and
    orientations, ``limits.sample_poses`` scale 0.6: MCPs down to -24 deg, DIPs to -15 deg; exact 2D, relative
    depth and metric 3D; stills), mean joint error mm with the prior off, everywhere (ungated) and gated (the default)."""
    import torch

    from core.hand.load import load_model
    from core.hand.mano import ManoLayer
    from core.hand.model import MP_FROM_MANO21
    from core.solve import fit, limits
    from core.solve.camera import ray_rotation
    from core.solve.pose import fit_hand

    K = np.array([[600.0, 0.0, 319.5], [0.0, 600.0, 239.5], [0.0, 0.0, 1.0]])
    print("| hand | seed | frames | off | everywhere | gated (default) |")
    print("|---|---|---|---|---|---|")
    for side in ("right", "left"):
        layer = ManoLayer(load_model(side))
        for seed, m in zip(seeds, n):
            g = torch.Generator().manual_seed(seed)
            betas = torch.zeros(m, layer.n_betas)
            rot = limits.sample_poses(layer, m, g, betas, scale=0.6)
            transl = torch.stack([torch.rand(m, generator=g) * 0.2 - 0.1, torch.rand(m, generator=g) * 0.2 - 0.1,
                                  0.45 + torch.rand(m, generator=g) * 0.3], -1)
            j = layer(betas, None, None, transl, with_vertices=False, rotmats=rot).joints21[:, MP_FROM_MANO21]
            kk = torch.as_tensor(K, dtype=torch.float32).expand(m, 3, 3)
            px = j[..., :2] / j[..., 2:3] * 600.0 + torch.tensor([319.5, 239.5])
            z_px = 600.0 * (j[..., 2] / j[:, :1, 2] - 1)
            world = (j - j.mean(1, keepdim=True)) @ ray_rotation(px, kk)
            row = []
            for w, gate in ((0.0, None), (3.0, None), (3.0, fit.HYPER_GATE)):
                c = fit.FitConfig()
                cfg = dataclasses.replace(c, refine=dataclasses.replace(c.refine, w_hyper=w, hyper_gate=gate))
                with torch.no_grad():
                    r = fit_hand(layer, px.numpy(), world.numpy(), np.ones(m, bool), kk.numpy().astype(np.float64),
                                 landmarks_z=(z_px / 640).numpy(), image_width=640, config=cfg)
                row.append(float(np.linalg.norm(r.joints - j.numpy(), axis=-1).mean() * 1000))
            print(f"| {side} | {seed} | {m} | " + " | ".join(f"{x:.2f}" for x in row) + " |", flush=True)


def fov_auto(cases: dict) -> None:
    """--fov auto on each case: every hand's detected frames (the detector's 3D and 2D), the pick or the reason."""
    from core.solve import camera

    print("| case | true / recorded fov deg | picked | cost at pick / default | stability | reason | s |")
    print("|---|---|---|---|---|---|---|")
    for case, path in cases.items():
        calls, extra = _load(path)
        shape = np.concatenate([c["world"][c["detected"]] for c in calls])
        px = np.concatenate([c["kp_px"][c["detected"]] for c in calls])
        K = calls[0]["K"][0]
        w = calls[0]["image_width"]
        h = int(round(2 * K[1, 2] + 1))
        fov = math.degrees(2 * math.atan(0.5 * max(w, h) / K[0, 0]))
        t0 = time.perf_counter()
        sc = camera.self_calibrate(shape, px, w, h)
        i = int(np.argmin(sc.cost))
        c_def = float(np.interp(camera.DEFAULT_FOV_DEG, sc.fovs, sc.cost))
        print(f"| {case} | {fov:.1f}{'' if 'truth' in extra else ' (guessed)'} | "
              f"{'-' if sc.fov_deg is None else f'{sc.fov_deg:.0f}'} (best {sc.fovs[i]:.0f}) | {sc.cost[i]:.4f} / {c_def:.4f} | "
              f"{sc.stability:.2f} | {sc.reason} | {time.perf_counter() - t0:.1f} |", flush=True)


def main(argv=None) -> None:
    from benchmarks import hard_views as hv

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "out" / "align_diag"))
    ap.add_argument("--only", default="", help="comma-separated case names (views or video stems)")
    ap.add_argument("--no-videos", action="store_true")
    ap.add_argument("--no-views", action="store_true")
    ap.add_argument("--frames", type=int, default=hv.FRAMES)
    ap.add_argument("--frames-max", type=int, default=0, help="fit only the first N frames of each case")
    ap.add_argument("--variants", default="base")
    ap.add_argument("--detail", action="store_true", help="per joint group and offsets")
    ap.add_argument("--tail", action="store_true", help="what makes the p95 (joints, frames, motion)")
    ap.add_argument("--dev-crops", action="store_true",
                    help="only the real dev crops, captured with and without the landmark convention")
    ap.add_argument("--fov-auto", action="store_true",
                    help="only `core.solve.camera.self_calibrate` (--fov auto) on every case's detections")
    ap.add_argument("--synthetic", action="store_true",
                    help="only the hyperextension prior's bias on exact synthetic clips (tests/test_fit.py's)")
    a = ap.parse_args(argv)
    from core.hand.gen import ensure_open_model

    ensure_open_model()
    if a.synthetic:
        synthetic()
        return
    out = Path(a.out)
    only = set(filter(None, a.only.split(",")))
    views = [] if a.no_views else [v for v in hv.VIEWS if not only or v.name in only]
    vids = [] if a.no_videos else [n for n in VIDEOS if not only or Path(n).stem in only]
    cases = {} if a.dev_crops else prepare(out, views, vids, a.frames)
    if a.fov_auto:
        fov_auto(cases)
        return
    if a.dev_crops:
        dev_crops(out, [{"off": False, "on": True, "2d": "2d", "on_all": "on_all", "hyper": "hyper",
                         "nohyper": "nohyper"}[k]
                        for k in a.variants.split(",")]
                  if a.variants != "base" else (False, True))
        return
    table = variants()
    names = a.variants.split(",")
    print("| case | hand | variant | vs true 2D med / p95 | vs detector 2D med / p95 | as landmarks vs detector 2D | "
          "frames > 0.03 | camera mm | size % | bent | jitter (true) | size mm | depth m | frames > 5 deg / > 2 mm (deepest) | s |")
    print("|---" * 15 + "|")
    results = {}
    for case, path in cases.items():
        calls, extra = _load(path)
        for name in names:
            rows = run_variant(calls, extra, table[name], a.frames_max or None)
            for r in rows:
                results[(case, r["side"], name)] = r
                ref = r.get("vs_true", r["vs_det"])
                vt = r.get("vs_true")
                print(f"| {case} | {r['side']} | {name} | "
                      + (f"{vt['med']:.3f} / {vt['p95']:.3f}" if vt else "-") + " | "
                      f"{r['vs_det']['med']:.3f} / {r['vs_det']['p95']:.3f} | "
                      f"{r['conv_vs_det']['med']:.3f} / {r['conv_vs_det']['p95']:.3f} | {100 * ref['frames_over']:.0f} % | "
                      f"{r.get('cam_mm', math.nan):.1f} | {r.get('size_pct', math.nan):+.1f} | {r.get('bent', '-')} | "
                      f"{r['jitter']:.2f} ({r.get('jitter_true', math.nan):.2f}) | {r['size_mm']:.1f} | {r['depth_m']:.3f} | "
                      f"{r['limit_frames']} / {r['pen_frames']} ({r['pen_max']:.2f} mm) | "
                      f"{r['seconds']:.1f} |" + (f" PA {r['pa_mm']:.2f} mm, wrist-relative {r['wrist_mm']:.2f} mm"
                                                 if "pa_mm" in r else ""), flush=True)
    if a.tail:
        tail_report(results)
    if a.detail:
        print("\nPer joint group, median (p95), hand sizes; ref = true 2D on views, detector 2D on videos; "
              "'detector' = detector 2D vs true 2D")
        print("| case | hand | variant | " + " | ".join(GROUPS) + " |")
        print("|---" * (3 + len(GROUPS)) + "|")
        for (case, side, name), r in results.items():
            for label, s in (("", r.get("vs_true", r["vs_det"])),) + ((("detector", r["detector_vs_true"]),)
                                                                       if "detector_vs_true" in r else ()):
                gp = s.get("groups_p95", {})
                print(f"| {case} | {side} | {label or name} | " + " | ".join(
                    f"{s['groups'][g]:.3f}" + (f" ({gp[g]:.3f})" if g in gp else "") for g in GROUPS) + " |")
        print("\nMean signed offset (ref - ours) in the hand's image frame (x along wrist -> middle MCP, y across), "
              "hand sizes, joints 0..20")
        for (case, side, name), r in results.items():
            o = r.get("vs_true", r["vs_det"])["offsets"]
            print(f"{case} {side} {name}: " + " ".join(f"{j}:({o[j, 0]:+.3f},{o[j, 1]:+.3f})" for j in range(21)))


if __name__ == "__main__":
    main()
