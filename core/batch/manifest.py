"""The batch manifest: which clips to capture, each with its own capture options.

JSON (``{"root": ..., "defaults": {...}, "clips": [{"path": "a.mp4", "hands": 1, ...}, ...]}``), TOML (the same
keys, ``[[clips]]`` tables) or CSV (a header row naming ``path`` and any option columns; empty cells take the
defaults). Paths (``path``, ``intrinsics``, ``model_right``, ``model_left``) are relative to ``root`` (the
manifest's ``root`` key or ``--root``: a shared-storage folder), else to the manifest's own folder. Every clip
gets an output folder named ``name`` (default: the input's file name without its extension).

Options are the capture CLI's (`OPTIONS`: key -> type); a clip's options are the defaults updated by its own
entry. `ClipSpec.capture_argv` is the ``python -m core capture`` command line for a clip, and
`ClipSpec.namespace` the same options as the CLI's parsed arguments (for `core.capture.CaptureOptions.from_args`).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
from pathlib import Path

from ..errors import CaptureError

# key -> (kind, CLI flag). kind: "int", "float", "str", "path" (a file relative to the root), "bool" (a flag
# given when true), "nobool" (default true; the flag is given when false).
OPTIONS = {
    "hands": ("int", "--hands"), "side": ("str", "--side"), "start": ("int", "--start"), "end": ("int", "--end"),
    "stride": ("int", "--stride"), "fx": ("float", "--fx"), "fy": ("float", "--fy"), "cx": ("float", "--cx"),
    "cy": ("float", "--cy"), "fov": ("float", "--fov"), "intrinsics": ("path", "--intrinsics"),
    "static": ("bool", "--static"), "with_vertices": ("bool", "--with-vertices"),
    "model_right": ("path", "--model-right"), "model_left": ("path", "--model-left"),
    "min_confidence": ("float", "--min-confidence"), "vae": ("nobool", "--no-vae"), "fit": ("nobool", "--no-fit"),
    "collide": ("nobool", "--no-collide"), "separate_sizes": ("bool", "--separate-sizes"),
    "detector": ("str", "--detector"), "device": ("str", "--device"), "workers": ("int", "--workers"),
    "model": ("str", "--model"), "paper_weights": ("path", "--paper-weights"),
}
_CHOICES = {"side": ("right", "left"), "detector": ("auto", "mediapipe", "hybrid", "torch"),
            "device": ("auto", "cpu", "cuda"), "model": ("pipeline", "paper")}
# The same checks as the capture CLI's argument types (core.cli), so a bad value fails when the manifest is read.
_RANGES = {"hands": (1, 2), "start": (0, None), "end": (1, None), "stride": (1, None), "fov": (0.01, 179.99),
           "min_confidence": (0.0, 1.0), "fx": (1e-9, 1e7), "fy": (1e-9, 1e7), "cx": (-1e7, 1e7), "cy": (-1e7, 1e7),
           "workers": (1, None)}
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """One clip of a batch: output folder name, input path (absolute), options (key -> value, set keys only)."""

    name: str
    path: str
    options: dict

    def capture_argv(self, out: str) -> list:
        """``capture INPUT --out OUT [flags]``: the capture CLI's arguments (after ``python -m core``)."""
        argv = ["capture", self.path, "--out", str(out)]
        for key in sorted(self.options):
            kind, flag = OPTIONS[key]
            value = self.options[key]
            if kind == "bool":
                argv += [flag] if value else []
            elif kind == "nobool":
                argv += [] if value else [flag]
            elif kind == "float":
                argv += [flag, repr(float(value))]
            else:
                argv += [flag, str(value)]
        return argv

    def namespace(self, out: str):
        """The options as the capture CLI parses them (an argparse.Namespace with every capture argument)."""
        import argparse

        o = self.options
        return argparse.Namespace(
            input=self.path, out=str(out), static=bool(o.get("static", False)), hands=o.get("hands"),
            side=o.get("side"), start=o.get("start", 0), end=o.get("end"), stride=o.get("stride", 1),
            fx=o.get("fx"), fy=o.get("fy"), cx=o.get("cx"), cy=o.get("cy"), fov=o.get("fov"),
            intrinsics=o.get("intrinsics"), with_vertices=bool(o.get("with_vertices", False)),
            model_right=o.get("model_right"), model_left=o.get("model_left"),
            no_vae=not o.get("vae", True), no_fit=not o.get("fit", True), no_collide=not o.get("collide", True),
            separate_sizes=bool(o.get("separate_sizes", False)), min_confidence=o.get("min_confidence", 0.5),
            detector=o.get("detector", "auto"), device=o.get("device", "auto"), workers=o.get("workers"),
            model=o.get("model", "pipeline"), paper_weights=o.get("paper_weights"), json_progress=False, quiet=True)

    def config(self) -> dict:
        """What decides the clip's result besides its input's bytes (recorded in the sidecar; a change redoes it)."""
        return {"options": {k: self.options[k] for k in sorted(self.options)}}


@dataclasses.dataclass(frozen=True)
class Manifest:
    path: str
    root: str
    clips: tuple

    def only(self, names) -> "Manifest":
        """The clips named (in manifest order); CaptureError for a name the manifest does not have."""
        names = list(names)
        known = {c.name for c in self.clips}
        missing = [n for n in names if n not in known]
        if missing:
            raise CaptureError(f"{os.path.basename(self.path)} has no clip named {missing[0]!r} "
                               f"(clips: {', '.join(sorted(known))})")
        return dataclasses.replace(self, clips=tuple(c for c in self.clips if c.name in set(names)))


def _value(key: str, raw, where: str):
    """``raw`` (JSON/TOML value or CSV text) checked and converted to the kind of option ``key``."""
    kind, _flag = OPTIONS[key]
    text = isinstance(raw, str)
    try:
        if kind in ("bool", "nobool"):
            if isinstance(raw, bool):
                return raw
            if text and raw.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
                return raw.strip().lower() in ("true", "yes", "1")
            raise ValueError("expected true or false")
        if kind == "int":
            if isinstance(raw, bool) or not (isinstance(raw, int) or text):
                raise ValueError("expected a whole number")
            try:
                value = int(raw)
            except ValueError:
                raise ValueError("expected a whole number") from None
        elif kind == "float":
            if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
                raise ValueError("expected a number")
            try:
                value = float(raw)
            except ValueError:
                raise ValueError("expected a number") from None
            if not math.isfinite(value):
                raise ValueError("expected a finite number")
        else:
            if not text or not raw.strip() or "\x00" in raw:
                raise ValueError("expected a non-empty text")
            value = raw
    except ValueError as exc:
        raise CaptureError(f"{where}: {key} = {raw!r}: {exc}") from None
    if key in _RANGES:
        low, high = _RANGES[key]
        if value < low or (high is not None and value > high):
            raise CaptureError(f"{where}: {key} = {raw!r} is out of range ({low:g} to {high if high is not None else 'any'})")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise CaptureError(f"{where}: {key} = {raw!r}: expected {' or '.join(_CHOICES[key])}")
    return value


def _options(entry: dict, where: str, base: Path) -> dict:
    out = {}
    for key, raw in entry.items():
        if key in ("path", "name"):
            continue
        if key not in OPTIONS:
            raise CaptureError(f"{where}: unknown option {key!r} (options: path, name, {', '.join(OPTIONS)})")
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue  # an empty CSV cell: the default
        value = _value(key, raw, where)
        if OPTIONS[key][0] == "path":
            value = str(base / value) if not os.path.isabs(value) else value
        out[key] = value
    return out


def _read(path: Path) -> dict:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.DictReader(f))
            if rows and None in rows[0]:
                raise CaptureError(f"{path.name}: a row has more cells than the header")
            return {"clips": [{k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in r.items() if k}
                              for r in rows]}
        if suffix == ".toml":
            import tomllib

            with open(path, "rb") as f:
                return tomllib.load(f)
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except CaptureError:
        raise
    except OSError as exc:
        raise CaptureError(f"cannot read the manifest {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # json / toml / csv syntax
        raise CaptureError(f"{path.name} is not a valid {suffix.lstrip('.').upper() or 'JSON'} manifest: {exc}") from None


def clip_name(path: str) -> str:
    """Default output folder name of an input: its file (or folder) name without extension, made file-safe."""
    base = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
    return _NAME.sub("_", base).strip("._") or "clip"


def load_manifest(path: str | os.PathLike, root: str | None = None) -> Manifest:
    """Read and check a manifest (see the module's docstring). Raises CaptureError naming the first problem."""
    path = Path(path)
    if not path.is_file():
        raise CaptureError(f"manifest not found: {path}")
    data = _read(path)
    if not isinstance(data, dict) or not isinstance(data.get("clips"), list):
        raise CaptureError(f"{path.name}: expected {{\"clips\": [{{\"path\": ...}}, ...]}}")
    base = Path(root or data.get("root") or path.parent)
    if not base.is_absolute():
        base = (path.parent / base)
    base = Path(os.path.abspath(base))
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise CaptureError(f"{path.name}: defaults must be a table of options")
    common = _options(defaults, f"{path.name} defaults", base)
    clips, names = [], {}
    for k, entry in enumerate(data["clips"]):
        where = f"{path.name} clip {k + 1}"
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"].strip():
            raise CaptureError(f"{where}: expected an entry with a path")
        opts = {**common, **_options(entry, where, base)}
        if opts.get("side") and "hands" in opts and opts["hands"] == 2:
            raise CaptureError(f"{where}: side {opts['side']} keeps one hand; it cannot go with hands = 2")
        src = entry["path"]
        full = src if os.path.isabs(src) else str(base / src)
        name = entry.get("name") or clip_name(src)
        if not isinstance(name, str) or _NAME.sub("", name) != name or name in (".", ".."):
            raise CaptureError(f"{where}: name {name!r} must be letters, digits, '.', '_' or '-'")
        if name in names:
            raise CaptureError(f"{where}: output name {name!r} is also clip {names[name] + 1}'s; give one a \"name\"")
        names[name] = k
        clips.append(ClipSpec(name=name, path=os.path.abspath(full), options=opts))
    if not clips:
        raise CaptureError(f"{path.name} lists no clips")
    return Manifest(path=str(path), root=str(base), clips=tuple(clips))
