"""Progress events from long jobs, and their two renderings: a terminal bar or JSON lines.

A job yields `Progress` events; the CLI shows a bar (frames/s, ETA) on a terminal, stays quiet in a
pipe, and with ``--json-progress`` prints one JSON object per line on stdout (the worker protocol the
Blender add-on reads: events "progress", "warning", "error", and "done", which is always the last).
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time


@dataclasses.dataclass(frozen=True)
class Progress:
    """stage: "open" | "detect" | "fit" | "write"; done/total frames (total 0 if unknown)."""

    stage: str
    done: int
    total: int
    fps: float = 0.0
    eta_s: float = 0.0


class Rate:
    """Frames/s and ETA over the work so far."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def event(self, stage: str, done: int, total: int) -> Progress:
        dt = max(time.perf_counter() - self.t0, 1e-9)
        fps = done / dt
        eta = (total - done) / fps if fps > 0 and total else 0.0
        return Progress(stage, done, total, fps, eta)


def emit_json(event: str, **fields) -> None:
    """One JSON object on stdout, flushed (worker protocol)."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class Reporter:
    """Renders events: mode "json" (stdout lines), "bar" (stderr, terminal) or "quiet"."""

    def __init__(self, mode: str):
        self.mode = mode
        self._last = 0.0

    @classmethod
    def auto(cls, json_progress: bool, quiet: bool) -> "Reporter":
        if json_progress:
            return cls("json")
        if quiet or not sys.stderr.isatty():
            return cls("quiet")
        return cls("bar")

    def progress(self, p: Progress) -> None:
        now = time.perf_counter()
        final = p.total and p.done >= p.total
        if self.mode == "json":
            if now - self._last > 0.2 or final:
                emit_json("progress", stage=p.stage, done=p.done, total=p.total, fps=round(p.fps, 2), eta_s=round(p.eta_s, 1))
                self._last = now
        elif self.mode == "bar" and (now - self._last > 0.1 or final):
            self._last = now
            width = 30
            frac = p.done / p.total if p.total else 0.0
            bar = "#" * int(width * frac) + "-" * (width - int(width * frac))
            sys.stderr.write(f"\r{p.stage:<7}[{bar}] {p.done}/{p.total or '?'}  {p.fps:5.1f} fps  ETA {p.eta_s:5.0f} s ")
            if final:
                sys.stderr.write("\n")
            sys.stderr.flush()

    def warning(self, message: str) -> None:
        if self.mode == "json":
            emit_json("warning", message=message)
        else:
            sys.stderr.write(f"warning: {message}\n")

    def error(self, message: str, **fields) -> None:
        """``fields`` go into the JSON event only (e.g. ``reason="no_hand"``, `core.errors.NoHandError`)."""
        if self.mode == "json":
            emit_json("error", message=message, **{k: v for k, v in fields.items() if v is not None})
        sys.stderr.write(f"error: {message}\n")

    def done(self, **fields) -> None:
        if self.mode == "json":
            emit_json("done", **fields)
