"""``python -m core.net.paper.train``: the paper's network from the project's renders, in short resumable chunks.

```sh
# 1. trunk features of every complete render chunk (held-out chunks: one crop per image), resumable
python -m core.net.paper.train features --synth out/synth/v1 --cache build/paper/feats --held-out 0:4
# 2. train (stage 1: the non-parametric branch alone; stage 2: both branches, self-distillation), resumable:
#    a re-run continues from --out's checkpoint until --steps; every --save steps a checkpoint is written
python -m core.net.paper.train train --cache build/paper/feats --out build/paper/paper.pt
```

The weights file (``torch.save`` of plain data, read with ``weights_only=True``) holds the head's tensors, the
feature normalisation, the training step and ``meta``: the code commit (and whether the tree was dirty), the
render chunks' label hashes and generator commit, the trunk's .tflite SHA-256, the counts and the settings.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ...errors import CaptureError

ROOT = Path(__file__).resolve().parents[3]
FORMAT = "handcap-paper-net/1"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 3800          # total optimiser steps (stage 1 + stage 2)
    stage1: int = 3000         # steps of the non-parametric branch alone (fast: no IK)
    batch: int = 64            # stage 1 batch
    batch2: int = 32           # stage 2 batch (IK + MANO per sample)
    lr: float = 1e-3
    lr_end: float = 1e-5
    weight_decay: float = 1e-2
    seed: int = 0
    save_every: int = 250
    # regularisation chosen on render chunk 4 as validation (trained on 5-10, 1500 stage-1 steps; the test chunks
    # 0-3 not used): val PA-MPJPE of the non-parametric joints 19.8 mm (512, 0.1, 0, wd 1e-4), 18.6 (512, 0.3,
    # 0.5, 1e-2), 18.6 (256, 0.3, 1.0, 1e-2), 21.0 (1024, 0.5, 1.0, 1e-2)
    hidden: int = 256
    dropout: float = 0.3
    feature_noise: float = 1.0
    threads: int = 1           # torch threads: 1 measured 6x faster a step than 2 on the loaded 2-core machine
    anchor: bool = True        # the anchored decoder (`core.net.paper.model`); False: the first version
    image: bool = True         # the trunk's image feature in the head's input (False: landmarks only, anchored)
    max_detector_pa_mm: float = 0.0  # > 0: train only on crops where MediaPipe's own 3D is within this PA-MPJPE of
    #                                  the label (an ablation: renders where the detector behaves as on real hands)


def code_version() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "core"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "") if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_net(device: str = "cpu", **sizes):
    """A fresh `PaperNet` on the open right hand model and the shipped VAE (``sizes``: hidden, dropout,
    feature_noise)."""
    from ...hand.gen import ensure_open_model
    from ...hand.load import load_model
    from ...hand.mano import ManoLayer
    from .. import load_refiner
    from .model import PaperNet

    ensure_open_model()
    return PaperNet(ManoLayer(load_model("right")), load_refiner().model, **sizes).to(device)


HEAD_KEYS = ("head.", "feat_mean", "feat_std")


def save(path: Path, net, step: int, meta: dict, opt_state=None) -> None:
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items() if k.startswith(HEAD_KEYS)}
    blob = {"format": FORMAT, "state_dict": state, "step": int(step),
            "meta": {str(k): str(v) for k, v in meta.items()}}
    if opt_state is not None:
        blob["optimizer"] = opt_state
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    import torch

    torch.save(blob, str(tmp))
    tmp.replace(path)


def load(path: str | Path, device: str = "cpu"):
    """(PaperNet with the file's head, blob) from a weights file; CaptureError (one line) when unusable."""
    from ..vae import read_weights

    path = Path(path)
    blob = read_weights(path, "network weights", f"train them with `python -m core.net.paper.train train --out {path}`, "
                                                 "see docs/paper_net.md")
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CaptureError(f"{path.name}: not a weights file of core.net.paper.train ({FORMAT})")
    sizes = {}
    try:
        c = json.loads(blob.get("meta", {}).get("config", "{}"))
        sizes = {k: c[k] for k in ("hidden", "anchor", "image") if k in c}
        sizes.setdefault("anchor", False)  # files of the first version have no such setting
    except (ValueError, TypeError):
        pass
    net = build_net(device, **sizes)
    missing, unexpected = net.load_state_dict(blob["state_dict"], strict=False)
    bad = [k for k in missing if k.startswith(HEAD_KEYS)] + list(unexpected)
    if bad:
        raise CaptureError(f"{path.name}: tensors do not match the network: {', '.join(bad[:4])}")
    return net.eval(), blob


def parse_range(text: str) -> set[int]:
    a, _, b = text.partition(":")
    return set(range(int(a), int(b))) if b else {int(a)}


def data_meta(files: list[Path]) -> dict:
    chunks, shas, commits, trunk = [], [], set(), set()
    for f in files:
        with np.load(f) as z:
            chunks.append(int(z["chunk"][0]) if len(z["chunk"]) else -1)
            shas.append(str(z["labels_sha256"]))
            commits.add(str(z["synth_commit"]))
            trunk.add(str(z["trunk_sha256"]))
    return {"chunks": ",".join(map(str, chunks)), "labels_sha256": ",".join(shas),
            "render_commits": ",".join(sorted(commits)), "trunk_sha256": ",".join(sorted(trunk))}


def detector_pa_mm(rows: dict) -> np.ndarray:
    """(N,) PA-MPJPE, mm, of MediaPipe's world landmarks of each training crop against its label."""
    from ...eval.metrics import pa_mpjpe
    from ...hand.model import MP_FROM_MANO21

    w = rows["net_world"].reshape(-1, 21, 3).astype(np.float64)
    return pa_mpjpe(w - w[:, :1], rows["target"].astype(np.float64)[:, MP_FROM_MANO21])


def anchor_meshes(net, world: np.ndarray, batch: int = 512):
    """The anchored decoder's (vertices (N, V, 3), joints (N, 21, 3)) of MediaPipe's world landmarks (N, 63),
    computed once for the training set (`PaperNet.anchor_mesh`)."""
    import torch

    parts = [net.anchor_mesh(torch.as_tensor(world[k:k + batch], dtype=torch.float32))
             for k in range(0, len(world), batch)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def train(cache: Path, out: Path, cfg: TrainConfig, log=print) -> dict:
    import torch

    from .data import load_features
    from .model import LossWeights, losses

    files = sorted(Path(cache).glob("feat_[0-9][0-9][0-9][0-9].npz"))
    tr = load_features(files, held_out=False)
    if not tr:
        raise CaptureError(f"{cache}: no training features (run the `features` step first)")
    if cfg.max_detector_pa_mm > 0:
        tr = {k: v[detector_pa_mm(tr) <= cfg.max_detector_pa_mm] for k, v in tr.items()}
        log(f"{len(tr['target'])} crops with MediaPipe's 3D within {cfg.max_detector_pa_mm:g} mm PA-MPJPE")
    train_files = [f for f in files if not bool(np.load(f)["held_out"])]
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    net = build_net(hidden=cfg.hidden, dropout=cfg.dropout, feature_noise=cfg.feature_noise, anchor=cfg.anchor,
                    image=cfg.image)
    feat = net.inputs(tr["feature"].astype(np.float32), tr.get("net_world"), tr.get("net_screen"))
    anchors = anchor_meshes(net, tr["net_world"]) if cfg.anchor else None
    target = torch.as_tensor(tr["target"], dtype=torch.float32)
    crop2d = torch.as_tensor(tr["crop2d"], dtype=torch.float32)
    n = len(feat)
    params = [p for p in net.head.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    meta = {"code": code_version(), "train_crops": n, "config": json.dumps(dataclasses.asdict(cfg)),
            "losses": json.dumps(dataclasses.asdict(LossWeights())), **data_meta(train_files)}
    if out.is_file():
        blob = torch.load(str(out), map_location="cpu", weights_only=True)
        if blob.get("format") == FORMAT and "optimizer" in blob:
            if blob["meta"].get("labels_sha256") != meta["labels_sha256"]:
                log("note: the training chunks changed since the checkpoint; continuing on the new set")
            net.load_state_dict(blob["state_dict"], strict=False)
            opt.load_state_dict(blob["optimizer"])
            step = int(blob["step"])
            log(f"resumed at step {step}")
    if step == 0:
        net.set_normalisation(feat.numpy())
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + step)
    t0 = time.time()
    run = {}
    net.train()
    net.vae.eval()
    while step < cfg.steps:
        frac = step / max(cfg.steps - 1, 1)
        lr = float(cfg.lr_end + 0.5 * (cfg.lr - cfg.lr_end) * (1 + np.cos(np.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, n, (cfg.batch if step < cfg.stage1 else cfg.batch2,), generator=gen)
        full = step >= cfg.stage1
        o = net(feat[idx], mano=full, vertices=False,
                anchor=None if anchors is None else (anchors[0][idx], anchors[1][idx]))
        ramp = min(1.0, (step - cfg.stage1) / 200.0) if full else 0.0
        terms = losses(net, o, target[idx], crop2d[idx], distill_scale=ramp)
        opt.zero_grad(set_to_none=True)
        loss = terms["total"]
        if torch.isfinite(loss):
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            for p in params:
                if p.grad is not None:
                    torch.nan_to_num_(p.grad, 0.0, 0.0, 0.0)
            opt.step()
        step += 1
        for k, v in terms.items():
            x = float(v.detach())
            run[k] = 0.98 * run.get(k, x) + 0.02 * x
        if step % 50 == 0:
            log(f"step {step}/{cfg.steps} lr {lr:.2e} " + " ".join(f"{k} {v:.2f}" for k, v in run.items())
                + f" ({time.time() - t0:.0f} s)")
        if step % cfg.save_every == 0 or step == cfg.steps:
            save(out, net, step, {**meta, "seconds_this_run": f"{time.time() - t0:.0f}"}, opt.state_dict())
    # the shipped file: no optimiser state
    final = out.with_name(out.stem + "_final.pt")
    save(final, net, step, {**meta, "final_losses": json.dumps({k: round(v, 3) for k, v in run.items()})})
    return {"step": step, "out": str(out), "final": str(final), **run}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.net.paper.train", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("features", help="cache trunk features of render chunks")
    f.add_argument("--synth", type=Path, required=True)
    f.add_argument("--cache", type=Path, required=True)
    f.add_argument("--held-out", default="0:4", help="chunks A:B held out for the benchmark")
    f.add_argument("--jitters", type=int, default=4, help="crops per training image")
    t = sub.add_parser("train", help="train (resumable)")
    t.add_argument("--cache", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    for fld in dataclasses.fields(TrainConfig):
        if isinstance(fld.default, bool):
            t.add_argument("--" + fld.name.replace("_", "-"), action=argparse.BooleanOptionalAction, default=fld.default)
        else:
            t.add_argument("--" + fld.name.replace("_", "-"), type=type(fld.default), default=fld.default)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "features":
            from .data import cache_features

            cache_features(a.synth, a.cache, parse_range(a.held_out), a.jitters, log=lambda s: print(s, flush=True))
        else:
            cfg = TrainConfig(**{fld.name: getattr(a, fld.name) for fld in dataclasses.fields(TrainConfig)})
            res = train(a.cache, a.out, cfg, log=lambda s: print(s, flush=True))
            print(json.dumps(res))
    except (CaptureError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
