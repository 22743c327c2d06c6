"""Hand-hand and mesh self-penetration (issue 10 item 2): speed, validation on built poses, two_hands.mp4.

(a) `core.contact.hands.hand_in_hand` on 300 frames of two hands facing palm to palm, pushed -30..+10 mm
    through each other (the right model and its mirror image, the left model): seconds, with the default
    ``reach`` and with every vertex measured; the torch version (with the backward pass) on the same frames.
(b) `self_penetration` (mesh) against `core.solve.collide.penetration_depth` (capsules) on built poses:
    the flat hand, fists, the index abducted into the middle finger, thumb CMC flexion, and poses sampled
    inside the joint limits (`core.solve.limits.sample_poses`): frames > 2 mm by each, agreement, ms a frame.
(c) two_hands.mp4: per-frame hand-hand penetration of a captured clip (``--clip``, else captured into
    out/hands/two_hands.npz with ``python -m core capture``), frames > 2 mm, deepest, the intersection
    volume (2 mm voxels) of the deepest frames.

Usage: python -m benchmarks.hands [--clip CLIP] [--samples N]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import DATA, ROOT


def facing(right, left, push_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, V, 3) rest right hands and (T, V, 3) left hands facing them palm to palm, pushed in by push_mm."""
    palmar = np.array([0.0, -1.0, 0.0])
    v = right.v_template.astype(np.float64)
    c = (v @ palmar).max() - np.asarray(push_mm) / 2000.0
    b = left.v_template.astype(np.float64) @ np.diag([-1.0, -1.0, 1.0])
    return np.repeat(v[None], len(c), 0), b[None] + 2 * c[:, None, None] * palmar


def speed(right, left) -> None:
    import torch

    from core.contact import hands

    push = np.linspace(-30, 10, 300)
    a, b = facing(right, left, push)
    for reach in (hands.REACH_M, None):
        t0 = time.perf_counter()
        depth, d_a, _ = hands.hand_in_hand(a, b, right.faces, faces_b=left.faces, reach=reach)
        dt = time.perf_counter() - t0
        label = f"reach {reach * 1000:.0f} mm" if reach else "every vertex"
        print(f"hand_in_hand, 300 frames ({int(np.isfinite(d_a).any(1).sum())} measured, {int((depth > 0).sum())} "
              f"penetrating), {label}: {dt:.2f} s")
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    t0 = time.perf_counter()
    da, db = hands.hand_in_hand_torch(ta, tb, right.faces, faces_b=left.faces)
    (torch.relu(-da).square().sum() + torch.relu(-db).square().sum()).backward()
    print(f"hand_in_hand_torch + backward, same frames: {time.perf_counter() - t0:.2f} s")
    print("depth vs push (mm): " + ", ".join(f"{p:.0f}->{d:.2f}" for p, d in zip(push[::30], depth[::30])))


def self_pen(n_samples: int) -> None:
    import torch

    from core.contact import hands
    from core.hand.load import load_model
    from core.hand.mano import ManoLayer
    from core.hand.model import FINGERS
    from core.solve import collide, limits

    layer = ManoLayer(load_model("right"), dtype=torch.float64)
    betas = torch.zeros(1, layer.n_betas, dtype=torch.float64)
    caps = collide.hand_capsules(layer, betas)

    def run(rot):
        with torch.no_grad():
            out = layer(betas.expand(len(rot), -1), None, None, None, rotmats=rot)
        t0 = time.perf_counter()
        pairs = hands.self_penetration_pairs(layer, out.vertices)
        dt = time.perf_counter() - t0
        return pairs, collide.penetration_depth(out.joints21, caps).numpy() * 1000.0, dt

    def posed(angles):
        eye = torch.eye(3, dtype=torch.float64).expand(len(angles), 1, 3, 3)
        return torch.cat([eye, limits.angles_to_rotmats(layer, angles, betas.expand(len(angles), -1))], 1)

    rows = []
    ang = torch.zeros(4, 15, 3, dtype=torch.float64)
    for i, (mcp, pip, dip) in enumerate([(0, 0, 0), (70, 100, 70), (90, 110, 90), (95, 120, 95)]):
        for name in ("index", "middle", "ring", "pinky"):
            j1, j2, j3 = FINGERS[name][0]
            ang[i, j1 - 1, 0], ang[i, j2 - 1, 0], ang[i, j3 - 1, 0] = np.radians([mcp, pip, dip])
    pairs, cap, _ = run(posed(ang))
    for i, name in enumerate(["flat", "fist 70/100/70", "fist 90/110/90", "fist 95/120/95 (limits' ends)"]):
        rows.append((name, pairs[i].max(), pairs[i, :5, :5].max(), cap[i]))
    degs = [8, 10, 12, 14, 16, 20, 25, 30]
    ang = torch.zeros(len(degs), 15, 3, dtype=torch.float64)
    ang[:, 0, 1] = -torch.deg2rad(torch.tensor(degs, dtype=torch.float64))
    pairs, cap, _ = run(posed(ang))
    for i, d in enumerate(degs):
        rows.append((f"index abducted {d} deg into the middle", pairs[i].max(), pairs[i, :5, :5].max(), cap[i]))
    flex = [0, 10, 20, 30, 50, 70]
    ang = torch.zeros(len(flex), 15, 3, dtype=torch.float64)
    ang[:, FINGERS["thumb"][0][0] - 1, 0] = torch.deg2rad(torch.tensor(flex, dtype=torch.float64))
    pairs, cap, _ = run(posed(ang))
    for i, f in enumerate(flex):
        rows.append((f"thumb CMC flexion {f} deg", pairs[i].max(), pairs[i, :5, :5].max(), cap[i]))
    print(f"\n{'pose':<44}{'mesh mm':>9}{'fingers mm':>12}{'capsules mm':>13}")
    for name, m, f, c in rows:
        print(f"{name:<44}{m:>9.2f}{f:>12.2f}{c:>13.2f}")
    for scale in (1.0, 0.5):
        rot = limits.sample_poses(layer, n_samples, torch.Generator().manual_seed(0),
                                  betas=betas.expand(n_samples, -1), scale=scale)
        pairs, cap, dt = run(rot)
        mesh, fing = pairs.max((1, 2)), pairs[:, :5, :5].max((1, 2))
        thumb_palm = np.maximum(pairs[:, 0, 5], pairs[:, 5, 0])
        free = cap == 0
        print(f"\n{n_samples} poses sampled inside the limits (scale {scale}), {1000 * dt / n_samples:.1f} ms a frame: "
              f"> 2 mm: capsules {int((cap > 2).sum())}, mesh fingers-fingers {int((fing > 2).sum())}, mesh all pairs "
              f"{int((mesh > 2).sum())} (thumb-palm {int((thumb_palm > 2).sum())}); both > 2 mm "
              f"{int(((fing > 2) & (cap > 2)).sum())}, mesh fingers only {int(((fing > 2) & (cap <= 2)).sum())}, capsules "
              f"only {int(((fing <= 2) & (cap > 2)).sum())}; correlation {np.corrcoef(fing, cap)[0, 1]:.2f}; on the "
              f"{int(free.sum())} capsule-free poses the mesh fingers' deepest is {fing[free].max(initial=0):.2f} mm")


def two_hands(clip_path: Path | None) -> None:
    import torch

    from core.contact import hands, metrics
    from core.hand.load import load_model
    from core.hand.mano import ManoLayer
    from core.io.clip import load_clip

    if clip_path is None:
        src = DATA / "video" / "two_hands.mp4"
        if not src.exists():
            print(f"\ntwo_hands.mp4 not found under {DATA}")
            return
        clip_path = ROOT / "out" / "hands" / "two_hands.npz"
        clip_path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "core", "capture", str(src), "--out", str(clip_path), "--quiet"],
                       cwd=ROOT, check=True)
    clip = load_clip(clip_path)
    if clip.n_hands != 2:
        print(f"\n{clip_path}: {clip.n_hands} hand(s), nothing to measure between hands")
        return
    verts, faces = [], []
    for h in range(2):
        model = load_model(clip.sides[h], clip.model_path(h))
        layer = ManoLayer(model)
        t = clip.n_frames
        with torch.no_grad():
            out = layer(torch.as_tensor(clip.betas[h], dtype=torch.float32)[None].expand(t, -1),
                        torch.as_tensor(clip.global_orient[h], dtype=torch.float32),
                        torch.as_tensor(clip.hand_pose[h], dtype=torch.float32).reshape(t, 45),
                        torch.as_tensor(clip.transl[h], dtype=torch.float32))
        verts.append(out.vertices.double().numpy())
        faces.append(model.faces)
    both = clip.valid.all(0)
    t0 = time.perf_counter()
    depth, d_a, d_b = hands.hand_in_hand(verts[0][both], verts[1][both], faces[0], faces_b=faces[1])
    dt = time.perf_counter() - t0
    rows = np.nonzero(both)[0]
    worst = np.argsort(-depth)[:5]
    vol = [metrics.intersection_volume(verts[0][rows[k]], faces[0], verts[1][rows[k]], faces[1]) for k in worst]
    stats = metrics.penetration_stats(np.concatenate([d_a, d_b], 1))
    print(f"\n{clip_path.name}: {int(both.sum())} frames with both hands, {int(np.isfinite(d_a).any(1).sum())} measured "
          f"(boxes within {hands.REACH_M * 1000:.0f} mm), {dt:.2f} s; hand-hand penetration > 0: {int((depth > 0).sum())} "
          f"frames, > 2 mm: {int((depth > 2).sum())}, deepest {depth.max(initial=0):.2f} mm (clip frame "
          f"{rows[worst[0]]}); mean depth of the penetrating vertices on those frames "
          f"{stats['mean_mm'][depth > 2].mean() if (depth > 2).any() else 0:.2f} mm; intersection volume of the 5 deepest "
          f"frames (2 mm voxels): {', '.join(f'{v:.2f}' for v in vol)} cm^3")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", help="a captured two-hand clip (.npz); default: capture two_hands.mp4")
    ap.add_argument("--samples", type=int, default=300, help="poses sampled inside the limits (default 300)")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(1)
    from core.hand.load import load_model

    speed(load_model("right"), load_model("left"))
    self_pen(a.samples)
    two_hands(Path(a.clip) if a.clip else None)


if __name__ == "__main__":
    main()
