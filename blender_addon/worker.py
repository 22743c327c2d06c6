"""A child process whose output streams back line by line, without blocking Blender.

The worker protocol (core/progress.py, the same idea as bl_pkg's typed messages): stdout carries one
JSON object per line, ``{"event": "progress" | "warning" | "error" | "done", ...}``, "done" always last;
stderr is the log. `Worker` reads both on threads; the main thread calls `poll` between steps and
`finish` at the end, which raises `WorkerError` for an "error" event (the user's message), or a
crash: a non-zero exit or a missing "done", reported with the last log line. `cancel` ends the
worker's whole process group. Nothing here touches bpy.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import queue
import signal
import subprocess
import threading

from ..core.errors import CaptureError

log = logging.getLogger(__name__)

# Variables of Blender's own Python that must not leak into another interpreter.
_STRIP_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "__PYVENV_LAUNCHER__")


class WorkerError(CaptureError):
    """The worker reported an error or stopped without finishing; ``log_tail`` holds its last log lines."""

    def __init__(self, message: str, log_tail: tuple = ()):
        super().__init__(message)
        self.log_tail = log_tail


@dataclasses.dataclass(frozen=True)
class Event:
    """A message from the worker: kind "progress" | "warning" | "error" | "done" | "log"; data: its fields."""

    kind: str
    data: dict


def child_env(pythonpath: str | None = None, extra: dict | None = None) -> dict:
    """Environment for a child interpreter: ours without Blender's Python variables, unbuffered output."""
    env = {k: v for k, v in os.environ.items() if k not in _STRIP_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    env.update(extra or {})
    return env


def describe_exit(returncode: int | None) -> str:
    """Human wording of an exit status: "exit code 3", "killed by signal 9 (SIGKILL)"."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {-returncode} ({name})"
    return f"exit code {returncode}"


class Worker:
    """One child process.

    Args:
        argv: command line.
        name: what to call it in messages ("capture worker").
        json_events: parse stdout as the JSON protocol (else every stdout/stderr line is a "log" event).
        cwd, env: as for subprocess.
        log_path: file that receives the full log (stderr, and stdout when not JSON), or None.
        log_append: add to ``log_path`` instead of starting it afresh.
    """

    def __init__(self, argv: list, name: str = "worker", json_events: bool = True, cwd: str | None = None,
                 env: dict | None = None, log_path: str | None = None, log_append: bool = False):
        self.argv = [str(a) for a in argv]
        self.name = name
        self.json_events = json_events
        self.log_tail = collections.deque(maxlen=50)
        self.warnings: list = []
        self.errors: list = []
        self.done: dict | None = None
        self.log_path = log_path
        self._queue: queue.Queue = queue.Queue()
        mode = "a" if log_append else "w"
        self._log_file = open(log_path, mode, encoding="utf-8") if log_path else None  # noqa: SIM115
        self._log_lock = threading.Lock()
        kwargs = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kwargs["start_new_session"] = True  # its own process group, so cancel reaches its children
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=cwd, env=env, text=True, encoding="utf-8", errors="replace", bufsize=1, **kwargs,
            )
        except OSError as exc:
            self._close_log()
            raise WorkerError(f"cannot start the {name} ({self.argv[0]}): {exc.strerror or exc}") from None
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, json_events), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    # -- reader threads
    def _log(self, line: str) -> None:
        self.log_tail.append(line)
        log.debug("%s: %s", self.name, line)
        if self._log_file is not None:
            with self._log_lock:
                self._log_file.write(line + "\n")

    def _read(self, stream, parse_json: bool) -> None:
        for raw in stream:
            line = raw.rstrip("\r\n")
            if not line:
                continue
            if parse_json:
                try:
                    msg = json.loads(line)
                except ValueError:
                    msg = None
                if isinstance(msg, dict) and isinstance(msg.get("event"), str):
                    self._queue.put(Event(msg["event"], msg))
                    continue
            self._log(line)
            if not self.json_events:
                self._queue.put(Event("log", {"line": line}))
        stream.close()

    def _close_log(self) -> None:
        if self._log_file is not None:
            with self._log_lock:
                self._log_file.close()
            self._log_file = None

    # -- main thread
    @property
    def finished(self) -> bool:
        """The process has exited and both streams are read to the end."""
        return self.proc.poll() is not None and not any(t.is_alive() for t in self._threads)

    def poll(self, timeout: float = 0.0) -> list:
        """Events received since the last call; waits up to ``timeout`` seconds for the first one."""
        out = []
        try:
            out.append(self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait())
            while True:
                out.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        for ev in out:
            if ev.kind == "warning":
                self.warnings.append(str(ev.data.get("message", "")))
            elif ev.kind == "error":
                self.errors.append(str(ev.data.get("message", "")))
            elif ev.kind == "done":
                self.done = ev.data
        return out

    def last_log_line(self) -> str:
        """The last non-empty log line (the usual place for a crash's reason), or "no output"."""
        return self.log_tail[-1] if self.log_tail else "no output"

    def finish(self) -> dict:
        """After `finished`: the "done" event's fields ({} without the JSON protocol).

        Raises WorkerError for an "error" event, a non-zero exit, or (JSON protocol) a missing "done".
        """
        for t in self._threads:
            t.join(timeout=5)
        self.poll()
        self._close_log()
        rc = self.proc.returncode
        see_log = f" (full log: {self.log_path})" if self.log_path else ""
        if self.errors:  # exit 2 is the user's error; anything else is worth the log
            raise WorkerError(self.errors[-1] + (see_log if rc not in (0, 2) else ""), tuple(self.log_tail))
        if rc != 0 or (self.json_events and self.done is None):
            why = describe_exit(rc) if rc != 0 else "no 'done' message"
            raise WorkerError(f"the {self.name} stopped without finishing ({why}): {self.last_log_line()}{see_log}",
                              tuple(self.log_tail))
        return self.done or {}

    def cancel(self, grace_s: float = 3.0) -> None:
        """End the worker and its children (terminate, then kill after ``grace_s``); safe to call twice."""
        if self.proc.poll() is None:
            try:
                if os.name == "nt":
                    subprocess.run(["taskkill", "/T", "/F", "/PID", str(self.proc.pid)],
                                   capture_output=True, check=False)
                else:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=grace_s)
            except (ProcessLookupError, PermissionError):
                pass
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                self.proc.wait(timeout=grace_s)
        for t in self._threads:
            t.join(timeout=1)
        self._close_log()

    def __del__(self):  # a dropped worker must not outlive its owner
        try:
            if self.proc.poll() is None:
                self.cancel(grace_s=0.5)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

