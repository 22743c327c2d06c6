"""``python -m core.net.synth``: write chunks of synthetic training images (see docs/synth.md)."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from .sample import SynthSettings


def parse_chunks(text: str) -> range:
    """'A:B' (chunks A..B-1) or 'A' (one chunk) -> range; ValueError with a sentence otherwise."""
    try:
        if ":" in text:
            a, b = (int(x) for x in text.split(":"))
        else:
            a = int(text)
            b = a + 1
    except ValueError:
        raise ValueError(f"--chunks {text!r}: give A:B (chunks A to B-1) or one chunk number") from None
    if a < 0 or b <= a:
        raise ValueError(f"--chunks {text!r}: needs 0 <= A < B")
    return range(a, b)


def parse_set(items) -> dict:
    """--set name=value overrides of SynthSettings fields (numbers, or comma-separated ranges)."""
    fields = {f.name: f for f in dataclasses.fields(SynthSettings)}
    default = SynthSettings()
    out = {}
    for item in items or []:
        name, _, value = item.partition("=")
        if name not in fields or not value:
            raise ValueError(f"--set {item!r}: expected name=value with name one of {', '.join(fields)}")
        old = getattr(default, name)
        try:
            if isinstance(old, tuple):
                out[name] = tuple(type(old[0])(float(x)) for x in value.split(","))
            elif isinstance(old, str):
                out[name] = value
            else:
                out[name] = type(old)(float(value))
        except ValueError:
            raise ValueError(f"--set {item!r}: {value!r} is not a {type(old).__name__}") from None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.net.synth", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (chunk_NNNN/ inside)")
    ap.add_argument("--chunks", default="0:1", help="A:B makes chunks A..B-1 (complete ones are skipped)")
    ap.add_argument("--per-chunk", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0, help="base seed; chunk c's seed derives from it and c")
    ap.add_argument("--size", type=int, default=SynthSettings.size)
    ap.add_argument("--samples", type=int, default=SynthSettings.samples, help="Cycles samples per pixel")
    ap.add_argument("--format", choices=("jpg", "png"), default=SynthSettings.fmt)
    ap.add_argument("--threads", type=int, default=0, help="render threads (0: all cores)")
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                    help="Cycles device (gpu: OptiX/CUDA/HIP/oneAPI/Metal, whichever has a device)")
    ap.add_argument("--blender-python", help="a Python with bpy to render with (default: this one)")
    ap.add_argument("--no-ycb", action="store_true", help="procedural occluders only")
    ap.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a SynthSettings field")
    a = ap.parse_args(argv)
    from ...errors import CaptureError

    try:
        chunks = parse_chunks(a.chunks)
        if a.per_chunk < 1 or a.size < 16 or a.samples < 1:
            raise ValueError("--per-chunk and --samples must be >= 1 and --size >= 16")
        settings = SynthSettings(size=a.size, samples=a.samples, fmt=a.format).replace(**parse_set(a.set))
        data = None
        if not a.no_ycb:
            root = Path(__file__).resolve().parents[3]
            d = Path(os.environ.get("HANDCAP_DATA", root.parent / "shared" / "data"))
            data = d if (d / "objects").is_dir() else None
        from .generate import generate

        generate(a.out, chunks, a.per_chunk, settings, a.seed, a.blender_python, a.threads, data,
                 log=lambda s: print(s, flush=True), device=a.device)
    except (ValueError, CaptureError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
