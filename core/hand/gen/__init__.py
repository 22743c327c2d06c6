"""The open hand model's generator (`mesh`: skeleton, implicit surface, mesh; `arrays`: MANO's arrays on
it, the left hand, the files). Needs scipy: used at build time (build.py), by the CLI and by the
capture job, never on the load path (`core.hand.load` reads the files it writes)."""
from __future__ import annotations

import os
from pathlib import Path


def ensure_open_model(model_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the current open model, generated there first when missing or stale.

    Args:
        model_dir: where to keep it; None for `core.hand.load.open_model_dir` (the user cache in a source
            checkout). A built package's shipped model is returned as it is, never rewritten.
    Returns:
        The folder (``handcap_{right,left}.npz`` and the MANO-format pickles).
    """
    from ..load import SHIPPED_DIR, open_model_dir
    from .arrays import assets_current, write_assets

    folder = Path(model_dir) if model_dir is not None else open_model_dir()
    if model_dir is None and folder == SHIPPED_DIR:
        return folder
    if not assets_current(folder):  # missing, or made by an older generator
        write_assets(folder)
    return folder
