"""Frozen settings dataclasses built from keyword options, every problem reported at once.

`build(cls, what, options, check)`: unknown keys and the values ``check`` rejects become one
CaptureError ("invalid <what> settings: ...; ..."), so a user (or a farm script) fixes them in one go.
Used by the detector (`core.detect.base.make_config`), the temporal clean-up
(`core.solve.smooth.SmoothConfig.create`) and the VAE (`core.net.vae.make_config`).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, TypeVar

from .errors import CaptureError

T = TypeVar("T")


def build(cls: type[T], what: str, options: dict, check: Callable[[T], list[str]] | None = None) -> T:
    """``cls(**options)`` validated: raises CaptureError naming every unknown key (with the known ones)
    and every problem ``check(cfg)`` returns (a list of one-line strings)."""
    names = [f.name for f in dataclasses.fields(cls)]
    problems = [f"unknown {what} option {k!r} (options: {', '.join(sorted(names))})"
                for k in sorted(set(options) - set(names))]
    cfg = cls(**{k: v for k, v in options.items() if k in names})
    if check is not None:
        problems += check(cfg)
    if problems:
        raise CaptureError(f"invalid {what} settings: " + "; ".join(problems))
    return cfg


def is_number(v) -> bool:
    """A real int or float (bool is not a number here)."""
    return not isinstance(v, bool) and isinstance(v, (int, float))
