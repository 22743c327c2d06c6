"""Command line: ``python -m core capture|eval|model|demo``.

Exit codes: 0 ok; 2 a user error (one line ``error: ...`` on stderr, no traceback); 3 a bug
(traceback on stderr); 130 interrupted. User errors are `CaptureError`, argparse's own complaints (every
number is checked: finite, in range), and an OSError on a path (permission, name too long, disk full).
File names are passed through untouched (argument lists, never a shell), and printed as the file system
spells them; an error line shows a line break inside a name as ``\\n``.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import traceback
from pathlib import Path

from .errors import CaptureError
from .progress import Reporter

PROG = "python -m core"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other user error
        message = _one_line(message)  # argparse may show a value holding a line break
        sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


# Argument types: argparse turns their ArgumentTypeError into "error: argument --x: <message>" (exit 2).
def _int_at_least(low: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, a whole number >= {low}; got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, a whole number >= {low}; got {value}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number; got {text!r}")
    return value


def _fov_arg(text: str):
    """--fov: degrees in FOV_RANGE, or 'auto' (the focal self-calibration)."""
    if text.strip().lower() == "auto":
        return "auto"
    return _float_in(*FOV_RANGE, "a field of view in degrees, or 'auto'")(text)


def _float_in(low: float, high: float, what: str):
    def parse(text: str) -> float:
        value = _finite(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what} from {low:g} to {high:g}; got {text!r}")
        return value

    parse.__name__ = what
    return parse


PIXELS_MAX = 1e7  # focal lengths and principal points beyond this are typos, and overflow float32 projections


def _positive(text: str) -> float:
    value = _finite(text)
    if not 0 < value <= PIXELS_MAX:
        raise argparse.ArgumentTypeError(f"expected a focal length in pixels, above 0 and at most {PIXELS_MAX:g}; "
                                         f"got {text!r}")
    return value


def _pixel(text: str) -> float:
    value = _finite(text)
    if abs(value) > PIXELS_MAX:
        raise argparse.ArgumentTypeError(f"expected a position in pixels, at most {PIXELS_MAX:g} in size; "
                                         f"got {text!r}")
    return value


def _path(text: str) -> str:
    """A file or folder name as given (never rewritten: the clip stores the input's name as typed)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file or folder name; got an empty one")
    if "\x00" in text:
        raise argparse.ArgumentTypeError(f"a file name cannot hold a NUL character; got {text!r}")
    return text


def _workers(text: str) -> int | None:
    """``auto`` -> None; else a whole number >= 1."""
    if text.strip().lower() == "auto":
        return None
    return _int_at_least(1, "a worker count or 'auto'")(text)


FOV_RANGE = (0.01, 179.99)  # degrees; a pinhole camera's field of view is above 0 and below 180


def _object_spec(text: str) -> tuple:
    """MESH[:TRANSFORMS] -> (mesh path, transforms path or None); a Windows drive colon is not a separator."""
    import re

    m = re.match(r"^(.+?\.(?:obj|npz))(?::(.+))?$", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"expected MESH.obj or MESH.obj:TRANSFORMS.npy (or .npz meshes); got {text!r}")
    return _path(m.group(1)), (_path(m.group(2)) if m.group(2) else None)


def _regions(text: str) -> tuple:
    from .contact.refine import REGIONS

    names = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in names if x not in REGIONS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown region {bad[0]!r}; use {', '.join(REGIONS)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Hand Capture: video of hands -> MANO hand animation.")
    p.add_argument("--cache-dir", type=_path,
                   help="the core's cache folder, where the open hand model is generated (default: "
                        "$HANDCAP_CACHE, else the user cache folder, e.g. ~/.cache/hand_capture)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("capture", help="capture hands from a video or an image folder into a clip file")
    c.add_argument("input", type=_path, help="video file (mp4/mov/avi/mkv) or folder of images")
    c.add_argument("--out", required=True, type=_path, help="output clip file (.npz)")
    c.add_argument("--static", action="store_true", help="detect every frame independently (default for image folders)")
    c.add_argument("--hands", type=int, choices=(1, 2), default=None,
                   help="2 (default): every hand, up to two at a time; 1: one hand over the whole clip, never "
                        "switching (the most confident and largest, or --side)")
    c.add_argument("--side", choices=("right", "left"), default=None,
                   help="keep only this hand (implies --hands 1)")
    c.add_argument("--start", type=_int_at_least(0, "a frame index"), default=0,
                   help="first source frame (0-based)")
    c.add_argument("--end", type=_int_at_least(1, "a frame index"), default=None,
                   help="stop before this source frame")
    c.add_argument("--stride", type=_int_at_least(1, "a frame step"), default=1, help="use every N-th frame")
    c.add_argument("--fx", type=_positive, help="focal length in pixels (fy defaults to fx)")
    c.add_argument("--fy", type=_positive)
    c.add_argument("--cx", type=_pixel, help="principal point in pixels (default: the image centre)")
    c.add_argument("--cy", type=_pixel)
    c.add_argument("--fov", type=_fov_arg,
                   help="field of view across the longer image side, degrees (default 69), or 'auto': one per video "
                        "from the hand's own perspective, the default kept where the clip does not determine it "
                        "(reported; recorded in the clip as self_calibration)")
    c.add_argument("--intrinsics", type=_path,
                   help="K (3,3) or per-frame K (T,3,3): .npy, or .npz[:key] (default key K; C:\\d\\K.npz:K works)")
    c.add_argument("--with-vertices", action="store_true", help="store mesh vertices per frame")
    c.add_argument("--model-right", type=_path,
                   help="right hand model: official MANO_RIGHT.pkl or a .npz (default: open model)")
    c.add_argument("--model-left", type=_path,
                   help="left hand model: official MANO_LEFT.pkl or a .npz (default: open model)")
    c.add_argument("--no-vae", action="store_true", help="skip the VAE joint refinement (ablation)")
    c.add_argument("--no-fit", action="store_true",
                   help="skip the 2D-aware fit: analytic IK of the detector's 3D landmarks (ablation; "
                        "with --no-vae: the plain IK output)")
    c.add_argument("--no-collide", action="store_true",
                   help="leave fingers that penetrate each other as fitted (ablation)")
    c.add_argument("--separate-sizes", action="store_true",
                   help="size a right and a left hand seen together each alone (default: one size for both, as "
                        "one person's hands; use this when they belong to two people)")
    c.add_argument("--min-confidence", type=_float_in(0.0, 1.0, "a confidence"), default=0.5,
                   help="detector confidence threshold")
    c.add_argument("--detector", choices=("auto", "mediapipe", "hybrid", "torch"), default="auto",
                   help="hand detector: MediaPipe's legacy Hands; hybrid: MediaPipe's own networks with the "
                        "palm detector on a schedule (a hand entering is looked for every 5th frame, so found a few "
                        "frames later; faster on the CPU); torch: the torch port of both (same models and graph, batched on a GPU); auto "
                        "(default): torch on a GPU, hybrid on the CPU")
    c.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="torch device of the torch detector and of the fit (VAE, IK, refinement, limits, penetration "
                        "fix, smoothing); default: a GPU where torch sees one")
    c.add_argument("--model", choices=("pipeline", "paper"), default="pipeline",
                   help="what makes the 3D: pipeline (default: the detector's 3D landmarks, VAE, 2D-aware fit) or "
                        "paper (the paper's network on the detector's crops, its MANO branch fitted to the image; "
                        "BENCHMARKS.md 'The paper's network')")
    c.add_argument("--paper-weights", type=_path, help="the network's weights for --model paper "
                   "(default core/net/weights/paper.pt)")
    c.add_argument("--workers", type=_workers, default=None, metavar="N|auto",
                   help="detect the clip in N parallel segments, one process each (default auto: one per CPU core "
                        "for clips of at least 100 frames per core; 1: one pass in this process)")
    c.add_argument("--json-progress", action="store_true", help="worker protocol: JSON events on stdout")
    c.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="score a clip against 3D ground truth (raw detector vs ours)")
    e.add_argument("clip", type=_path, help="clip file from capture")
    e.add_argument("--gt", required=True, type=_path,
                   help=".npz with joints_cam (N,21,3) or (N,hands,21,3) metres, MediaPipe "
                        "order; optional valid (N[,hands],21), hand_order, hand_side (N,)")
    e.add_argument("--gt-key", default="joints_cam")
    e.add_argument("--gt-hand", choices=("right", "left"),
                   help="ground truth's hand: picks the hand axis by hand_order / the frames by hand_side")
    e.add_argument("--side", choices=("right", "left"),
                   help="clip's hand to score (default: --gt-hand, else the most detected)")
    e.add_argument("--json", type=_path, help="also write the figures as JSON here")
    e.add_argument("--plot", type=_path, help="also write a PNG of per-frame errors, raw detector vs ours")

    r = sub.add_parser("refine", help="contact refinement: hands touch objects and each other without passing through")
    r.add_argument("clip", type=_path, help="clip file from capture")
    r.add_argument("--object", action="append", default=[], type=_object_spec, metavar="MESH[:TRANSFORMS]",
                   help="object mesh (.obj or .npz with vertices/faces, metres) and optionally a .npy of (T,4,4) "
                        "mesh-to-camera transforms, one per clip frame (OpenCV camera frame; none = static in the "
                        "camera frame); repeat for several objects")
    r.add_argument("--out", required=True, type=_path, help="output clip file (.npz)")
    r.add_argument("--with-vertices", action="store_true", help="store mesh vertices per frame")
    r.add_argument("--pin", default="", type=_regions, help="regions always pulled onto the nearest surface, "
                   "comma-separated: thumb,index,middle,ring,pinky,palm")
    r.add_argument("--exclude", default="", type=_regions, help="regions never pulled onto a surface")
    r.add_argument("--no-hand-hand", action="store_true", help="do not separate two hands that pass through each other")
    r.add_argument("--json-progress", action="store_true", help="worker protocol: JSON events on stdout")
    r.add_argument("--quiet", action="store_true", help="no progress bar")

    b = sub.add_parser("batch", help="capture the clips a manifest lists, one output folder each; resumable")
    b.add_argument("manifest", type=_path,
                   help='JSON, TOML or CSV manifest: {"clips": [{"path": "a.mp4", "hands": 1, ...}, ...]} (paths '
                        "relative to its folder, or to --root / its \"root\" key)")
    b.add_argument("--out", required=True, type=_path, help="output folder: <name>/clip.npz, clip.json, capture.log "
                   "per clip; summary.jsonl")
    b.add_argument("--root", type=_path, help="folder the manifest's paths are relative to (shared storage)")
    b.add_argument("--engine", choices=("local", "ray"), default=None,
                   help="local (default): clips one after another here; ray: one Ray task per clip")
    b.add_argument("--address", default=None, help="Ray cluster to use (auto, ray://head:10001; implies --engine "
                   "ray); default: a Ray started on this machine")
    b.add_argument("--gpus-per-clip", type=_float_in(0.0, 64.0, "a GPU count"), default=0.0,
                   help="GPUs each Ray task asks for (Ray runs at most as many clips at once as GPUs allow)")
    b.add_argument("--num-cpus", type=_int_at_least(1, "a CPU count"), default=None,
                   help="CPUs of a Ray started on this machine (default: all)")
    b.add_argument("--num-gpus", type=_float_in(0.0, 64.0, "a GPU count"), default=None,
                   help="GPUs of a Ray started on this machine (default: the ones Ray finds)")
    b.add_argument("--python", type=_path, default=None,
                   help="Python that runs the capture CLI in Ray tasks (default: the Ray worker's own)")
    b.add_argument("--isolate", action="store_true",
                   help="Ray tasks run the capture CLI as a child process (a crash fails only that clip; each clip "
                        "pays the CLI's start-up); default: capture in the Ray worker, imports paid once per worker")
    b.add_argument("--only", action="append", default=None, metavar="NAME",
                   help="run only this clip of the manifest (repeatable; a farm task's command)")
    b.add_argument("--index", type=_int_at_least(0, "a clip index"), default=None,
                   help="run only the manifest's clip at this position, 0-based (an array job's task index)")
    b.add_argument("--blend", action="store_true",
                   help="then key each captured clip into <name>/clip.blend in headless Blender")
    b.add_argument("--fbx", action="store_true", help="with --blend: also write <name>/clip.fbx")
    b.add_argument("--blender", type=_path, default=None,
                   help="Blender executable, or a Python with bpy, for --blend (default: $HANDCAP_BLENDER, else blender)")
    b.add_argument("--list", action="store_true", help="print the clips' output names as JSON and stop")
    b.add_argument("--quiet", action="store_true", help="no progress bar")

    m = sub.add_parser("model", help="write the project's open hand model files (npz + MANO-format pkl)")
    m.add_argument("--out", default=None, type=_path, help="folder (default: the open model's folder in the cache)")

    d = sub.add_parser("demo", help="render a clip of the open hand model, capture it, and score it")
    d.add_argument("--out", default="out/demo", type=_path, help="output folder")
    d.add_argument("--frames", type=_int_at_least(8, "a frame count"), default=48)
    return p


# Every character str.splitlines() breaks at (so also a reader of our stderr in Python, like the add-on's).
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def _one_line(message) -> str:
    """``message`` on one line: line breaks (inside a file name, say) shown escaped, as \\n, \\x1e, ..."""
    return str(message).translate(_LINE_BREAKS)


def _print_path(path) -> None:
    """Print a path on stdout. A name the stream cannot encode (a Linux name holding bytes that are not UTF-8,
    which Python keeps as surrogates; a Windows console's code page) goes out as the file system's own bytes
    instead of failing."""
    text = str(path)
    try:
        print(text, flush=True)
    except UnicodeEncodeError:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:  # a text-only stdout (captured, embedded)
            print(text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), flush=True)
        else:
            buffer.write(os.fsencode(text) + b"\n")
            buffer.flush()


def _os_error(exc: OSError) -> str:
    """One line for an operating-system failure on a user's path (permission, missing folder, name too long)."""
    where = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    return f"{reason}: {where}" if where != "" else reason


def _write_text(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CaptureError(f"cannot write {path}: {exc.strerror or exc}") from None


class _OneLineReporter(Reporter):
    """The CLI's reporter: every warning and error is one line on stderr, whatever names it quotes."""

    def warning(self, message: str) -> None:
        super().warning(_one_line(message))

    def error(self, message: str, **fields) -> None:
        super().error(_one_line(message), **fields)


class _LogToReporter(logging.Handler):
    """The core's own log warnings (``logging.getLogger("core...")``) as the reporter's warnings: one
    ``warning: ...`` line, or a JSON "warning" event for the worker; never Python's bare last-resort print."""

    def __init__(self, reporter):
        super().__init__(logging.WARNING)
        self.reporter = reporter

    def emit(self, record):
        try:
            self.reporter.warning(record.getMessage())
        except Exception:  # noqa: BLE001 - logging must never break the job
            self.handleError(record)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from .io.video import quiet_native_logs

    quiet_native_logs()  # FFmpeg / OpenCV lines on stderr: a bad video ends in one error line of ours
    args = build_parser().parse_args(argv)
    json_mode = bool(getattr(args, "json_progress", False))
    rep = _OneLineReporter(Reporter.auto(json_mode, getattr(args, "quiet", False)).mode)
    core_log = logging.getLogger(__package__ or "core")
    handler, propagate = _LogToReporter(rep), core_log.propagate
    core_log.addHandler(handler)
    core_log.propagate = False
    try:
        return _run(args, rep)
    finally:
        core_log.removeHandler(handler)
        core_log.propagate = propagate


def _run(args, rep) -> int:
    try:
        if args.cache_dir:
            cache = Path(os.path.abspath(args.cache_dir))
            try:
                cache.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CaptureError(f"cannot use {cache} as the cache folder: {exc.strerror or exc}") from None
            os.environ["HANDCAP_CACHE"] = str(cache)
        if args.command == "capture":
            from .capture import CaptureOptions, capture_to_file
            from .io.video import check_source

            check_source(args.input)  # a mistyped name fails at once, before the models load
            out = capture_to_file(CaptureOptions.from_args(args), args.out, rep)
            rep.done(out=str(out))
            if rep.mode != "json":
                _print_path(out)
        elif args.command == "eval":
            from .io.clip import load_clip
            from .eval.evaluate import evaluate, load_gt

            report = evaluate(load_clip(args.clip), load_gt(args.gt, args.gt_key, args.gt_hand), args.side)
            print(report.table())
            if args.plot:
                try:
                    _print_path(report.plot(args.plot))
                except OSError as exc:
                    raise CaptureError(f"cannot write the plot {args.plot}: {exc.strerror or exc}") from None
            if args.json:
                import json

                _write_text(args.json, json.dumps({"n_frames": report.n_frames, "n_gt": report.n_gt,
                                                   "n_detected": report.n_detected, "side": report.side,
                                                   "intrinsics_guessed": report.k_guessed,
                                                   "rows": report.rows}, indent=1))
        elif args.command == "refine":
            from .contact.run import refine_from_args

            out, report = refine_from_args(args, rep)
            rep.done(out=str(out))
            if rep.mode != "json":
                for line in report.lines():
                    print(line)
                _print_path(out)
        elif args.command == "batch":
            from .batch.run import batch_from_args

            return batch_from_args(args, _print_path)
        elif args.command == "model":
            from .hand.gen import ensure_open_model
            from .hand.gen.arrays import write_assets

            if args.out:
                try:
                    written = write_assets(Path(args.out))
                except OSError as exc:
                    raise CaptureError(f"cannot write the hand model into {args.out}: "
                                       f"{exc.strerror or exc}") from None
                for f in written.values():
                    _print_path(f)
            else:
                _print_path(ensure_open_model())
        elif args.command == "demo":
            from .demo import run_demo

            run_demo(Path(args.out), args.frames, rep)
        return 0
    except CaptureError as exc:
        rep.error(str(exc), reason=getattr(exc, "reason", None))
        return 2
    except KeyboardInterrupt:
        rep.error("interrupted")
        return 130
    except OSError as exc:  # the file system refused a user's path somewhere below (permission, name too long)
        rep.error(_os_error(exc))
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug: keep the trace for the log, one line for the user
        traceback.print_exc(file=sys.stderr)
        rep.error(f"internal error ({exc.__class__.__name__}: {exc}); please report it with the log above")
        return 3
