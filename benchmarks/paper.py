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

`--dev`: the real dev crops (static, known K; research data, evaluation only): raw MediaPipe and today's
pipeline (one capture), ``capture --model paper``, and the network's two branches on the pipeline's detections.

Usage: python -m benchmarks.paper --synth out/synth/v1 --cache build/paper/feats --weights build/paper/paper_final.pt
       [--limit N] [--no-pipeline]
       python -m benchmarks.paper --dev --weights build/paper/paper_final.pt [--out out/paper]
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
from core.progress import Reporter  # noqa: E402


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
    from core.net.paper.model import edge_error_mm, mesh_edges, separated
    from core.net.paper.train import load

    torch.set_num_threads(1)  # one thread: several times faster than two on the loaded 2-core machine
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
        anchor = [net.anchor_mesh(torch.as_tensor(rows["net_world"][k:k + 64])) for k in range(0, n, 64)] \
            if net.anchor else []
        outs = [separated(net, net(net.inputs(rows["feature"][k:k + 64].astype(np.float32), rows["net_world"][k:k + 64],
                                              rows["net_screen"][k:k + 64]), anchor=anchor[i] if anchor else None))
                for i, k in enumerate(range(0, n, 64))]
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
    if anchor:  # the anchored decoder's start: MediaPipe's world landmarks of the crop -> VAE -> IK -> the model
        a_v = torch.cat([a[0] for a in anchor]).numpy().astype(np.float64)
        a_j = torch.cat([a[1] for a in anchor]).numpy().astype(np.float64)
        methods["net: anchor alone"] = (a_j, a_v, np.zeros(len(a_j)))
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


def _capture(images: Path, labels: Path, out: Path, flags: tuple) -> Path:
    from core.capture import CaptureOptions, capture_to_file
    from core.cli import build_parser

    if out.is_file():
        return out
    a = build_parser().parse_args(["capture", str(images), "--out", str(out), "--static", "--hands", "1",
                                   "--intrinsics", f"{labels}:K_crop", *flags])
    out.parent.mkdir(parents=True, exist_ok=True)
    capture_to_file(CaptureOptions.from_args(a), out, Reporter("quiet"))
    return out


def run_dev(weights: Path, out_dir: Path) -> str:
    """The real dev crops (static, known K): today's pipeline, capture --model paper, and the network's two
    branches on the pipeline's detections (its crops), against the labels' 3D joints."""
    import cv2
    import torch

    from benchmarks.common import need_data
    from core.contact.hands import self_penetration
    from core.eval.evaluate import evaluate, load_gt
    from core.eval.metrics import mpjpe, pa_mpjpe
    from core.hand.load import load_model
    from core.hand.mano import ManoLayer
    from core.hand.model import MP_FROM_MANO21
    from core.io.clip import load_clip
    from core.eval.plausibility import LIMIT_DEG, PENETRATION_M, check_poses
    from core.solve import collide
    from core.net.paper.infer import PaperModel

    torch.set_num_threads(1)  # one thread: several times faster than two on the loaded 2-core machine
    root = need_data("real_world_testset_dev")
    labels = root / "labels.npz"
    t0 = time.time()
    pipe = load_clip(_capture(root / "images", labels, out_dir / "dev_pipeline.npz", ()))
    t1 = time.time()
    paper = load_clip(_capture(root / "images", labels, out_dir / f"dev_paper_{weights.stem}.npz",
                               ("--model", "paper", "--paper-weights", str(weights))))
    t2 = time.time()
    gt = load_gt(labels)
    lines = [f"{'method':<22}{'detected':>9}{'PA-MPJPE':>9}{'wrist-rel':>10}{'>5deg':>7}{'self-pen':>9}{'pen>2mm':>9}"]
    rp = evaluate(pipe, gt)
    rq = evaluate(paper, gt)
    for name, rep, row in (("raw MediaPipe", rp, "mediapipe"), ("today's pipeline", rp, "ours"),
                           ("capture --model paper", rq, "ours")):
        r = rep.rows[row]
        lines.append(f"{name:<22}{rep.n_detected:>9}{r['pa_mpjpe_mm']:>9.2f}{r['wrist_rel_mm']:>10.2f}"
                     f"{r.get('limit_viol_frames', '-'):>7}{'':>9}{r.get('penetration_frames', '-'):>9}")
    # the branches on the pipeline's detections
    model = PaperModel(weights, threads=1)
    h = pipe.hand(rp.side)
    with np.load(labels) as z:
        names, joints = z["names"], np.asarray(z["joints_cam"], np.float64)
        K_all = z["K_crop"]
    right = ManoLayer(load_model("right"))
    brs = ("anchor", "np", "mano") if model.net.anchor else ("np", "mano")
    got = {br: [] for br in brs}
    verts = {br: [] for br in brs}
    gts, rots, betas = [], [], []
    for k, fi in enumerate(pipe.frame_index):
        if not pipe.detected[h][k]:
            continue
        bgr = cv2.imread(str(root / "images" / f"{names[fi]}.jpg"))
        b = model.branches(bgr, np.asarray(pipe.landmarks_px[h][k], np.float64), K_all[fi], pipe.sides[h])
        mirror = np.array([-1.0, 1.0, 1.0]) if pipe.sides[h] == "left" else np.ones(3)
        for br in brs:
            got[br].append(b[f"{br}_joints"][MP_FROM_MANO21])
            verts[br].append(b[f"{br}_verts"] * mirror)
        rots.append(b["mano_rotmats"])
        betas.append(b["betas"])
        gts.append(joints[fi] - joints[fi][:1])
    g = np.stack(gts)
    # the MANO branch's plausibility, as the clips' columns: frames > 5 deg outside the limits, > 2 mm capsule
    # penetration (its own rotations and shape on the right-hand model: the network's frame)
    R, B = torch.as_tensor(np.stack(rots)), torch.as_tensor(np.stack(betas))
    viol = check_poses(right, R, B)[0]
    with torch.no_grad():  # capsules of each frame's own shape (check_poses measures a clip's one shape)
        cap = collide.penetration_depth(right(B, None, None, None, with_vertices=False, rotmats=R).joints21,
                                        collide.hand_capsules(right, B)).numpy() * 1000.0
    names_ = {"anchor": "net: anchor alone", "np": "net: non-parametric", "mano": "net: MANO branch"}
    for br, name in ((b, names_[b]) for b in brs):
        j = np.stack(got[br])
        pen = self_penetration(right, np.stack(verts[br]))
        plaus = f"{int((viol > LIMIT_DEG).sum()):>7}" if br == "mano" else f"{'':>7}"
        lines.append(f"{name:<22}{len(j):>9}{pa_mpjpe(j, g).mean():>9.2f}{mpjpe(j, g, root=0).mean():>10.2f}"
                     f"{plaus}{pen.mean():>9.2f}" + (f"{int((cap > PENETRATION_M * 1000).sum()):>9}" if br == "mano" else ""))
    lines.append(f"{len(pipe.frame_index)} dev crops (real, 256 px, known K); the branches: the network on the "
                 f"pipeline's detections (crops of its landmarks); capture {t1 - t0:.0f} s (pipeline), "
                 f"{t2 - t1:.0f} s (--model paper) on the loaded 2-core machine; weights {weights}")
    return "\n".join(lines)


def run_video(weights: Path, out_dir: Path, name: str = "single_hand.mp4") -> str:
    """A shared video (no 3D labels): today's pipeline vs capture --model paper: fingertip reprojection against
    the detector's 2D (median / p95 px), jitter, frames outside the joint limits, mesh self-penetration frames."""
    from benchmarks.common import need_data
    from core.eval import metrics
    from core.eval.plausibility import check_clip
    from core.eval.reproj import reprojection
    from core.io.clip import load_clip

    video = need_data(f"video/{name}")
    lines = [f"{'method':<22}{'frames':>7}{'tip med px':>11}{'tip p95 px':>11}{'jitter':>8}{'>5deg':>7}{'pen>2mm':>8}"]
    for label, flags, stem in (("today's pipeline", (), "pipeline"),
                               ("capture --model paper", ("--model", "paper", "--paper-weights", str(weights)),
                                f"paper_{weights.stem}")):
        out = out_dir / f"{Path(name).stem}_{stem}.npz"
        t0 = time.time()
        if not out.is_file():
            from core.capture import CaptureOptions, capture_to_file
            from core.cli import build_parser

            a = build_parser().parse_args(["capture", str(video), "--out", str(out), "--hands", "1", *flags])
            out.parent.mkdir(parents=True, exist_ok=True)
            capture_to_file(CaptureOptions.from_args(a), out, Reporter("quiet"))
        c = load_clip(out)
        h = 0
        det = c.detected[h] & c.valid[h]
        r = reprojection(c.joints[h][det], c.K[det], c.landmarks_px[h][det], joints=[4, 8, 12, 16, 20])
        px = (r.dist * r.hand_size[:, None])[:, [4, 8, 12, 16, 20]]
        px = px[np.isfinite(px)]
        pl = check_clip(c, h)
        lines.append(f"{label:<22}{int(det.sum()):>7}{np.median(px):>11.1f}{np.percentile(px, 95):>11.1f}"
                     f"{metrics.jitter(c.joints[h], c.valid[h]):>8.2f}{pl.limit_frames:>7}{pl.mesh_penetration_frames:>8}"
                     f"   ({time.time() - t0:.0f} s)")
    lines.append(f"{name}: fingertips' distance to the detector's 2D landmarks, px of the frame; jitter mm/frame^2 "
                 "(wrist-relative); >5deg, pen>2mm: frames")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synth", type=Path, default=ROOT / "out" / "synth" / "v1")
    ap.add_argument("--cache", type=Path, default=ROOT / "build" / "paper" / "feats")
    ap.add_argument("--weights", type=Path, default=ROOT / "build" / "paper" / "paper_final.pt")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-pipeline", action="store_true")
    ap.add_argument("--dev", action="store_true", help="the real dev crops instead of the held-out renders")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "paper", help="where the dev clips go")
    ap.add_argument("--video", help="a shared video (e.g. single_hand.mp4) instead of the held-out renders")
    a = ap.parse_args(argv)
    if a.video:
        print(run_video(a.weights, a.out, a.video))
    elif a.dev:
        print(run_dev(a.weights, a.out))
    else:
        print(run(a.synth, a.cache, a.weights, a.limit, not a.no_pipeline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
