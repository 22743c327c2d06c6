"""Drive a batch: pick the clips, run them with an engine, append the summary as clips finish, show progress.

Engines: "local" runs the clips one after another in this process (the capture's imports are paid once);
"ray" (`core.batch.ray_engine`) runs one Ray task per clip (captured in the Ray worker process, whose imports are
paid once per worker; or, isolated, by the capture CLI as a child process). Both call `core.batch.job.run_clip`,
so a clip's output folder is the same whichever engine made it, and a batch started with one engine resumes with
the other.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from ..errors import CaptureError
from .job import now_iso, run_clip
from .manifest import Manifest

SUMMARY = "summary.jsonl"


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    """engine: "local" | "ray"; address: a Ray cluster ("auto", "ray://host:10001"; None: a local Ray);
    gpus_per_clip: GPUs each Ray task asks for (0: none); num_cpus / num_gpus: CPUs / GPUs of a Ray started
    here (None: what the machine has; num_gpus may declare GPUs, e.g. to test the scheduling);
    blender: a Blender executable or a Python with bpy for the Blender step (None: no step); fbx: also
    write clip.fbx; progress: show the bar; isolate: Ray tasks run the capture CLI as a child process (a crash is
    only that clip's failure; each clip then pays the CLI's start-up) instead of capturing in the Ray worker;
    python: the capture CLI's interpreter in Ray tasks (implies isolate; None: the Ray worker's own Python; a
    cluster whose Ray runs in an environment of its own points this at Hand Capture's)."""

    engine: str = "local"
    address: str | None = None
    gpus_per_clip: float = 0.0
    num_cpus: int | None = None
    num_gpus: float | None = None
    blender: str | None = None
    fbx: bool = False
    progress: bool = True
    python: str | None = None
    isolate: bool = False


def append_summary(out: Path, result: dict) -> None:
    """One JSON line per finished clip, appended in one write (several farm tasks may append at once)."""
    line = json.dumps({"time": now_iso(), **result}, sort_keys=True) + "\n"
    fd = os.open(out / SUMMARY, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="clip", desc="batch", file=sys.stderr, disable=None if enabled else True,
                dynamic_ncols=True, smoothing=0.1)


def run_batch(manifest: Manifest, out: str | os.PathLike, settings: BatchSettings = BatchSettings(),
              on_result=None) -> list:
    """Run every clip of ``manifest`` into ``out``; returns the results (`core.batch.job.run_clip`'s dicts) in
    the order clips finished. ``on_result(result)`` is called as each finishes."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CaptureError(f"cannot make the output folder {out}: {exc.strerror or exc}") from None
    results = []
    with _bar(len(manifest.clips), settings.progress) as bar:
        def finished(result: dict) -> None:
            append_summary(out, result)
            results.append(result)
            bar.set_postfix_str(f"{result['clip']}: {result['outcome']}", refresh=False)
            bar.update(1)
            if on_result is not None:
                on_result(result)

        if settings.engine == "local":
            for spec in manifest.clips:
                finished(run_clip(spec, out, engine="local", blender=settings.blender, fbx=settings.fbx))
        elif settings.engine == "ray":
            from .ray_engine import run_on_ray

            run_on_ray(manifest.clips, out, settings, finished)
        else:
            raise CaptureError(f"unknown engine {settings.engine!r}; use local or ray")
    return results


def report_lines(results: list) -> list:
    """One line per clip and a total line (the CLI prints them)."""
    lines = []
    for r in results:
        what = r["outcome"] if r["outcome"] != "skipped" else f"skipped ({r.get('done_before')} before)"
        extra = f": {r['message']}" if r.get("message") and r["outcome"] != "skipped" else ""
        why = f" [{r['reason']}]" if r.get("reason") and r["outcome"] != "skipped" else ""
        blend = f", blend {r['blend']}" if r.get("blend") else ""
        lines.append(f"{r['clip']}: {what}{why}{blend} in {r['seconds']:.1f} s{extra}")
    counts = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    lines.append(f"{len(results)} clips: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    return lines


def batch_from_args(args, print_line=print) -> int:
    """``python -m core batch``: 0 when every clip is ok, skipped or "no hand"; 2 when any clip (or its Blender
    step) failed, after all the others finished (the failures named on stderr, one line each)."""
    from .manifest import load_manifest

    manifest = load_manifest(args.manifest, args.root)
    if args.index is not None:
        if args.index >= len(manifest.clips):
            raise CaptureError(f"--index {args.index}: {os.path.basename(manifest.path)} has {len(manifest.clips)} clips "
                               f"(indices 0 to {len(manifest.clips) - 1})")
        manifest = manifest.only([manifest.clips[args.index].name] + list(args.only or []))
    elif args.only:
        manifest = manifest.only(args.only)
    if args.list:
        print_line(json.dumps([c.name for c in manifest.clips]))
        return 0
    if args.fbx and not args.blend:
        raise CaptureError("--fbx goes with --blend (the FBX is written by the Blender step)")
    engine = args.engine or ("ray" if args.address else "local")
    if engine == "local" and (args.address or args.gpus_per_clip or args.num_cpus or args.num_gpus is not None
                              or args.python or args.isolate):
        raise CaptureError("--address, --gpus-per-clip, --num-cpus, --num-gpus, --python and --isolate are for "
                           "--engine ray")
    blender = (args.blender or os.environ.get("HANDCAP_BLENDER") or "blender") if args.blend else None
    settings = BatchSettings(engine=engine, address=args.address, gpus_per_clip=args.gpus_per_clip,
                             num_cpus=args.num_cpus, num_gpus=args.num_gpus, blender=blender, fbx=args.fbx, progress=not args.quiet,
                             python=args.python, isolate=args.isolate)
    results = run_batch(manifest, args.out, settings)
    for line in report_lines(results):
        print_line(line)
    failed = [r for r in results if r["outcome"] == "failed" or r.get("blend") == "failed"]
    for r in failed:
        sys.stderr.write(f"error: {r['clip']}: {(r['message'] or 'Blender step failed').splitlines()[0]}\n")
    if failed:
        sys.stderr.write(f"error: {len(failed)} of {len(results)} clips failed; the others finished "
                         f"(see {Path(args.out) / SUMMARY})\n")
        return 2
    return 0
