"""core.eval.plausibility on real captures: the final output is inside the joint limits and free of
finger-finger penetration deeper than 2 mm on every frame (issue 5), without giving up accuracy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.eval import metrics, plausibility
from core.capture import CaptureOptions, capture, load_intrinsics
from core.hand.load import load_model
from core.hand.mano import ManoLayer


def test_check_poses_flags_limits_and_penetration():
    layer = ManoLayer(load_model("right"))
    rot = torch.eye(3).repeat(3, 16, 1, 1)
    betas = torch.zeros(1, layer.n_betas)
    from core.solve import limits

    ang = torch.zeros(3, 15, 3)
    ang[1, 1, 0] = -torch.deg2rad(torch.tensor(40.0))  # index PIP bent backwards 40 deg
    ang[2, 0, 1], ang[2, 3, 1] = -torch.deg2rad(torch.tensor(30.0)), torch.deg2rad(torch.tensor(30.0))  # crossed
    rot[:, 1:] = limits.angles_to_rotmats(layer, ang, betas.expand(3, -1))
    lim, pen = plausibility.check_poses(layer, rot, betas)
    assert lim[0] < 1e-3 and pen[0] == 0.0  # the flat hand
    assert lim[1] > 5.0 and pen[1] == 0.0
    assert pen[2] > 2.0


def test_dev_crops_plausible_and_accurate(data_dir):
    """All 292 real dev crops: 0 frames > 5 deg outside the limits or > 2 mm penetrating, and the
    accuracy still beats raw MediaPipe by the issue's margin (PA <= 0.9x, wrist-relative <= 0.8x)."""
    dev = data_dir / "real_world_testset_dev"
    opts = CaptureOptions(input=str(dev / "images"), hands=1, K=load_intrinsics(f"{dev / 'labels.npz'}:K_crop"))
    clip, _ = capture(opts)
    h = int(np.argmax(clip.detected.sum(1)))
    p = plausibility.check_clip(clip, h)
    assert p.frames.size >= 285
    assert p.limit_frames == 0 and p.penetration_frames == 0, p.summary()
    with np.load(dev / "labels.npz") as z:
        gt = z["joints_cam"][clip.frame_index].astype(np.float64)
    det = clip.detected[h] & clip.valid[h]
    raw, ours = clip.landmarks_world[h][det].astype(np.float64), clip.joints[h][det].astype(np.float64)
    pa = metrics.pa_mpjpe(ours, gt[det]).mean() / metrics.pa_mpjpe(raw, gt[det]).mean()
    wr = metrics.mpjpe(ours, gt[det], root=0).mean() / metrics.mpjpe(raw, gt[det], root=0).mean()
    assert pa <= 0.9 and wr <= 0.8, (pa, wr)
