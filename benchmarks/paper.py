"""The paper's table on the project's held-out renders (issue 13 item 4): raw MediaPipe, today's pipeline, the
network's non-parametric branch and its MANO branch, on the same crop of every held-out image.

Every method reads the crop the tracker would cut (the label ROI jittered with a fixed seed,
`core.net.paper.data`): raw MediaPipe = the landmark network's world landmarks on that crop; today's pipeline =
`core.solve.pose.fit_hand` on MediaPipe's 2D, relative depth and world landmarks of that crop with the render's
K (the still-image capture: VAE, 2D-aware fit, limits, collisions), one image at a time; the network's branches
from the cached trunk feature. Figures (mean over the held-out crops, mm): PA-MPJPE, wrist-relative MPJPE (no
rotation alignment), PA-MPVPE (meshes only), edge-length error against the true mesh, mesh self-penetration
(`core.contact.hands.self_penetration`; the true meshes' own figure printed for reference), frames more than
5 deg outside the joint limits (MANO outputs: their rotations; joints-only outputs: the IK of their joints
before any limit projection, `benchmarks.samples_eval.raw_ik_excess_deg`).

Usage: python -m benchmarks.paper --synth out/synth/v1 --cache build/paper/feats --weights build/paper/paper_final.pt
       [--limit N] [--no-pipeline]
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT

sys.path.insert(0, str(ROOT))


def _rz(a: float) -> np.ndarray:
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


def ground_truth(synth: Path, rows: dict, layer) -> tuple[np.ndarray, np.ndarray]:
    """True joints (N, 21, 3) MANO-21 and vertices (N, V, 3) of the held-out rows, wrist-relative, net frame."""
    import torch

    labels = {}
    verts, joints = [], []
    for c, i, view, left in zip(rows["chunk"], rows["image"], rows["view"], rows["left"]):
        if c not in labels:
            labels[c] = dict(np.load(Path(synth) / f"chunk_{c:04d}" / "labels.npz"))
        z = labels[c]
        with torch.no_grad():
            o = layer(torch.as_tensor(z["betas"][i, :1], dtype=torch.float32), None, None,
                      torch.as_tensor(z["transl"][i, :1], dtype=torch.float32), with_vertices=True,
                      rotmats=torch.as_tensor(z["rotmats"][i, :1], dtype=torch.float32))
        v, j = o.vertices[0].numpy().astype(np.float64), o.joints21[0].numpy().astype(np.float64)
        if left:
            v, j = v * [-1, 1, 1], j * [-1, 1, 1]
        err = np.abs(j - z["joints3d"][i, 0]).max()
        if err > 1e-4:
            raise SystemExit(f"chunk {c} image {i}: the labels' MANO parameters miss its joints by {err * 1000:.2f} mm")
        verts.append((v - j[0]) @ view.T)
        joints.append((j - j[0]) @ view.T)
    return np.stack(joints), np.stack(verts)


def pipeline_rows(synth: Path, rows: dict, layers: dict, refiner) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Today's still-image pipeline on each crop's MediaPipe outputs: joints (N, 21, 3) MANO-21 and vertices,
    wrist-relative, net frame; limit excess (N,) degrees."""
    import torch

    from core.hand.model import MANO21_FROM_MP
    from core.net.paper.data import CROP, roi5
    from core.detect.torch_hands.pipeline import crop_matrix
    from core.solve import limits
    from core.solve.fit import FitConfig
    from core.solve.pose import fit_hand
    from core.rot import aa_to_rotmat

    K_all = {}
    J, V, viol = [], [], []
    for k, (c, i, view, left, roi) in enumerate(zip(rows["chunk"], rows["image"], rows["view"], rows["left"],
                                                    rows["roi"])):
        if c not in K_all:
            K_all[c] = np.load(Path(synth) / f"chunk_{c:04d}" / "labels.npz")["K"]
        K = K_all[c][i]
        sc = rows["mp_screen"][k].astype(np.float64)
        inv = np.linalg.inv(crop_matrix(roi5(roi), CROP))
        p = np.concatenate([sc[:, :2], np.ones((21, 1))], 1) @ inv.T
        px = p[:, :2] / p[:, 2:3]
        world = rows["mp_world"][k].astype(np.float64) @ _rz(float(roi[3])).T
        z = sc[:, 2] / CROP / 0.4 * float(roi[2]) / CROP
        side = "left" if left else "right"
        fit = fit_hand(layers[side], px[None].astype(np.float32), world[None].astype(np.float32), np.array([True]),
                       K[None], with_vertices=True, landmarks_z=z[None].astype(np.float32), image_width=CROP,
                       config=FitConfig(), refiner=refiner)
        j = fit.joints[0][MANO21_FROM_MP].astype(np.float64)
        v = fit.vertices[0].astype(np.float64)
        J.append((j - j[0]) @ view.T)
        V.append((v - j[0]) @ view.T)
        with torch.no_grad():
            aa = torch.as_tensor(np.concatenate([fit.global_orient[:1], fit.hand_pose[0]])[None], dtype=torch.float32)
            ang = limits.joint_angles(layers[side], aa_to_rotmat(aa), torch.as_tensor(fit.betas[None]))
        viol.append(float(np.asarray(limits.violations_deg(ang)).max()))
    return np.stack(J), np.stack(V), np.asarray(viol)


def mano_limit_excess(layer, rotmats, betas) -> np.ndarray:
    import torch

    from core.solve import limits

    with torch.no_grad():
        ang = limits.joint_angles(layer, rotmats, betas)
    return np.asarray(limits.violations_deg(ang)).reshape(len(rotmats), -1).max(1)


def run(synth: Path, cache: Path, weights: Path, limit: int | None, pipeline: bool) -> str:
    import torch

    from benchmarks.samples_eval import raw_ik_excess_deg
    from core.contact.hands import self_penetration
    from core.eval.metrics import mpjpe, pa_mpjpe
    from core.hand.load import load_model
    from core.hand.mano import ManoLayer
    from core.hand.model import MANO21_FROM_MP, MP_FROM_MANO21
    from core.net import load_refiner
    from core.net.paper.data import load_features
    from core.net.paper.model import edge_error_mm, mesh_edges
    from core.net.paper.train import load

    torch.set_num_threads(2)
    files = sorted(Path(cache).glob("feat_[0-9][0-9][0-9][0-9].npz"))
    rows = load_features(files, held_out=True)
    if not rows:
        raise SystemExit(f"{cache}: no held-out features")
    if limit:
        rows = {k: v[:limit] for k, v in rows.items()}
    n = len(rows["image"])
    layers = {s: ManoLayer(load_model(s)) for s in ("right", "left")}
    right = layers["right"]
    gt_j, gt_v = ground_truth(synth, rows, right)
    net, blob = load(weights)
    with torch.no_grad():
        outs = [net(torch.as_tensor(rows["feature"][k:k + 64].astype(np.float32))) for k in range(0, n, 64)]
    cat = lambda key: torch.cat([getattr(o, key) for o in outs]).numpy().astype(np.float64)  # noqa: E731
    np_j, np_v, m_j, m_v = cat("joints_np"), cat("verts_np"), cat("joints_mano"), cat("verts_mano")
    m_rot = torch.cat([o.rotmats for o in outs])
    m_betas = torch.cat([o.betas for o in outs])
    mp = rows["mp_world"].astype(np.float64)[:, MANO21_FROM_MP]
    mp = mp * np.where(rows["left"][:, None, None], [-1.0, 1.0, 1.0], [1.0, 1.0, 1.0])  # net frame: mirrored
    mp = mp - mp[:, :1]
    edges = mesh_edges(right.faces.numpy())
    methods = {"raw MediaPipe": (mp, None, raw_ik_excess_deg(mp[:, MP_FROM_MANO21].astype(np.float32), "right"))}
    t_pipe = None
    if pipeline:
        t0 = time.time()
        pj, pv, pviol = pipeline_rows(synth, rows, layers, load_refiner())
        t_pipe = time.time() - t0
        methods["today's pipeline"] = (pj, pv, pviol)
    methods["net: non-parametric"] = (np_j, np_v, raw_ik_excess_deg(np_j[:, MP_FROM_MANO21].astype(np.float32), "right"))
    methods["net: MANO branch"] = (m_j, m_v, mano_limit_excess(right, m_rot, m_betas))
    mp_mp = lambda a: a[:, MP_FROM_MANO21]  # noqa: E731  metrics take MediaPipe order (same set of joints)
    lines = [f"{'method':<22}{'PA-MPJPE':>9}{'wrist-rel':>10}{'PA-MPVPE':>9}{'edge':>7}{'self-pen':>9}"
             f"{'pen>2mm':>8}{'>5deg':>7}"]
    gt_pen = self_penetration(right, gt_v)
    for name, (j, v, viol) in methods.items():
        pa = pa_mpjpe(mp_mp(j), mp_mp(gt_j)).mean()
        wr = mpjpe(mp_mp(j), mp_mp(gt_j), root=0).mean()
        if v is not None:
            pav = pa_mpjpe(v, gt_v).mean()
            edge = edge_error_mm(v, gt_v, edges).mean()
            pen = self_penetration(right, v)
            cols = f"{pav:>9.2f}{edge:>7.2f}{pen.mean():>9.2f}{(pen > 2).mean() * 100:>7.1f}%"
        else:
            cols = f"{'-':>9}{'-':>7}{'-':>9}{'-':>8}"
        lines.append(f"{name:<22}{pa:>9.2f}{wr:>10.2f}{cols}{(np.asarray(viol) > 5).mean() * 100:>6.1f}%")
    lines.append(f"{'true meshes':<22}{'':>9}{'':>10}{'':>9}{'':>7}{gt_pen.mean():>9.2f}{(gt_pen > 2).mean() * 100:>7.1f}%")
    meta = blob["meta"]
    lines.append(f"{n} held-out crops (render chunks {sorted(set(rows['chunk'].tolist()))}); weights step {blob['step']}, "
                 f"trained on {meta.get('train_crops')} crops of chunks {meta.get('chunks')}, code {meta.get('code')}")
    lines.append("mm; self-pen: mean deepest mesh self-penetration, pen>2mm: frames deeper than 2 mm; >5deg: frames "
                 "more than 5 deg outside the joint limits (joints-only rows: of the IK of their joints)")
    if t_pipe is not None:
        lines.append(f"today's pipeline: {t_pipe:.0f} s for {n} crops (one fit_hand per image)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synth", type=Path, default=ROOT / "out" / "synth" / "v1")
    ap.add_argument("--cache", type=Path, default=ROOT / "build" / "paper" / "feats")
    ap.add_argument("--weights", type=Path, default=ROOT / "build" / "paper" / "paper_final.pt")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-pipeline", action="store_true")
    a = ap.parse_args(argv)
    print(run(a.synth, a.cache, a.weights, a.limit, not a.no_pipeline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
