"""The fit on each torch device: the same detections fitted on the CPU and on a GPU, side by side in one run.

Each capture runs in this process with one detector (``--detector``, default hybrid: MediaPipe's networks on the
CPU, the same detections whatever ``--device`` says) and ``--device`` set to each of ``--devices``: the VAE, the IK,
the 2D-aware refinement and alignment, the limits, the penetration fix and the smoothing run there
(`core.capture.fit_device`). Timed: the fit phase (from the first "fit" progress event to the clip) and the whole
capture. The rounds alternate the devices' order; a GPU's first fit includes its start-up (CUDA context, kernels),
so the later rounds are the figure. Also printed: how far the devices' results are apart (joints, mm; local pose,
degrees), which is float rounding amplified by the iterative fit; and whether each device gave the same clip in every
round (on CUDA, atomic additions in index_add_ and in the gradients of gathers, e.g. the penetration fix's, sum in
no fixed order unless torch's deterministic mode is on).

Usage: python -m benchmarks.fit_device [--videos single_hand.mp4,two_hands.mp4] [--devices cpu,cuda] [--rounds 3]
                                       [--end N] [--detector hybrid]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from .common import need_data


def fit_once(video: str, device: str, detector: str, end: int | None):
    """(fit seconds, capture seconds, ClipResult) of one in-process capture."""
    from core.capture import CaptureOptions, run_capture

    gen = run_capture(CaptureOptions(input=video, end=end, workers=1, detector=detector, device=device))
    t0 = time.perf_counter()
    fit_start = None
    try:
        while True:
            ev = next(gen)
            if ev.stage == "fit" and fit_start is None:
                fit_start = time.perf_counter()
    except StopIteration as stop:
        clip, _ = stop.value
    t1 = time.perf_counter()
    return t1 - (fit_start or t1), t1 - t0, clip


def apart(a, b) -> str:
    """Joint distance (mm) median / max and local pose angle (deg) max between two clips' valid frames."""
    from core.rot import aa_to_rotmat
    import torch

    both = a.valid & b.valid
    d = np.linalg.norm(a.joints[both] - b.joints[both], axis=-1) * 1000
    ra = aa_to_rotmat(torch.as_tensor(a.hand_pose[both]).double())
    rb = aa_to_rotmat(torch.as_tensor(b.hand_pose[both]).double())
    cos = ((ra.transpose(-1, -2) @ rb).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    ang = np.degrees(np.arccos(np.clip(cos.numpy(), -1, 1)))
    same_valid = np.array_equal(a.valid, b.valid)
    return (f"joints {np.median(d):.3f} / {d.max():.3f} mm (median / max), local pose max {ang.max():.3f} deg, "
            f"valid frames {'the same' if same_valid else 'DIFFER'}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", default="single_hand.mp4,two_hands.mp4")
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--end", type=int, default=None, help="frames of each video (default: all)")
    ap.add_argument("--detector", default="hybrid")
    a = ap.parse_args(argv)
    devices = a.devices.split(",")
    for name in a.videos.split(","):
        video = str(need_data(f"video/{name}"))
        fits = {d: [] for d in devices}
        totals = {d: [] for d in devices}
        clips, first = {}, {}
        for r in range(a.rounds):
            for d in (devices if r % 2 == 0 else devices[::-1]):
                f, t, clips[d] = fit_once(video, d, a.detector, a.end)
                first.setdefault(d, clips[d])
                fits[d].append(f)
                totals[d].append(t)
                print(f"{name} round {r + 1} {d}: fit {f:.2f} s, capture {t:.2f} s "
                      f"({clips[d].n_frames} frames, {len(clips[d].sides)} hands, fit_device {clips[d].fit_device})",
                      flush=True)
        later = slice(1, None) if a.rounds > 1 else slice(None)
        med = {d: float(np.median(fits[d][later])) for d in devices}
        print(f"{name}: fit median{' after round 1' if a.rounds > 1 else ''}: "
              + ", ".join(f"{d} {med[d]:.2f} s" for d in devices)
              + "".join(f"; {devices[0]} / {d} = {med[devices[0]] / med[d]:.2f}x" for d in devices[1:]))
        for d in devices[1:]:
            print(f"{name}: {devices[0]} vs {d}: {apart(clips[devices[0]], clips[d])}")
        if a.rounds > 1:
            for d in dict.fromkeys(devices):
                same = all(np.array_equal(getattr(first[d], k), getattr(clips[d], k))
                           for k in ("joints", "hand_pose", "global_orient", "transl", "betas"))
                print(f"{name}: {d}, round 1 vs round {a.rounds}: "
                      + ("the same clip bit for bit" if same else apart(first[d], clips[d])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
