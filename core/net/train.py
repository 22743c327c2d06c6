"""Train the joint-refinement VAE on the project's own corpus (`core.net.corpus`); CPU, a few minutes.

    python -m core.net.train --out core/net/weights/joint_vae.pt [--seed 0] [--steps 6000]
                             [--vae hidden=256 --vae latent=32 ...] [--threads 2]
                             [--captured core/net/data/captured_poses.npz | --no-captured]
                             [--bias core/net/data/detector_bias.npz | --no-bias]

Steps: 1. clean training and validation hands (`make_corpus`, seeds ``seed`` and ``seed + 1``): the
authored taxonomy and the key poses captured from the MIT-licensed single_hand.mp4 (`core.net.captured`);
the detector's systematic offsets from the hand model's joints, measured on renders (`core.net.renders`),
are part of the drawn errors;
2. every step draws fresh detector errors (`detector_noise`) for a batch, puts the noisy joints in their
canonical frame (`vae.canonical_frame`) and the target there too: the clean joints similarity-fitted to
the noisy ones (wrist left out, `corpus.TARGET_WEIGHTS`), so a whole-hand pose or scale error is not
asked of the network; loss = mean joint distance (canonical units) + kl_weight * KL (warmed up);
3. validation in millimetres, then the weights (`vae.save_weights`, with the versions in ``meta``).
The same seed, thread count and library versions give the same weights. Logs go to stdout.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..hand.load import default_model_path, load_model
from ..solve.ik import PALM
from ..hand.mano import ManoLayer
from ..rot import similarity_align
from . import DEFAULT_WEIGHTS, corpus

REPO = Path(__file__).resolve().parents[2]  # paths in TrainConfig are relative to the repository
from .vae import JointVAE, canonical_frame, make_config, palm_centre_size, save_weights


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training settings (frozen).

    seed: corpus, noise and initialisation; n_train, n_val: clean hands; steps, batch: optimisation;
    lr, lr_min: Adam, cosine-decayed; kl_weight: beta of the KL term (per sample, summed over the
    latent), linearly warmed up over kl_warmup steps; threads: torch CPU threads (part of reproducibility).
    """

    seed: int = 0
    n_train: int = 200_000
    n_val: int = 4096
    steps: int = 6000
    batch: int = 512
    lr: float = 2e-3
    lr_min: float = 2e-5
    kl_weight: float = 1e-4
    kl_warmup: int = 1000
    threads: int = 2
    captured: str | None = "core/net/data/captured_poses.npz"  # relative to the repository root
    bias: str | None = "core/net/data/detector_bias.npz"  # `core.net.renders`; None: no systematic offsets


def palm_template(layer: ManoLayer) -> torch.Tensor:
    """The mean right hand's rest palm points (6, 3) (PALM order), centred and of RMS radius 1."""
    palm = layer.rest_joints(torch.zeros(1, layer.n_betas, dtype=layer.v_template.dtype))[:, list(PALM)].float()
    centre, size = palm_centre_size(palm)
    return ((palm - centre[:, None]) / size[:, None, None])[0]


def make_batch(clean: torch.Tensor, template: torch.Tensor, gen: torch.Generator,
               noise: corpus.NoiseConfig = corpus.NoiseConfig(), bias: np.ndarray | None = None):
    """Noisy input and target for clean joints (B, 21, 3) metres: (x canonical (B, 21, 3), target canonical
    (B, 21, 3), size (B,) metres per canonical unit). ``bias``: `corpus.detector_noise`'s systematic offsets."""
    noisy = corpus.detector_noise(clean, gen, noise, bias)
    frame = canonical_frame(noisy, template)
    w = torch.as_tensor(corpus.TARGET_WEIGHTS, dtype=clean.dtype)
    target = similarity_align(clean, noisy, w)
    return frame.to_canonical(noisy), frame.to_canonical(target), frame.size


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample (B,), summed over the latent."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(-1)


def evaluate(model: JointVAE, x: torch.Tensor, target: torch.Tensor, size: torch.Tensor) -> dict:
    """Mean joint distances (mm) of the input and of the refined output to the target, on a fixed set."""
    model.eval()
    with torch.no_grad():
        y, _, _ = model(x)
    mm = size[:, None] * 1000.0
    raw = ((x - target).norm(dim=-1) * mm)
    ref = ((y - target).norm(dim=-1) * mm)
    model.train()
    return {"raw_mm": float(raw.mean()), "refined_mm": float(ref.mean()),
            "raw_nowrist_mm": float(raw[:, 1:].mean()), "refined_nowrist_mm": float(ref[:, 1:].mean())}


def _data_file(rel: str | None, loader, how: str) -> tuple[np.ndarray | None, str]:
    """(array, description) from a data file given relative to the repository root (None: none)."""
    if rel is None:
        return None, ""
    from ..errors import CaptureError

    path = Path(rel)
    path = path if path.is_absolute() else REPO / path
    if not path.is_file():
        raise CaptureError(f"training data not found: {path} (make it with {how})")
    return loader(path)


def load_training_data(cfg: "TrainConfig") -> dict:
    """The captured key poses and the detector bias of ``cfg``, with their descriptions."""
    from .captured import load_captured
    from .renders import load_bias

    captured, cdesc = _data_file(cfg.captured, load_captured, "python -m core.net.captured VIDEO")
    bias, bdesc = _data_file(cfg.bias, load_bias, "python -m core.net.renders")
    return {"captured": captured, "captured_desc": cdesc, "bias": bias, "bias_desc": bdesc}


def versions(layer_name: str, data: dict | None = None) -> dict:
    """What the weights depend on, as strings (printed and stored in the weights' meta)."""
    data = data or {"captured": None, "bias": None}
    asset = default_model_path("right")
    sha = hashlib.sha256(asset.read_bytes()).hexdigest()[:12] if asset.is_file() else "missing"
    extra = "".join(f" + {data[k + '_desc']}" for k in ("captured", "bias") if data.get(k) is not None)
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "hand_model": f"{layer_name} ({asset.name} sha256 {sha})",
            "corpus": f"taxonomy of {len(corpus.TAXONOMY)} poses{extra}, "
                      f"fingerprint {corpus.corpus_fingerprint(data['captured'], data['bias'])}"}


def train(cfg: TrainConfig, vae_options: dict, out: Path, log=print) -> dict:
    """Train, validate and save; returns the validation figures and timings."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, vae_options, out, log)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: TrainConfig, vae_options: dict, out: Path, log) -> dict:
    torch.manual_seed(cfg.seed)
    vcfg = make_config(**vae_options)
    t0 = time.time()
    from ..hand.gen import ensure_open_model

    ensure_open_model()  # generated into the user cache once (source checkout)
    model_data = load_model("right")
    layer = ManoLayer(model_data)
    data = load_training_data(cfg)
    captured, bias = data["captured"], data["bias"]
    meta = versions(model_data.name, data)
    meta.update({"seed": str(cfg.seed), "train_config": repr(cfg), "vae_config": repr(vcfg)})
    for k, v in meta.items():
        log(f"{k}: {v}")
    # 1. Corpora.
    train_set = corpus.make_corpus(layer, cfg.n_train, cfg.seed, captured=captured)
    val_set = corpus.make_corpus(layer, cfg.n_val, cfg.seed + 1, captured=captured)
    template = palm_template(layer)
    val_gen = torch.Generator().manual_seed(cfg.seed + 2)
    val = make_batch(val_set.joints, template, val_gen, bias=bias)
    val_clean = make_batch(val_set.joints[:1024], template, torch.Generator().manual_seed(0),
                           dataclasses.replace(corpus.NoiseConfig(), clean_prob=1.0))
    t_data = time.time() - t0
    log(f"corpus: {cfg.n_train} train + {cfg.n_val} val hands in {t_data:.1f} s")
    # 2. Optimisation.
    model = JointVAE(vcfg)
    model.palm_template.copy_(template)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed + 3)
    t1 = time.time()
    for step in range(cfg.steps):
        lr = cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * step / cfg.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(cfg.n_train, (cfg.batch,), generator=gen)
        x, target, _ = make_batch(train_set.joints[idx], template, gen, bias=bias)
        y, mu, logvar = model(x, sample=True)
        recon = (y - target).norm(dim=-1).mean()
        kl = kl_divergence(mu, logvar).mean()
        beta = cfg.kl_weight * min(1.0, (step + 1) / max(cfg.kl_warmup, 1))
        loss = recon + beta * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 500 == 0 or step == cfg.steps - 1:
            v = evaluate(model, *val)
            log(f"step {step:5d}  recon {recon.item():.4f}  kl {kl.item():7.1f}  val raw {v['raw_mm']:.2f} mm"
                f" -> refined {v['refined_mm']:.2f} mm  ({time.time() - t1:.0f} s)")
    t_train = time.time() - t1
    # 3. Validation and save.
    v = evaluate(model, *val)
    vc = evaluate(model, *val_clean)
    result = {**{f"val_{k}": round(x, 3) for k, x in v.items()},
              "clean_refined_mm": round(vc["refined_mm"], 3), "train_s": round(t_train, 1),
              "data_s": round(t_data, 1)}
    meta.update({k: str(x) for k, x in result.items() if not k.endswith("_s")})  # timings vary: log only
    out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(out, model, meta)
    log(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB): {result}")
    return result


def _parse_vae(items: list[str]) -> dict:
    opts = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --vae expects KEY=VALUE; got {item!r}")
        opts[key] = int(value) if value.lstrip("-").isdigit() else value
    return opts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.net.train", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_WEIGHTS), help="weights file to write (.pt)")
    ap.add_argument("--seed", type=int, default=TrainConfig.seed)
    ap.add_argument("--steps", type=int, default=TrainConfig.steps)
    ap.add_argument("--n-train", type=int, default=TrainConfig.n_train)
    ap.add_argument("--threads", type=int, default=TrainConfig.threads)
    ap.add_argument("--kl-weight", type=float, default=TrainConfig.kl_weight)
    ap.add_argument("--captured", default=TrainConfig.captured, help="captured key poses (core.net.captured)")
    ap.add_argument("--no-captured", action="store_true", help="the authored taxonomy alone")
    ap.add_argument("--bias", default=TrainConfig.bias, help="detector bias measured on renders (core.net.renders)")
    ap.add_argument("--no-bias", action="store_true", help="no systematic detector offsets")
    ap.add_argument("--vae", action="append", default=[], metavar="KEY=VALUE",
                    help="VAE size option (hidden, layers, latent, decoder_input); repeatable")
    a = ap.parse_args(argv)
    cfg = TrainConfig(seed=a.seed, steps=a.steps, n_train=a.n_train, threads=a.threads, kl_weight=a.kl_weight,
                      captured=None if a.no_captured else a.captured, bias=None if a.no_bias else a.bias)
    from ..errors import CaptureError

    try:
        train(cfg, _parse_vae(a.vae), Path(a.out))
    except CaptureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
