"""`Progress`: what a long job yields between its steps (the status bar and the console show it)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Progress:
    """One step of a job.

    stage: short name ("detect", "fit", "write", "scene", "pip" ...); done/total: units of work in
    the stage (total 0 when unknown); fps: frames per second; eta_s: seconds left (< 0 unknown);
    fraction: overall 0..1 of the whole job; message: a line for the user.
    """

    stage: str
    done: int = 0
    total: int = 0
    fps: float = 0.0
    eta_s: float = -1.0
    fraction: float = 0.0
    message: str = ""

    def text(self) -> str:
        """One-line summary: "fit 120/600 · 85 fps · 6 s left"."""
        parts = [self.message or self.stage]
        if self.total:
            parts[0] = f"{parts[0]} {self.done}/{self.total}"
        if self.fps > 0:
            parts.append(f"{self.fps:.0f} fps")
        if self.eta_s >= 0:
            parts.append(f"{self.eta_s:.0f} s left")
        return " \u00b7 ".join(parts)
