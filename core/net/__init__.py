"""Learnt models of the pipeline. ``load_refiner()`` gives the joint-refinement VAE (`vae`), applied to
detector joints before the IK; `corpus` makes its training poses (with key poses `captured` from
permissively licensed video) and detector-like errors (with the detector's offsets measured on `renders`
of our own hand), and `train` trains it (``python -m core.net.train --out core/net/weights/joint_vae.pt``)."""
from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "joint_vae.pt"


def load_refiner(device: str = "cpu", path: str | Path | None = None):
    """The shipped joint refiner (`core.net.vae.JointRefiner`) on ``device``.

    Args:
        device: torch device name ("cpu", "cuda", ...).
        path: a weights file written by `core.net.train` (default: the shipped ``weights/joint_vae.pt``).
    Raises:
        CaptureError: missing or invalid weights file (the message names it).
    """
    from .vae import load_weights  # torch is imported here, not on `import core.net`

    return load_weights(DEFAULT_WEIGHTS if path is None else path, device)
