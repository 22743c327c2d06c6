"""Loading a hand model: the open model (shipped in a built package, or generated into a cache folder),
a project ``.npz``, or a user's official MANO pickle.

This module never imports the generator (`core.hand.gen`, which needs scipy): inside Blender only numpy
is available, and the built extension ships the open model's two ``.npz`` files in ``core/hand/assets``.

Where the open model is looked for (`open_model_dir`):
1. ``$HANDCAP_MODEL_DIR`` when set;
2. ``core/hand/assets`` when it holds the model (a built package: build.py puts it there; a source
   checkout never has it, and nothing writes there at run time);
3. the user cache, ``cache_root()/model/<generator id>`` (``$HANDCAP_CACHE``, else the platform's user
   cache folder), filled by `core.hand.gen.ensure_open_model` (the CLI and the capture job call it).
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from ..errors import CaptureError
from .model import SIDES, HandModel, model_from_arrays, validate_arrays

HERE = Path(__file__).resolve().parent
SHIPPED_DIR = HERE / "assets"
GENERATOR_SOURCES = (HERE / "gen" / "arrays.py", HERE / "gen" / "mesh.py")
ENV_MODEL_DIR = "HANDCAP_MODEL_DIR"
ENV_CACHE = "HANDCAP_CACHE"


def cache_root() -> Path:
    """The core's user cache folder: ``$HANDCAP_CACHE``, else the platform's (not created here).

    Linux ``$XDG_CACHE_HOME/hand_capture`` (default ``~/.cache/hand_capture``), macOS
    ``~/Library/Caches/hand_capture``, Windows ``%LOCALAPPDATA%\\hand_capture\\cache``.
    """
    env = os.environ.get(ENV_CACHE, "").strip()
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "hand_capture" / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "hand_capture"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hand_capture"


def generator_id() -> str:
    """Fingerprint of the open model's generator (SHA-256 of its two source files, read as bytes, not
    imported), 16 hex digits; "" where the generator is not present."""
    if not all(p.is_file() for p in GENERATOR_SOURCES):
        return ""
    h = hashlib.sha256()
    for p in GENERATOR_SOURCES:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def model_files(model_dir: str | os.PathLike) -> dict:
    """{side: Path} of the open model's two files in ``model_dir``."""
    return {side: Path(model_dir) / f"handcap_{side}.npz" for side in SIDES}


def is_shipped() -> bool:
    """True in a built package, which carries the open model in ``core/hand/assets``."""
    return all(p.is_file() for p in model_files(SHIPPED_DIR).values())


def open_model_dir() -> Path:
    """The folder the open model is read from (see the module doc for the order)."""
    env = os.environ.get(ENV_MODEL_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    if is_shipped():
        return SHIPPED_DIR
    return cache_root() / "model" / (generator_id() or "unknown")


def default_model_path(side: str) -> Path:
    """Path of the open model's file for ``side`` (it may not exist yet in a source checkout)."""
    return model_files(open_model_dir())[side]


def load_model(side: str = "right", path: str | Path | None = None) -> HandModel:
    """Load a hand model.

    Args:
        side: "right" or "left".
        path: None for the project's own open model (`open_model_dir`); a ``.npz`` in this project's
            format; or a user's official ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (read without chumpy by a
            restricted unpickler, see `core.hand.mano_pkl`).
    Returns:
        HandModel.
    Raises:
        CaptureError: missing, unreadable or invalid file, or a file of the other side.
    """
    if side not in SIDES:
        raise CaptureError(f"hand side must be 'right' or 'left'; got {side!r}")
    if path is None:
        path = default_model_path(side)
        if not path.is_file():
            raise CaptureError(f"the open hand model is not in {path.parent}: generate it with "
                               f"`python -m core model` (captures from the command line do this themselves)")
    path = Path(path)
    try:
        found = path.is_file()
    except OSError as exc:  # e.g. a name too long for the file system
        raise CaptureError(f"cannot read hand model {path}: {exc.strerror or exc}") from None
    if not found:
        raise CaptureError(f"hand model file not found: {path}")
    if path.suffix.lower() == ".pkl":
        from .mano_pkl import read_official

        arrays, name = read_official(path, side)
    else:
        arrays, name = _read_npz(path, side), None
    model = model_from_arrays(arrays, side, name or str(arrays.get("name", path.name)))
    if path.suffix.lower() == ".pkl":
        from .mano_pkl import check_chirality

        check_chirality(model, path)
    return model


def _read_npz(path: Path, side: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any read failure is the user's file
        raise CaptureError(f"cannot read hand model {path.name}: {exc}") from None
    file_side = str(arrays.get("side", side))
    if file_side != side:
        raise CaptureError(f"{path.name} is a {file_side} hand model; a {side} one was asked for")
    problems = validate_arrays(arrays, path.name)  # messages name the file, not the model inside it
    if problems:
        raise CaptureError("; ".join(problems))
    return arrays
