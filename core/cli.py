"""Command line: ``python -m core capture|eval|model|demo``.

Exit codes: 0 ok; 2 a user error (one line ``error: ...`` on stderr, no traceback); 3 a bug
(traceback on stderr); 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from .errors import CaptureError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other user error
        sys.stderr.write(f"error: {message} (see python -m core {self.prog.split()[-1]} --help)\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m core", description="Hand Capture: video of hands -> MANO hand animation.")
    p.add_argument("--cache-dir", help="the core's cache folder, where the open hand model is generated (default: "
                                       "$HANDCAP_CACHE, else the user cache folder, e.g. ~/.cache/hand_capture)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("capture", help="capture hands from a video or an image folder into a clip file")
    c.add_argument("input", help="video file (mp4/mov/avi/mkv) or folder of images")
    c.add_argument("--out", required=True, help="output clip file (.npz)")
    c.add_argument("--static", action="store_true", help="detect every frame independently (default for image folders)")
    c.add_argument("--hands", type=int, choices=(1, 2), default=2, help="maximum number of hands")
    c.add_argument("--start", type=int, default=0, help="first source frame (0-based)")
    c.add_argument("--end", type=int, default=None, help="stop before this source frame")
    c.add_argument("--stride", type=int, default=1, help="use every N-th frame")
    c.add_argument("--fx", type=float)
    c.add_argument("--fy", type=float)
    c.add_argument("--cx", type=float)
    c.add_argument("--cy", type=float)
    c.add_argument("--fov", type=float, help="field of view across the longer image side, degrees (default 69)")
    c.add_argument("--intrinsics", help="K (3,3) or per-frame K (T,3,3): .npy, or .npz[:key] (default key K)")
    c.add_argument("--with-vertices", action="store_true", help="store mesh vertices per frame")
    c.add_argument("--model-right", help="right hand model: official MANO_RIGHT.pkl or a .npz (default: open model)")
    c.add_argument("--model-left", help="left hand model: official MANO_LEFT.pkl or a .npz (default: open model)")
    c.add_argument("--no-vae", action="store_true", help="skip the VAE joint refinement (ablation)")
    c.add_argument("--no-fit", action="store_true",
                   help="skip the 2D-aware fit: analytic IK of the detector's 3D landmarks (ablation; "
                        "with --no-vae: the plain IK output)")
    c.add_argument("--no-collide", action="store_true",
                   help="leave fingers that penetrate each other as fitted (ablation)")
    c.add_argument("--min-confidence", type=float, default=0.5, help="detector confidence threshold")
    c.add_argument("--json-progress", action="store_true", help="worker protocol: JSON events on stdout")
    c.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="score a clip against 3D ground truth (raw detector vs ours)")
    e.add_argument("clip", help="clip file from capture")
    e.add_argument("--gt", required=True, help=".npz with joints_cam (N,21,3) or (N,hands,21,3) metres, MediaPipe "
                                               "order; optional valid (N[,hands],21), hand_order, hand_side (N,)")
    e.add_argument("--gt-key", default="joints_cam")
    e.add_argument("--gt-hand", choices=("right", "left"),
                   help="ground truth's hand: picks the hand axis by hand_order / the frames by hand_side")
    e.add_argument("--side", choices=("right", "left"),
                   help="clip's hand to score (default: --gt-hand, else the most detected)")
    e.add_argument("--json", help="also write the figures as JSON here")
    e.add_argument("--plot", help="also write a PNG of per-frame errors, raw detector vs ours")

    m = sub.add_parser("model", help="write the project's open hand model files (npz + MANO-format pkl)")
    m.add_argument("--out", default=None, help="folder (default: the open model's folder in the cache)")

    d = sub.add_parser("demo", help="render a clip of the open hand model, capture it, and score it")
    d.add_argument("--out", default="out/demo", help="output folder")
    d.add_argument("--frames", type=int, default=48)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    if args.cache_dir:
        os.environ["HANDCAP_CACHE"] = os.path.abspath(args.cache_dir)
    json_mode = bool(getattr(args, "json_progress", False))
    from .progress import Reporter

    rep = Reporter.auto(json_mode, getattr(args, "quiet", False))
    try:
        if args.command == "capture":
            from .capture import CaptureOptions, capture_to_file

            out = capture_to_file(CaptureOptions.from_args(args), args.out, rep)
            rep.done(out=str(out))
            if rep.mode != "json":
                print(out)
        elif args.command == "eval":
            from .io.clip import load_clip
            from .eval.evaluate import evaluate, load_gt

            report = evaluate(load_clip(args.clip), load_gt(args.gt, args.gt_key, args.gt_hand), args.side)
            print(report.table())
            if args.plot:
                print(report.plot(args.plot))
            if args.json:
                import json

                Path(args.json).write_text(json.dumps({"n_frames": report.n_frames, "n_gt": report.n_gt,
                                                       "n_detected": report.n_detected, "side": report.side,
                                                       "intrinsics_guessed": report.k_guessed,
                                                       "rows": report.rows}, indent=1))
        elif args.command == "model":
            from .hand.gen import ensure_open_model
            from .hand.gen.arrays import write_assets

            if args.out:
                for f in write_assets(Path(args.out)).values():
                    print(f)
            else:
                print(ensure_open_model())
        elif args.command == "demo":
            from .demo import run_demo

            run_demo(Path(args.out), args.frames, rep)
        return 0
    except CaptureError as exc:
        rep.error(str(exc))
        return 2
    except KeyboardInterrupt:
        rep.error("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: keep the trace for the log, one line for the user
        traceback.print_exc(file=sys.stderr)
        rep.error(f"internal error ({exc.__class__.__name__}: {exc}); please report it with the log above")
        return 3
