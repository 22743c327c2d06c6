"""Shared pytest setup: data location, headless Blender resources, and the repo on sys.path."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Headless Blender must not touch the user's own config; set before bpy is imported anywhere.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="handcap-blender-"))

# The core's cache (the generated open hand model) stays inside the checkout, not in the user's home.
os.environ.setdefault("HANDCAP_CACHE", str(ROOT / "build" / "cache"))

DATA = Path(os.environ.get("HANDCAP_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder (env HANDCAP_DATA, default ../shared/data); skips when absent."""
    if not (DATA / "README.md").is_file():
        pytest.skip(f"shared data not found at {DATA} (set HANDCAP_DATA)")
    return DATA


def pytest_sessionstart(session):
    """Generate the open hand model into the cache once, where the generator can run (the project's
    .venv; Blender-like interpreters hold only bpy and use the built extension's shipped model)."""
    import importlib.util

    if importlib.util.find_spec("scipy") is not None:
        from core.hand.gen import ensure_open_model

        ensure_open_model()
