"""The torch port of MediaPipe's hand networks and legacy Hands graph (issue 12 item 1) against MediaPipe.

(a) parity and throughput of the whole tracking pipeline: ``mediapipe.solutions.hands`` (via the
    project's MediaPipe backend) and `core.detect.torch_hands.TorchHands` on the first ``--frames`` frames
    of each shared video (frames decoded beforehand, so only detection is timed; both with max_hands 2,
    tracking mode, the capture's settings): per-frame landmark distance (px), world landmark difference
    (mm), frames with a hand, hands per frame equal, sides equal; frames/s of each and the ratio, measured
    in one run on the same frames.
    Beside it MediaPipe against itself on the same frames with ONE pixel changed by one level (the blue
    LSB of the corner pixel): the tracking loop's own sensitivity, the floor any re-implementation meets.
(s) the graph's steps one frame at a time against MediaPipe's legacy graph with its ROI streams as outputs
    (`reference.ReferenceTracker`): torch's palm ROIs vs ``hand_rects_from_palm_detections`` where the palm
    detector ran; the landmarks of torch's crop + network on MediaPipe's own ROIs of the frame
    (`pipeline.associate` of its palm ROIs and its previous frame's ROIs) vs its landmarks; torch's
    landmarks -> ROI on MediaPipe's landmarks vs ``hand_rects_from_landmarks``.
(b) the landmark network alone on the same ROIs (the torch pipeline's ROIs of (a), every 4th frame):
    torch vs MediaPipe's own TFLite interpreter (`reference.ReferenceNet`), landmarks projected to image
    px, world landmarks in mm; per-forward time, batch 1, alternated input by input in one process, of the
    interpreter (with its small graph's overhead), torch as `TorchHands` runs it on the CPU (traced + frozen,
    one thread) and torch's plain module on the process's threads; the palm network likewise.
(c) ``--device cuda``: the landmark network batched on the GPU: hand crops/s at several batch sizes in
    fp32 and fp16 (autocast), fp16's landmark difference to fp32 (px of the 224 crop), grid_sample crops/s;
    the palm network's frames/s batched; and (a) with the torch detector on the GPU (crops by grid_sample).
    ``--costs`` runs (c) alone, on the CPU too (one thread, as the detector runs there; bf16 autocast as the
    half precision): what batching and lower precision could buy on this CPU, and half precision's landmark
    difference on the tracker's real crops of the videos' first ``--frames`` frames.

(d) ``--schedule``: whole videos, MediaPipe against the torch or hybrid detector with given palm schedules: detections,
    landmarks and sides against MediaPipe's, the palm detector's runs, CPU and throughput (each its own process).

Usage: python -m benchmarks.torch_hands [--frames 120] [--rounds 3] [--videos single_hand.mp4,two_hands.mp4]
                                        [--device cpu|cuda] [--batches 1,64,256,1024]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.common import need_data


def load_frames(path, n: int) -> list[np.ndarray]:
    from core.io.video import open_video

    return [f for _, (_, f) in zip(range(n), open_video(path))]


def child(backend: str, video: str, n_frames: int, device: str, out: str) -> None:
    """One detector over the first frames of one video (``n_frames`` <= 0: all of them) in this process alone
    (MediaPipe's threads slow torch down in a shared process and the other way round): per-frame hands, the
    detection time (wall and this process's CPU, around the detector's calls only: frames are decoded in
    between) and the palm detector's runs to ``out`` (.npz), plus the torch pipeline's ROIs of every 4th frame.
    ``backend`` "torch:K" runs the torch detector with ``palm_every`` K, "torch:K:G" also with ``palm_grace`` G;
    "hybrid" / "hybrid:K" / "hybrid:K:G" the hybrid detector (MediaPipe's subgraphs; no torch imported)."""
    from core.detect import create_detector, make_config
    from core.io.video import open_video

    path = need_data(f"video/{video}")
    frames = (f for _, (_, f) in zip(range(n_frames) if n_frames > 0 else iter(int, 1), open_video(path)))
    perturb = backend == "mediapipe-perturbed"  # MediaPipe's own noise floor: one pixel one level off per frame
    if perturb:
        backend = "mediapipe"
    palm_every = palm_grace = None
    if backend.startswith(("torch:", "hybrid:")):
        parts = backend.split(":")
        backend, palm_every = parts[0], int(parts[1])
        palm_grace = int(parts[2]) if len(parts) > 2 else None
    if backend == "hybrid":
        from core.detect.hybrid import HybridHands

        det = HybridHands(make_config(name="hybrid", static=False, max_hands=2), palm_every=palm_every,
                          palm_grace=palm_grace)
    elif backend == "torch":
        from core.detect.torch_hands.detector import TorchHands

        first = next(iter(open_video(path)))[1]
        with TorchHands(make_config(name="torch", static=False, max_hands=2, device=device)) as warm:
            warm.detect(first)  # kernels and allocations outside the timing
        det = TorchHands(make_config(name="torch", static=False, max_hands=2, device=device), palm_every=palm_every,
                          palm_grace=palm_grace)
    else:
        det = create_detector("mediapipe", static=False, max_hands=2)
    hands, rois, dt, cpu = [], [], 0.0, 0.0
    sync = lambda: None  # noqa: E731 - the torch detector on a GPU: its queued work inside the timing
    if backend == "torch" and device == "cuda":
        import torch

        sync = torch.cuda.synchronize
    with det:
        for k, f in enumerate(frames):
            if perturb:
                f[0, 0, 0] ^= 1
            sync()
            t, c = time.perf_counter(), time.process_time()
            hs = det.detect(f)
            sync()
            dt += time.perf_counter() - t
            cpu += time.process_time() - c
            hands.append(hs)
            if backend == "torch" and k % 4 == 0:
                rois += [(k, r.rect) for r in det.last]
        palm_runs = getattr(det, "palm_runs", -1)
    flat = [(k, h) for k, hs in enumerate(hands) for h in hs]
    np.savez(out, seconds=dt, cpu=cpu, palm_runs=palm_runs, n=len(hands), frame=np.array([k for k, _ in flat], int),
             px=np.array([h.landmarks_px for _, h in flat]).reshape(-1, 21, 2),
             world=np.array([h.world for _, h in flat]).reshape(-1, 21, 3),
             side=np.array([h.side for _, h in flat], "<U5"), score=np.array([h.score for _, h in flat]),
             roi_frame=np.array([k for k, _ in rois], int), roi=np.array([r for _, r in rois]).reshape(-1, 5))


def run_child(backend: str, video: str, n_frames: int, device: str, stats: dict | None = None) -> tuple[list, float, list]:
    import subprocess
    import sys
    import tempfile
    from types import SimpleNamespace

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.npz")
        subprocess.run([sys.executable, "-m", "benchmarks.torch_hands", "--child", backend, "--videos", video,
                        "--frames", str(n_frames), "--device", device, "--out", out], check=True,
                       stderr=subprocess.DEVNULL)
        z = dict(np.load(out))
    if stats is not None:
        stats.update(cpu=float(z["cpu"]), palm_runs=int(z["palm_runs"]))
    per = [[] for _ in range(int(z["n"]))]
    for k, px, w, side, score in zip(z["frame"], z["px"], z["world"], z["side"], z["score"]):
        per[k].append(SimpleNamespace(landmarks_px=px, world=w, side=str(side), score=float(score)))
    return per, float(z["seconds"]), list(zip(z["roi_frame"].tolist(), z["roi"]))


def compare(want, got) -> dict:
    """Landmark px distances, world mm differences and counts between two detectors' per-frame hands."""
    from core.detect.base import nearest_hands

    px, mm, same_n, same_side, n_want, n_got, px_same = [], [], 0, 0, 0, 0, []
    for a, b in zip(want, got):
        n_want += bool(a)
        n_got += bool(b)
        same_n += len(a) == len(b)
        n_px = len(px)
        for ha, hb, e in nearest_hands(a, b):
            px.append(e)
            mm.append(np.abs(ha.world - hb.world).max() * 1000)
            same_side += ha.side == hb.side
        if len(a) == len(b):
            px_same += px[n_px:]
    px = np.concatenate(px) if px else np.full(1, np.nan)
    px_same = np.concatenate(px_same) if px_same else np.full(1, np.nan)
    return {"px_median": float(np.median(px)), "px_median_same_count": float(np.median(px_same)), "px_p99": float(np.percentile(px, 99)), "px_max": float(px.max()),
            "world_mm_max": float(max(mm) if mm else np.nan), "frames_with_hand": (n_want, n_got),
            "same_hand_count": same_n, "same_side": same_side, "hands": sum(len(a) for a in want)}


def section_a(videos, n_frames, device, rounds) -> list:
    kept = []
    for video in videos:
        t_mps, t_ths = [], []
        for r in range(rounds):  # alternated, each its own process: the machine's load moves in between
            want, t_mp, _ = run_child("mediapipe", video, n_frames, "cpu")
            got, t_th, rois = run_child("torch", video, n_frames, device)
            t_mps.append(t_mp)
            t_ths.append(t_th)
        floor = compare(want, run_child("mediapipe-perturbed", video, n_frames, "cpu")[0])
        c = compare(want, got)
        n = len(want)
        print(f"(a) {video}, {n} frames, device {device}: landmarks "
              f"{c['px_median']:.3f} px median, {c['px_p99']:.3f} p99, {c['px_max']:.3f} max; world max "
              f"{c['world_mm_max']:.3f} mm; frames with a hand mediapipe {c['frames_with_hand'][0]} / torch "
              f"{c['frames_with_hand'][1]}; same hand count on {c['same_hand_count']}/{n} frames; same side "
              f"{c['same_side']}/{c['hands']} hands")
        print(f"    MediaPipe vs MediaPipe with one pixel one level off: {floor['px_median']:.3f} px median, "
              f"{floor['px_p99']:.3f} p99, {floor['px_max']:.3f} max; world max {floor['world_mm_max']:.3f} mm; "
              f"frames with a hand {floor['frames_with_hand'][1]}; same side {floor['same_side']}/{floor['hands']}")
        ratios = ", ".join(f"{a / b:.2f}" for a, b in zip(t_mps, t_ths))
        print(f"    detection only, each in its own process, {rounds} alternated rounds: mediapipe "
              f"{n / np.median(t_mps):.1f} frames/s, torch ({device}) {n / np.median(t_ths):.1f} frames/s (medians), "
              f"torch / mediapipe = {np.median(t_mps) / np.median(t_ths):.2f}x (rounds: {ratios})")
        if rois:
            frames = load_frames(need_data(f"video/{video}"), max(k for k, _ in rois) + 1)
            kept += [(frames[k], r) for k, r in rois]
    return kept


def section_steps(videos, n_frames) -> None:
    import cv2

    from core.detect import make_config
    from core.detect.torch_hands import pipeline as P
    from core.detect.torch_hands.detector import TorchHands
    from core.detect.torch_hands.reference import ReferenceTracker

    for video in videos:
        frames = load_frames(need_data(f"video/{video}"), n_frames)
        h, w = frames[0].shape[:2]
        ref = ReferenceTracker(max_hands=2)
        th = TorchHands(make_config(name="torch", static=False, max_hands=2))
        palm_d, lm_px, next_d, n_palm, same_n, prev = [], [], [], 0, 0, []
        try:
            for f in frames:
                r = ref.process(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
                if r["palm_rects"]:
                    n_palm += 1
                    mine = [P.palm_to_rect(d, w, h) for d in th.palms(f)[:2]]
                    same_n += len(mine) == len(r["palm_rects"])
                    palm_d += [np.abs(a - b).max() for a, b in zip(mine, r["palm_rects"])]
                got = [x for x in th.hands_in(f, P.associate(r["palm_rects"], prev)) if x.presence > 0.5]
                same_n += len(got) == len(r["landmarks"])
                lm_px += [np.linalg.norm((a[:, :2] - b.landmarks[:, :2]) * [w, h], axis=1).max()
                          for a, b in zip(r["landmarks"], got)]
                next_d += [np.abs(P.landmarks_to_rect(a, w, h) - b).max() for a, b in zip(r["landmarks"], r["next_rects"])]
                prev = r["next_rects"]
        finally:
            ref.close()
            th.close()
        lm_px = np.array(lm_px)
        print(f"(s) {video}, {len(frames)} frames, steps on MediaPipe's own inputs: palm ROIs ({n_palm} frames "
              f"with palm detection) max {max(palm_d, default=np.nan):.1e}; landmarks from its ROIs (per-hand max "
              f"over 21 points) {np.median(lm_px):.4f} px median, {lm_px.max():.4f} max; ROI from its landmarks max "
              f"{max(next_d):.1e} (normalised); hand counts equal on {same_n}/{len(frames) + n_palm} steps")


def section_b(samples, rounds: int = 3) -> None:
    """Parity on the same crops, then per-forward times, batch 1, CPU, alternated crop by crop in one
    process: MediaPipe's interpreter (through its small graph), torch as `TorchHands` runs it on the CPU
    (traced + frozen, 1 intra-op thread), and torch's plain module on the process's threads (how it ran
    before); the palm network likewise on the letterboxed frames."""
    import torch

    from core.detect.torch_hands import pipeline as P
    from core.detect.torch_hands.net import frozen, load_net
    from core.detect.torch_hands.reference import ReferenceNet

    threads = torch.get_num_threads()
    crops = []
    for f, rect in samples:
        h, w = f.shape[:2]
        roi, pad = P.pad_roi(P.roi_pixels(rect, w, h))
        crops.append((np.ascontiguousarray(P.crop_cv2(f, roi, 224, False)[:, :, ::-1]), rect, pad, w, h))
    palms = []
    for f, _ in samples[::4]:
        roi, _ = P.letterbox(f.shape[1], f.shape[0])
        palms.append(np.ascontiguousarray(P.crop_cv2(f, roi, 192, True)[:, :, ::-1]))

    def as_x(img):
        return (torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255).contiguous(memory_format=torch.channels_last)

    for name, imgs in (("landmark", [c[0] for c in crops]), ("palm", palms)):
        eager = load_net(name)
        torch.set_num_threads(1)
        fast = frozen(eager)
        torch.set_num_threads(threads)
        ref = ReferenceNet(name)
        times = {"tflite": [], "torch": [], "eager": []}
        outs = []
        try:
            for variant, nt in (("tflite", 0), ("torch", 1), ("eager", threads)):  # warm-up
                _run(variant, ref, fast, eager, as_x(imgs[0]), imgs[0], nt, threads)
            for r in range(rounds):
                for i, img in enumerate(imgs):
                    x = as_x(img)
                    order = [("tflite", 0), ("torch", 1), ("eager", threads)]
                    if (i + r) % 2:
                        order.reverse()
                    for variant, nt in order:
                        dt, out = _run(variant, ref, fast, eager, x, img, nt, threads)
                        times[variant].append(dt)
                        if r == 0 and variant in ("tflite", "torch"):
                            outs.append((variant, i, out))
        finally:
            ref.close()
        if name == "landmark":
            got = {i: o for v, i, o in outs if v == "torch"}
            want = {i: o for v, i, o in outs if v == "tflite"}
            px, mm = [], []
            for i, (crop, rect, pad, w, h) in enumerate(crops):
                a, aw = P.project_landmarks(got[i][0], got[i][3], rect, pad)
                b, bw = P.project_landmarks(want[i][0], want[i][3], rect, pad)
                px.append(np.linalg.norm((a[:, :2] - b[:, :2]) * np.array([w, h]), axis=1))
                mm.append(np.abs(aw - bw).max() * 1000)
            px = np.concatenate(px)
            print(f"(b) landmark network on the same {len(crops)} ROIs vs MediaPipe's TFLite interpreter: "
                  f"{np.median(px):.4f} px median, {np.percentile(px, 99):.4f} p99, {px.max():.4f} max (image px); "
                  f"world max {max(mm):.4f} mm")
        med = {k: float(np.median(v)) * 1000 for k, v in times.items()}
        print(f"    {name} network per forward, batch 1, CPU, {len(imgs)} inputs x {rounds} rounds alternated "
              f"(medians): tflite+graph {med['tflite']:.1f} ms, torch as TorchHands runs it (frozen, 1 thread) "
              f"{med['torch']:.1f} ms, torch eager on {threads} threads {med['eager']:.1f} ms; torch / tflite "
              f"throughput = {med['tflite'] / med['torch']:.2f}x (eager: {med['tflite'] / med['eager']:.2f}x)")


def _run(variant, ref, fast, eager, x, img, nt, threads):
    """One timed forward of one variant: (seconds, outputs as flat numpy arrays)."""
    import torch

    if variant == "tflite":
        t = time.perf_counter()
        out = ref.run(img)
        return time.perf_counter() - t, out
    torch.set_num_threads(nt)
    try:
        with torch.inference_mode():
            t = time.perf_counter()
            out = (fast if variant == "torch" else eager)(x)
            dt = time.perf_counter() - t
    finally:
        torch.set_num_threads(threads)
    return dt, [o[0].numpy().ravel() for o in out]


def section_c(batches, device) -> None:
    import torch

    from core.detect.torch_hands import pipeline as P
    from core.detect.torch_hands.net import load_net

    dev = torch.device(device)
    if dev.type == "cpu":  # as TorchHands runs its networks on the CPU
        torch.set_num_threads(1)
    net = load_net("landmark", dev)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    gen = torch.Generator(device="cpu").manual_seed(0)
    half, half_name = (torch.float16, "fp16") if dev.type == "cuda" else (torch.bfloat16, "bf16")
    for bs in batches:
        x = torch.rand(bs, 3, 224, 224, generator=gen).to(dev)
        for mode in ("fp32", half_name):
            ctx = torch.autocast(dev.type, dtype=half) if mode != "fp32" else torch.autocast(dev.type, enabled=False)
            with torch.inference_mode(), ctx:
                for _ in range(3):
                    net(x)
                sync()
                reps = max(3, int((2048 if dev.type == "cuda" else 96) / bs))
                t = time.perf_counter()
                for _ in range(reps):
                    out = net(x)
                sync()
                dt = time.perf_counter() - t
            if mode == "fp32":
                ref = out[0].float()
            diff = (out[0].float() - ref).reshape(bs, 21, 3)[..., :2].norm(dim=-1)
            print(f"(c) landmark network, {device}, batch {bs}, {mode}: {bs * reps / dt:.0f} crops/s; landmarks vs "
                  f"fp32 {diff.median().item():.4f} px median, {diff.max().item():.4f} max (224-px crop)")
    # crops by grid_sample from one 1280x720 frame on the device
    frame = torch.rand(3, 720, 1280, generator=gen).mul(255).to(dev)
    rois = [np.array([640 + 3 * i % 300, 360, 300, 300, 0.01 * i], np.float32) for i in range(256)]
    P.crop_torch(frame, rois, 224, False)
    sync()
    t = time.perf_counter()
    for _ in range(3):
        P.crop_torch(frame, rois, 224, False)
    sync()
    print(f"(c) grid_sample crops, {device}: {3 * 256 / (time.perf_counter() - t):.0f} crops/s (batch 256)")
    palm = load_net("palm", dev)
    for bs in (1, 32):
        x = torch.rand(bs, 3, 192, 192, generator=gen).to(dev)
        with torch.inference_mode():
            palm(x)
            sync()
            t = time.perf_counter()
            for _ in range(5):
                palm(x)
            sync()
        print(f"(c) palm network, {device}, batch {bs}, fp32: {5 * bs / (time.perf_counter() - t):.0f} frames/s")


def section_d(videos, n_frames, device, rounds, schedules) -> None:
    """The palm detector's schedule (`ScheduledHands.palm_every`): per video, MediaPipe and the torch detector with
    each ``palm_every`` (or the hybrid detector: MediaPipe's own subgraphs on the same schedule), each its own
    process, ``rounds`` rounds in alternating order: frames with a hand, hands per frame, landmark distance and sides against MediaPipe's (first round), palm runs, detection wall and CPU
    seconds; ratios to MediaPipe of the same round."""
    configs = ["mediapipe"] + [k if k.startswith(("torch", "hybrid")) else f"torch:{k}" for k in schedules]
    for video in videos:
        res = {c: [] for c in configs}
        hands = {}
        for r in range(rounds):
            for c in (configs if r % 2 == 0 else configs[::-1]):
                stats = {}
                per, secs, _ = run_child(c, video, n_frames, device, stats)
                res[c].append((len(per) / secs, stats["cpu"] / len(per) * 1000, stats["palm_runs"]))
                hands.setdefault(c, per)
        want = hands["mediapipe"]
        n = len(want)
        two = sum(len(a) == 2 for a in want)
        print(f"(d) {video}, {n} frames, device {device}, {rounds} rounds alternated: MediaPipe: hand on "
              f"{sum(map(bool, want))} frames, 2 hands on {two}; {np.median([x[0] for x in res['mediapipe']]):.1f} "
              f"frames/s, {np.median([x[1] for x in res['mediapipe']]):.1f} CPU ms a frame (medians)")
        for c in configs[1:]:
            got = hands[c]
            cmp = compare(want, got)
            ratios = [res[c][r][0] / res["mediapipe"][r][0] for r in range(rounds)]
            cpu_ratios = [res["mediapipe"][r][1] / res[c][r][1] for r in range(rounds)]
            d_frames = sum(map(bool, got)) - sum(map(bool, want))
            print(f"    {c:>10}: hand on {sum(map(bool, got))} frames ({d_frames:+d}, "
                  f"{100 * d_frames / max(sum(map(bool, want)), 1):+.2f} %), 2 hands on {sum(len(g) == 2 for g in got)} "
                  f"({sum(len(g) == 2 for g in got) - two:+d}); same hand count on {cmp['same_hand_count']}/{n}; "
                  f"landmarks {cmp['px_median']:.3f} px median ({cmp['px_median_same_count']:.3f} on frames with the same "
                  f"hand count), {cmp['px_p99']:.2f} p99; same side "
                  f"{cmp['same_side']}/{cmp['hands']}; palm ran on {res[c][0][2]} frames; "
                  f"{np.median([x[0] for x in res[c]]):.1f} frames/s, {np.median([x[1] for x in res[c]]):.1f} CPU ms a "
                  f"frame; throughput / MediaPipe's {np.median(ratios):.2f}x ({', '.join(f'{x:.2f}' for x in ratios)}), "
                  f"CPU {np.median(cpu_ratios):.2f}x", flush=True)


def half_on_real_crops(videos, n_frames: int, device: str) -> None:
    """The landmark network in half precision (bf16 on the CPU, fp16 on a GPU; autocast) against fp32 on the
    crops the torch tracker cuts from the first ``n_frames`` of each video: landmark difference in image px,
    world landmarks in mm (the parity budget: 0.5 px median, 1.5 px p99, 1 mm)."""
    import torch

    from core.detect.base import DetectorConfig
    from core.detect.torch_hands import pipeline as P
    from core.detect.torch_hands.detector import TorchHands
    from core.detect.torch_hands.net import load_net

    dev = torch.device(device)
    half = torch.float16 if dev.type == "cuda" else torch.bfloat16
    net = load_net("landmark", dev)
    for video in videos:
        det = TorchHands(DetectorConfig(max_hands=2), device="cpu")
        px, mm = [], []
        for f in load_frames(need_data("video") / video, n_frames):
            h, w = f.shape[:2]
            rects = [r.rect for r in det.process(f)]
            if not rects:
                continue
            rois, pads = zip(*(P.pad_roi(P.roi_pixels(r, w, h)) for r in rects))
            x = det._crops(f, None, list(rois), P.LANDMARK_SIZE, border_zero=False).to(dev)
            with torch.inference_mode():
                a = [t.float().cpu().numpy() for t in net(x)]
                with torch.autocast(dev.type, dtype=half):
                    b = [t.float().cpu().numpy() for t in net(x)]
            for i, r in enumerate(rects):
                la, wa = P.project_landmarks(a[0][i], a[3][i], r, pads[i])
                lb, wb = P.project_landmarks(b[0][i], b[3][i], r, pads[i])
                px.append(np.linalg.norm((la[:, :2] - lb[:, :2]) * [w, h], axis=-1))
                mm.append(np.linalg.norm(wa - wb, axis=-1) * 1000.0)
        px, mm = np.concatenate(px), np.concatenate(mm)
        print(f"(c) landmark network on {video}'s tracked crops ({n_frames} frames), {device}, {half} vs fp32: "
              f"landmarks {np.median(px):.2f} px median, {np.percentile(px, 99):.2f} p99, {px.max():.2f} max; "
              f"world {np.median(mm):.2f} mm median, {mm.max():.2f} max")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--videos", default="single_hand.mp4,two_hands.mp4")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batches", default="1,64,256,1024")
    ap.add_argument("--rounds", type=int, default=3, help="alternated timing rounds of (a)")
    ap.add_argument("--skip-network", action="store_true", help="skip (b)")
    ap.add_argument("--skip-steps", action="store_true", help="skip (s)")
    ap.add_argument("--schedule", default="",
                    help="only (d): whole videos (--frames 0) or the first --frames, MediaPipe against the torch "
                         "detector with each of these palm_every values (e.g. 1,3,5,10; K:G also sets palm_grace G), "
                         "or the hybrid detector: hybrid, hybrid:K, hybrid:K:G (e.g. --schedule hybrid:1,hybrid,5)")
    ap.add_argument("--costs", action="store_true",
                    help="only (c), on --device (the CPU too: one thread, bf16 autocast for the half precision)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    os.environ.setdefault("HANDCAP_CACHE", "build/cache")
    if a.child:
        return child(a.child, a.videos, a.frames, a.device, a.out)
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {a.device}"
          + (f" ({torch.cuda.get_device_name()})" if a.device == "cuda" else ""))
    if a.costs:
        section_c([int(b) for b in a.batches.split(",")], a.device)
        half_on_real_crops([v for v in a.videos.split(",") if v], a.frames, a.device)
        return
    if a.schedule:
        return section_d([v for v in a.videos.split(",") if v], a.frames, a.device, a.rounds,
                         [k.strip() for k in a.schedule.split(",") if k.strip()])
    if not a.skip_steps:
        section_steps([v for v in a.videos.split(",") if v], a.frames)
    samples = section_a([v for v in a.videos.split(",") if v], a.frames, a.device, a.rounds)
    if a.device == "cuda":
        section_c([int(b) for b in a.batches.split(",")], a.device)
    if not a.skip_network:
        section_b(samples, a.rounds)


if __name__ == "__main__":
    main()
