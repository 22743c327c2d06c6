"""Running a step-generator job from an operator: drained by ``execute()``, ticked by ``modal()``.

``execute()`` runs the whole job at once (headless, scripts, tests, farms). ``invoke()`` in a UI
session ticks the job from a timer, a few milliseconds per tick, shows its progress in the status
bar and cancels it on Esc (closing the generator, which stops the worker before anything is written).
A job that yields the same `Progress` object again is waiting (for the worker), so the tick ends early.
A `CaptureError` becomes an ERROR report and CANCELLED; any other exception is a bug and keeps its
traceback.

A running modal job is tracked here (`track`) with its generator and timer: disabling the add-on
unregisters the operator, and Blender then frees a running modal operator without calling its
``cancel`` ("whoever unregisters the operator will clean up"), so the add-on's unregister calls
`stop_all`, which closes the jobs (their workers stop) and removes their timers.
"""
from __future__ import annotations

import dataclasses
import time
import traceback

import bpy

from ..blender_addon import CaptureError, job
from ..blender_addon.progress import Progress

TICK_S = 0.05  # timer interval
BUDGET_S = 0.03  # work per tick


@dataclasses.dataclass
class _Running:
    """A modal job: its step generator, the window manager timer that ticks it, the workspace whose status
    bar shows it."""

    steps: object
    timer: object = None
    workspace: object = None


_ACTIVE: dict = {}  # bl_idname -> _Running, the modal jobs running now


def running(bl_idname: str) -> bool:
    """True while a modal job of this operator runs (its poll then refuses a second one)."""
    return bl_idname in _ACTIVE


def track(bl_idname: str, steps, timer=None, workspace=None) -> None:
    """Record a modal job that has started (so that `stop_all` can end it)."""
    _ACTIVE[bl_idname] = _Running(steps, timer, workspace)


def stop_all() -> None:
    """End every running job: close its generator (its ``finally`` stops the worker before anything is
    written), remove its timer and status text. Called when the add-on is disabled."""
    wm = bpy.context.window_manager
    for r in list(_ACTIVE.values()):
        try:
            r.steps.close()
        except Exception:  # noqa: BLE001 - keep ending the others
            traceback.print_exc()
        try:
            if r.timer is not None and wm is not None:
                wm.event_timer_remove(r.timer)
            if r.workspace is not None:
                r.workspace.status_text_set(None)
        except (ReferenceError, RuntimeError):  # the window or workspace is already gone
            pass
    _ACTIVE.clear()


class JobOperator:
    """Mixin for operators whose work is a step generator (``make_steps``) with a result (``finished``)."""

    _steps = None
    _timer = None
    _progress = None  # last Progress (no annotation: Blender would read it as a property)

    # -- to implement
    def make_steps(self, context, wait: float):
        raise NotImplementedError

    def finished(self, context, result) -> None:
        """Report the result."""

    # -- execute: drain
    def execute(self, context):
        try:
            steps = self.make_steps(context, wait=0.05)
            result = job.drain(steps, on_progress=lambda p: print(f"{self.bl_label}: {p.text()}", flush=True))
        except CaptureError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.finished(context, result)
        return {"FINISHED"}

    # -- invoke/modal: tick
    def start_modal(self, context):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        try:
            self._steps = self.make_steps(context, wait=0.0)
        except CaptureError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._progress = Progress("start", message="starting")
        wm = context.window_manager
        self._timer = wm.event_timer_add(TICK_S, window=context.window)
        wm.modal_handler_add(self)
        context.workspace.status_text_set(self._draw_status)
        track(self.bl_idname, self._steps, self._timer, context.workspace)
        return {"RUNNING_MODAL"}

    def invoke(self, context, event):
        return self.start_modal(context)

    def _draw_status(self, header, context):
        p = self._progress
        row = header.layout.row(align=True)
        if p is not None:
            row.progress(factor=max(0.0, min(1.0, p.fraction)), type="BAR", text=f"{self.bl_label}: {p.text()}")
        row.label(text="Esc to cancel", icon="EVENT_ESC")

    def _stop(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if self._steps is not None:
            self._steps.close()  # runs the job's finally blocks: the worker is stopped
            self._steps = None
        _ACTIVE.pop(self.bl_idname, None)
        context.workspace.status_text_set(None)

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._stop(context)
            self.report({"INFO"}, f"{self.bl_label} cancelled; nothing was changed")
            return {"CANCELLED"}
        if event.type != "TIMER":  # any timer ticks the job (events do not say whose timer fired)
            return {"PASS_THROUGH"}
        deadline = time.monotonic() + BUDGET_S
        try:
            while time.monotonic() < deadline:
                p = next(self._steps)
                if p is self._progress:  # the job is waiting (same Progress again): give the time back
                    break
                self._progress = p
        except StopIteration as stop:
            self._steps = None
            self._stop(context)
            self.finished(context, stop.value)
            return {"FINISHED"}
        except CaptureError as exc:
            self._stop(context)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback, tell the user where it is
            traceback.print_exc()
            self._stop(context)
            self.report({"ERROR"}, f"{self.bl_label} failed with an internal error ({exc.__class__.__name__}: "
                                   f"{exc}); the traceback is in the system console")
            return {"CANCELLED"}
        context.workspace.status_text_set(self._draw_status)  # also redraws the status bar
        return {"PASS_THROUGH"}

    def cancel(self, context):  # Blender ends the modal operator (file load, window closed)
        self._stop(context)
