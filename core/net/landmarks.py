"""The detector's 2D landmark convention on our hand (measured by `core.net.renders.measure_2d`): the data file
and its loader, apart from the measurement so that the capture reads it without importing the renderer."""
from __future__ import annotations

from pathlib import Path

import numpy as np

LANDMARK_OFFSETS = Path(__file__).resolve().parent / "data" / "landmark_offsets.npz"


def load_offsets(path: Path = LANDMARK_OFFSETS) -> np.ndarray:
    """The landmark offsets (21, 6) float64 metres, MANO-21 order, each in its bone's frame, of a right hand:
    ``o`` then ``d`` (the part that goes with `core.solve.fit.palm_facing`) (`core.net.renders.measure_2d`)."""
    with np.load(path, allow_pickle=False) as z:
        return np.asarray(z["offsets"], np.float64)
