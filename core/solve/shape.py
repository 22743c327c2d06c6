"""One shape per hand per clip: betas fitted to the observed bone lengths."""
from __future__ import annotations

import numpy as np
import torch

from ..hand.model import MANO21_PARENTS
from ..hand.mano import ManoLayer

# Distances used for the fit, as MANO-21 index pairs: the 15 finger bones (tips included), the
# spacing of the knuckles, and (down-weighted) the wrist -> knuckle distances, since detectors place
# the wrist somewhat differently from a skeleton's wrist joint.
FINGER_BONES = [(int(MANO21_PARENTS[c]), c) for c in range(2, 21) if int(MANO21_PARENTS[c]) != 0]
KNUCKLE_PAIRS = [(1, 4), (4, 10), (10, 7)]
WRIST_PAIRS = [(0, 1), (0, 4), (0, 10), (0, 7), (0, 13)]
PAIRS = np.array(FINGER_BONES + KNUCKLE_PAIRS + WRIST_PAIRS, dtype=np.int64)  # (P, 2)
PAIR_WEIGHTS = np.array([1.0] * (len(FINGER_BONES) + len(KNUCKLE_PAIRS)) + [0.3] * len(WRIST_PAIRS))


def pair_lengths(joints21: torch.Tensor) -> torch.Tensor:
    """Lengths (..., P) of the fitted distances PAIRS from joints (..., 21, 3) in MANO-21 order."""
    return (joints21[..., PAIRS[:, 1], :] - joints21[..., PAIRS[:, 0], :]).norm(dim=-1)


def size_ratio(lengths: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """How much larger a hand of distances ``lengths`` (P,) is than one of ``own`` (P,): the PAIR_WEIGHTS-
    weighted least-squares scale s of s * own ~ lengths (a scalar tensor)."""
    w = torch.as_tensor(PAIR_WEIGHTS, dtype=own.dtype, device=own.device)
    return (w * lengths * own).sum() / (w * own * own).sum().clamp_min(1e-12)


def joint_shape_basis(layer: ManoLayer) -> tuple[np.ndarray, np.ndarray]:
    """Rest MANO-21 joints are linear in betas: J(beta) = J0 + D beta. Returns J0 (21, 3), D (21, 3, NB)."""
    jr = layer.J_regressor.double().cpu().numpy()
    sd = layer.shapedirs.double().cpu().numpy()
    tips = layer.tip_ids.cpu().numpy()
    vt = layer.v_template.double().cpu().numpy()
    j0 = np.concatenate([jr @ vt, vt[tips]])
    d = np.concatenate([np.einsum("jv,vcb->jcb", jr, sd), sd[tips]])
    return j0, d


def fit_betas(layer: ManoLayer, lengths: torch.Tensor, weights: np.ndarray | None = None,
              prior_mm: float = 3.0, iters: int = 20, offsets: np.ndarray | None = None) -> torch.Tensor:
    """Betas (NB,) whose rest skeleton has the observed distances ``lengths`` (P,) metres.

    ``offsets`` (21, 3) metres, MANO-21, or None: where the observations' points sit relative to the joints
    (the detector's landmark convention, `core.solve.fit.RefineConfig.offsets`, the bones' frames at rest):
    the distances are then those between the rest joints plus their offsets.

    Minimises sum_p w_p (L_p(beta) - lengths_p)^2 + (prior_mm / 1000)^2 |beta|^2 (one unit of beta
    costs as much as a ``prior_mm`` error on one distance) by Gauss-Newton with the analytic
    Jacobian: rest joints are linear in beta, so L_p = |A_p + B_p beta|. Returns float32 betas.
    """
    j0, d = joint_shape_basis(layer)
    if offsets is not None:
        j0 = j0 + np.asarray(offsets, np.float64)[:, :3]
    a = j0[PAIRS[:, 1]] - j0[PAIRS[:, 0]]  # (P, 3)
    b = d[PAIRS[:, 1]] - d[PAIRS[:, 0]]  # (P, 3, NB)
    obs = np.asarray(lengths.detach().cpu().numpy() if torch.is_tensor(lengths) else lengths, np.float64)
    w = np.sqrt(PAIR_WEIGHTS if weights is None else np.asarray(weights, np.float64))
    lam = prior_mm / 1000.0
    nb = b.shape[2]
    beta = np.zeros(nb)
    for _ in range(iters):
        v = a + np.einsum("pcb,b->pc", b, beta)  # (P, 3)
        length = np.linalg.norm(v, axis=1)
        jac = np.einsum("pc,pcb->pb", v / length[:, None], b)  # dL/dbeta (P, NB)
        r = np.concatenate([w * (length - obs), lam * beta])
        jj = np.concatenate([w[:, None] * jac, lam * np.eye(nb)])
        step = np.linalg.lstsq(jj, -r, rcond=None)[0]
        beta = np.clip(beta + step, -4, 4)
        if np.abs(step).max() < 1e-6:
            break
    return torch.as_tensor(beta, dtype=layer.v_template.dtype)
