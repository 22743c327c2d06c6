"""The refiner's ablation: detector joints with and without the VAE, before and after the IK.

    python -m core.net.ablation --clip out/dev_clip.npz --gt ../shared/data/real_world_testset_dev/labels.npz
    python -m core.net.ablation --clip out/demo/clip.npz --gt out/demo/ground_truth.npz

For the detected frames of hand slot ``--hand`` of a capture clip (its raw detector world landmarks,
``landmarks_world``), compares with the ground truth (``joints_cam`` rows = the clip's ``frame_index``):
* raw: the detector's joints; refined: `JointRefiner.refine` of them;
* ik(raw), ik(refined): forward kinematics of `core.solve.ik.solve` (one shape per clip from the median
  distances, `core.solve.shape.fit_betas`), i.e. what the model can make of each;
* pipeline: the clip's own fitted joints (``joints``), for reference.
Figures: PA-MPJPE (21 joints and the 20 non-wrist joints, mm) and, for the IK rows, joint-limit
violations (`core.solve.limits`): share of frames with any angle outside its range, and the mean summed excess (deg).
Evaluation only: nothing here is used for training. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from ..solve import ik, limits, shape
from ..hand.model import MANO21_FROM_MP, MP_FROM_MANO21
from ..hand.load import load_model
from ..hand.mano import ManoLayer
from ..eval.metrics import pa_mpjpe


def ik_joints(layer: ManoLayer, joints21: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """FK of the IK of joints (N, 21, 3) (MANO-21, right hand) with one shape for all: (joints (N, 21, 3)
    MANO-21, violations (N, 15, 3) degrees)."""
    with torch.no_grad():
        betas = shape.fit_betas(layer, shape.pair_lengths(joints21).median(0).values)
        bb = betas[None].expand(len(joints21), -1)
        res = ik.solve(layer, joints21, bb)
        out = layer(bb, res.global_orient, res.hand_pose, res.transl, with_vertices=False, rotmats=res.rotmats)
        viol = limits.violations_deg(limits.joint_angles(layer, res.rotmats, bb))
    return out.joints21, viol


def _figures(pred_mp: np.ndarray, gt_mp: np.ndarray, viol: np.ndarray | None = None) -> dict:
    row = {"pa_mpjpe_mm": round(float(pa_mpjpe(pred_mp, gt_mp).mean()), 2),
           "pa_mpjpe_nowrist_mm": round(float(pa_mpjpe(pred_mp[:, 1:], gt_mp[:, 1:]).mean()), 2)}
    if viol is not None:
        total = viol.sum((1, 2))
        row.update({"limit_viol_frames": round(float((total > 0).mean()), 3),
                    "limit_viol_mean_deg": round(float(total.mean()), 2)})
    return row


def ablation(clip_path: str, gt_path: str, hand: int = 0, weights: str | None = None) -> dict:
    """The ablation table (see the module docstring) for one clip and its ground truth."""
    from . import load_refiner

    with np.load(clip_path, allow_pickle=False) as c:
        det = c["detected"][hand].astype(bool)
        side = str(c["sides"][hand])
        rows = c["frame_index"][det]
        world = c["landmarks_world"][hand][det].astype(np.float32)
        pipeline = c["joints"][hand][det].astype(np.float64)
    with np.load(gt_path, allow_pickle=False) as g:
        gt = g["joints_cam"][rows].astype(np.float64)
    mirror = np.array([-1.0, 1.0, 1.0], np.float32) if side == "left" else np.ones(3, np.float32)
    raw = torch.as_tensor(world[:, MANO21_FROM_MP] * mirror)  # right-hand MANO-21
    refiner = load_refiner(path=weights)
    refined = refiner.refine(raw)
    from ..hand.gen import ensure_open_model

    ensure_open_model()  # generated into the user cache once (source checkout)
    layer = ManoLayer(load_model("right"))
    ik_raw, v_raw = ik_joints(layer, raw)
    ik_ref, v_ref = ik_joints(layer, refined)

    def back(j):  # right-hand MANO-21 torch -> the clip's side, MediaPipe order, numpy
        return (j.numpy().astype(np.float64) * mirror)[:, MP_FROM_MANO21]

    return {"clip": clip_path, "side": side, "frames": int(det.sum()), "weights": refiner.meta.get("corpus", ""),
            "raw": _figures(back(raw), gt), "refined": _figures(back(refined), gt),
            "ik(raw)": _figures(back(ik_raw), gt, v_raw), "ik(refined)": _figures(back(ik_ref), gt, v_ref),
            "pipeline": _figures(pipeline, gt)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.net.ablation", description=__doc__.split("\n")[0])
    ap.add_argument("--clip", required=True, help="capture clip (.npz) with landmarks_world")
    ap.add_argument("--gt", required=True, help="ground truth .npz with joints_cam (MediaPipe order)")
    ap.add_argument("--hand", type=int, default=0, help="hand slot of the clip")
    ap.add_argument("--weights", default=None, help="refiner weights (default: the shipped ones)")
    a = ap.parse_args(argv)
    print(json.dumps(ablation(a.clip, a.gt, a.hand, a.weights), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
