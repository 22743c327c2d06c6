"""IK + MANO forward throughput on CPU, batched: frames/s for joints only and with all vertices.

Usage: python -m benchmarks.ik_speed [--frames 10000]
"""
from __future__ import annotations

import argparse
import time

import torch

from core.solve import ik, limits
from core.hand.load import load_model
from core.hand.mano import ManoLayer


def measure(n: int, with_vertices: bool, repeats: int = 3) -> float:
    layer = ManoLayer(load_model("right"))
    g = torch.Generator().manual_seed(0)
    betas = torch.zeros(n, layer.n_betas)
    rot = limits.sample_poses(layer, n, g, betas)
    joints = layer(betas, None, None, None, with_vertices=False, rotmats=rot).joints21
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = ik.solve(layer, joints, betas)
            layer(betas, None, None, res.transl, with_vertices=with_vertices, rotmats=res.rotmats)
            best = min(best, time.perf_counter() - t0)
    return n / best


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=10000)
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    j = measure(a.frames, False)
    v = measure(a.frames, True)
    print(f"IK + MANO forward, {a.frames} frames batched, {torch.get_num_threads()} threads:")
    print(f"  joints only:        {j:10.0f} frames/s  ({j / 5000:.1f}x the 5,000 frames/s goal)")
    print(f"  joints + vertices:  {v:10.0f} frames/s  ({v / 5000:.1f}x the goal)")


if __name__ == "__main__":
    main()
