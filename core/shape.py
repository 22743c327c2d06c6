"""One shape per hand per clip: betas fitted to the observed bone lengths."""
from __future__ import annotations

import numpy as np
import torch

from .hand_model import MANO21_PARENTS
from .mano import ManoLayer

# Distances used for the fit, as MANO-21 index pairs: the 15 finger bones (tips included) and the
# spacing of the knuckles. Wrist -> knuckle distances are left out: detectors place the wrist
# differently from a skeleton's wrist joint (MediaPipe's sits ~2 cm nearer the fingers).
FINGER_BONES = [(int(MANO21_PARENTS[c]), c) for c in range(2, 21) if int(MANO21_PARENTS[c]) != 0]
KNUCKLE_PAIRS = [(1, 4), (4, 10), (10, 7)]
PAIRS = np.array(FINGER_BONES + KNUCKLE_PAIRS, dtype=np.int64)  # (P, 2)


def pair_lengths(joints21: torch.Tensor) -> torch.Tensor:
    """Lengths (..., P) of the fitted distances PAIRS from joints (..., 21, 3) in MANO-21 order."""
    return (joints21[..., PAIRS[:, 1], :] - joints21[..., PAIRS[:, 0], :]).norm(dim=-1)


def fit_betas(layer: ManoLayer, lengths: torch.Tensor, weights: torch.Tensor | None = None,
              prior: float = 1e-7, iters: int = 15) -> torch.Tensor:
    """Betas (NB,) whose rest skeleton has the observed distances ``lengths`` (P,) metres.

    Minimises sum_p w_p (L_p(beta) - lengths_p)^2 + prior * |beta|^2 by Gauss-Newton (L_p is
    nearly linear in beta, so a few steps converge). Returns float32 betas.
    """
    dt = layer.v_template.dtype
    lengths = lengths.to(dt)
    w = torch.ones_like(lengths) if weights is None else weights.to(dt)
    beta = torch.zeros(layer.n_betas, dtype=dt, device=lengths.device)

    def residual(b):
        _, j = layer.shaped(b[None])
        tips = layer.rest_tips(b[None])
        l = pair_lengths(torch.cat([j, tips], 1))[0]
        return torch.cat([(l - lengths) * w.sqrt(), prior**0.5 * b])

    for _ in range(iters):
        r = residual(beta)
        jac = torch.autograd.functional.jacobian(residual, beta)
        step = torch.linalg.lstsq(jac, -r[:, None]).solution[:, 0]
        beta = (beta + step).clamp(-4, 4)
        if step.abs().max() < 1e-5:
            break
    return beta.detach()
