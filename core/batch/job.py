"""One clip of a batch, wherever it runs (this process, a Ray task, a farm task): `run_clip`.

Its output folder ``OUT/<name>/`` holds

- ``clip.npz``: the clip file (docs/clip_format.md), written by `core.io.clip.save_clip` (temp + rename);
- ``clip.json``: the sidecar (`SIDECAR_FORMAT`): input (path, SHA-256, size, mtime), software version, config and
  its hash, outcome (``ok`` | ``no_hand`` | ``failed``) with its message, timings, and the Blender step's result;
  written as a temp file renamed over the old one, so it is always whole;
- ``capture.log``: the capture's warnings and errors (and a bug's traceback); ``clip.blend`` / ``clip.fbx`` when
  the Blender step runs (``apply.log`` its log; ``clip_right.fbx`` / ``clip_left.fbx`` for two hands).

Skip-if-done: a clip is done when its sidecar says ``ok`` or ``no_hand`` for the same config hash and the same input
bytes, and (for ``ok``) its clip file is there. Anything else (no sidecar, an earlier failure, a changed config or
input, a deleted output) runs it again. A failure is recorded and returned, never raised: one clip never stops
the others. A re-run that fails keeps the clip file of an earlier success (the sidecar says so).
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

from ..errors import CaptureError
from .manifest import ClipSpec

SIDECAR_FORMAT = "handcap.batch.clip"
SIDECAR_VERSION = 1
CLIP, SIDECAR, LOG = "clip.npz", "clip.json", "capture.log"
BLEND, FBX, BLEND_LOG = "clip.blend", "clip.fbx", "apply.log"
DONE = ("ok", "no_hand")
# The folder holding the ``core`` package (a source checkout or the installed extension).
CODE_ROOT = str(Path(__file__).resolve().parent.parent.parent)


def software_version() -> str:
    """The project's version (blender_manifest.toml beside the core), "unknown" without one."""
    try:
        import tomllib

        with open(os.path.join(CODE_ROOT, "blender_manifest.toml"), "rb") as f:
            return str(tomllib.load(f).get("version", "unknown"))
    except (OSError, ValueError):
        return "unknown"


def config_of(spec: ClipSpec) -> dict:
    """The clip's config: its capture options and the software version (a change of either redoes the clip)."""
    return {"software_version": software_version(), **spec.config()}


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()


def _files_of(path: str) -> list:
    """The files whose bytes make the input: the file itself, or a folder's files (sorted, recursively)."""
    if os.path.isdir(path):
        return sorted(str(p) for p in Path(path).rglob("*") if p.is_file())
    return [path]


def input_digest(path: str, previous: dict | None = None) -> dict:
    """{"sha256", "size", "mtime_ns"} of an input file or image folder. The SHA-256 of ``previous`` (a
    sidecar's input record) is reused when size and modification time are unchanged, so a re-run does not
    read every video again. Raises OSError for a missing input."""
    files = _files_of(path)
    if not files or not os.path.exists(path):
        raise FileNotFoundError(2, "input not found", path)
    stats = [os.stat(f) for f in files]
    size = sum(s.st_size for s in stats)
    mtime = max(s.st_mtime_ns for s in stats)
    if previous and previous.get("size") == size and previous.get("mtime_ns") == mtime \
            and previous.get("files") == len(files) and previous.get("sha256"):
        return {"sha256": previous["sha256"], "size": size, "mtime_ns": mtime, "files": len(files)}
    h = hashlib.sha256()
    for f in files:
        if len(files) > 1:
            h.update(os.path.relpath(f, path).encode("utf-8", "surrogateescape") + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return {"sha256": h.hexdigest(), "size": size, "mtime_ns": mtime, "files": len(files)}


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to ``path`` through a temp file renamed over it (a reader sees the old or the new file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def read_sidecar(folder: Path) -> dict | None:
    """The clip folder's sidecar, or None when absent or unreadable (then the clip runs again)."""
    try:
        with open(folder / SIDECAR, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == SIDECAR_FORMAT else None


def redo_reason(sidecar: dict | None, folder: Path, chash: str, digest: dict) -> str | None:
    """Why the clip must run (again), or None when its recorded result stands."""
    if sidecar is None:
        return "new" if not (folder / SIDECAR).exists() else "sidecar unreadable"
    if sidecar.get("outcome") not in DONE:
        return f"last run {sidecar.get('outcome', 'unfinished')}"
    if sidecar.get("config_hash") != chash:
        return "config changed"
    if (sidecar.get("input") or {}).get("sha256") != digest["sha256"]:
        return "input changed"
    if sidecar["outcome"] == "ok" and not (folder / CLIP).is_file():
        return "output deleted"
    return None


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


# -- capture runners: (spec, out clip path, log path) -> (outcome, message)

class _LogReporter:
    """`core.progress.Reporter`'s interface, into a log file (the stages, warnings and errors; no bar)."""

    mode = "log"

    def __init__(self, log):
        self.log = log
        self._stage = None

    def progress(self, p) -> None:
        if p.stage != self._stage:
            self._stage = p.stage
            self.log.write(f"{now_iso()} {p.stage}: {p.total or '?'}\n")

    def warning(self, message: str) -> None:
        self.log.write(f"warning: {message}\n")

    def error(self, message: str, **fields) -> None:
        self.log.write(f"error: {message}\n")

    def done(self, **fields) -> None:
        self.log.write(f"done: {json.dumps(fields)}\n")


def capture_in_process(spec: ClipSpec, out: Path, log_path: Path) -> tuple:
    """Capture in this process (the local engine: the models' imports are paid once per batch)."""
    from ..capture import CaptureOptions, capture_to_file
    from ..io.video import check_source

    with open(log_path, "w", encoding="utf-8") as log:
        rep = _LogReporter(log)
        handler = logging.StreamHandler(log)
        handler.setLevel(logging.WARNING)
        core_log = logging.getLogger("core")
        core_log.addHandler(handler)
        try:
            log.write(f"{now_iso()} capture {spec.path} (in process) options {json.dumps(spec.options, sort_keys=True)}\n")
            check_source(spec.path)
            capture_to_file(CaptureOptions.from_args(spec.namespace(str(out))), out, rep)
            rep.done(out=str(out))
            return "ok", ""
        except CaptureError as exc:
            rep.error(str(exc))
            return ("no_hand" if getattr(exc, "reason", None) == "no_hand" else "failed"), str(exc)
        except OSError as exc:
            msg = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc.strerror or exc)
            rep.error(msg)
            return "failed", msg
        except Exception as exc:  # noqa: BLE001 - a bug in one clip must not stop the batch; its trace is logged
            traceback.print_exc(file=log)
            msg = f"internal error ({exc.__class__.__name__}: {exc}); see {log_path}"
            rep.error(msg)
            return "failed", msg
        finally:
            core_log.removeHandler(handler)


def core_env(extra: dict | None = None) -> dict:
    """Environment for a child ``python -m core``: the code root first on PYTHONPATH, unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([CODE_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def capture_subprocess(spec: ClipSpec, out: Path, log_path: Path, python: str | None = None) -> tuple:
    """Capture with the capture CLI in a child process (``python -m core capture ... --json-progress``): a crash
    of the child is this clip's failure. Used by the Ray engine (one task per clip).

    The child writes a clip file of its own (``.clip.<pid>.<n>.npz``) that is renamed over ``out`` once it succeeded:
    a child left running by a Ray worker that died (its task then runs again) never writes over the retry's file."""
    global _ATTEMPT
    _ATTEMPT += 1
    own = out.with_name(f".{out.stem}.{os.getpid()}.{_ATTEMPT}{out.suffix}")
    argv = [python or sys.executable, "-m", "core", *spec.capture_argv(str(own)), "--json-progress"]
    try:
        outcome = _run_capture_cli(argv, log_path)
        if outcome[0] == "ok":
            os.replace(own, out)
        return outcome
    finally:
        with contextlib.suppress(OSError):
            own.unlink()


_ATTEMPT = 0


def _run_capture_cli(argv: list, log_path: Path) -> tuple:
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(f"{now_iso()} {' '.join(argv)}\n")
        log.flush()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
                              encoding="utf-8", errors="replace", cwd=CODE_ROOT, env=core_env())
    errors, done, lines = [], False, []
    for line in proc.stdout.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            ev = None
        if not isinstance(ev, dict):
            lines.append(line)
        elif ev.get("event") == "error":
            errors.append(ev)
        elif ev.get("event") == "done":
            done = True
    if lines:
        with open(log_path, "a", encoding="utf-8") as log:
            log.write("\n".join(lines) + "\n")
    if proc.returncode == 0 and done and not errors:
        return "ok", ""
    if errors:
        last = errors[-1]
        return ("no_hand" if last.get("reason") == "no_hand" else "failed"), str(last.get("message", ""))
    tail = Path(log_path).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return "failed", f"the capture stopped (exit code {proc.returncode}): {tail[-1] if tail else 'no output'}"


# -- the Blender step

def blend_argv(blender: str, clip: Path, blend: Path, fbx: Path | None) -> list:
    """The headless Blender step's command: ``BLENDER -b --factory-startup --python apply.py -- CLIP --blend OUT``
    for a Blender executable, ``PYTHON -m blender_addon.apply CLIP --blend OUT`` for a Python with bpy."""
    args = [str(clip), "--blend", str(blend)] + (["--fbx", str(fbx)] if fbx else [])
    if "blender" in os.path.basename(blender).lower() and "python" not in os.path.basename(blender).lower():
        script = os.path.join(CODE_ROOT, "blender_addon", "apply.py")
        return [blender, "-b", "--factory-startup", "--python-exit-code", "1", "--python", script, "--", *args]
    return [blender, "-m", "blender_addon.apply", *args]


def run_blend(blender: str, folder: Path, fbx: bool) -> dict:
    """Run the Blender step on the folder's clip file; returns {"outcome", "message", "seconds", ...}."""
    t0 = time.perf_counter()
    clip = folder / CLIP
    argv = blend_argv(blender, clip, folder / BLEND, folder / FBX if fbx else None)
    with open(folder / BLEND_LOG, "w", encoding="utf-8") as log:
        log.write(f"{now_iso()} {' '.join(argv)}\n")
        log.flush()
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  cwd=CODE_ROOT, env=core_env())
            rc = proc.returncode
        except OSError as exc:
            log.write(f"error: cannot start {blender}: {exc.strerror or exc}\n")
            rc = None
    tail = (folder / BLEND_LOG).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    errs = [x for x in tail if x.startswith("error: ")]
    ok = rc == 0 and (folder / BLEND).is_file()
    return {"outcome": "ok" if ok else "failed", "seconds": round(time.perf_counter() - t0, 3),
            "message": "" if ok else (errs[-1][7:] if errs else f"exit {rc}: {tail[-1] if tail else 'no output'}"),
            "clip_sha256": file_sha256(clip), "fbx": bool(fbx)}


def _blend_done(sidecar: dict, folder: Path, fbx: bool) -> bool:
    b = sidecar.get("blend") or {}
    fbx_files = list(folder.glob("clip*.fbx"))  # clip.fbx, or clip_right.fbx / clip_left.fbx for two hands
    return (b.get("outcome") == "ok" and (folder / BLEND).is_file() and (not fbx or fbx_files)
            and b.get("clip_sha256") == sidecar.get("clip_sha256") and (b.get("fbx") or not fbx))


# -- one clip

def run_clip(spec: ClipSpec, out_root: str | os.PathLike, capture=capture_in_process, engine: str = "local",
             blender: str | None = None, fbx: bool = False) -> dict:
    """Capture one clip into ``out_root/<name>/`` unless its recorded result stands (see the module's docstring);
    then, with ``blender``, the Blender step. Returns a small dict for the summary: clip, outcome ("ok",
    "no_hand", "failed", "skipped": done before), done_before (its recorded outcome), reason, message, seconds,
    blend (the Blender step's outcome or None). Never raises for the clip's own failures."""
    t0 = time.perf_counter()
    folder = Path(out_root) / spec.name
    result = {"clip": spec.name, "input": spec.path, "engine": engine, "reason": None, "message": "", "blend": None}
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return {**result, "outcome": "failed", "message": f"cannot make {folder}: {exc.strerror or exc}",
                "seconds": round(time.perf_counter() - t0, 3)}
    previous = read_sidecar(folder)
    config = config_of(spec)
    chash = config_hash(config)
    started = now_iso()
    try:
        digest = input_digest(spec.path, (previous or {}).get("input"))
    except OSError as exc:
        digest = None
        reason, outcome, message = "input unreadable", "failed", f"{exc.strerror or exc}: {spec.path}"
    hash_s = time.perf_counter() - t0
    if digest is not None:
        reason = redo_reason(previous, folder, chash, digest)
        if reason is None:  # done before: only the Blender step may be missing
            side = previous
            if blender and side["outcome"] == "ok" and not _blend_done(side, folder, fbx):
                side = {**side, "blend": run_blend(blender, folder, fbx)}
                write_json_atomic(folder / SIDECAR, side)
                result["blend"] = side["blend"]["outcome"]
                if result["blend"] == "failed":
                    result["message"] = f"Blender step: {side['blend']['message']}"
            return {**result, "outcome": "skipped", "done_before": side["outcome"],
                    "seconds": round(time.perf_counter() - t0, 3)}
        t1 = time.perf_counter()
        outcome, message = capture(spec, folder / CLIP, folder / (LOG + ".part"))
        capture_s = time.perf_counter() - t1
        with contextlib.suppress(OSError):
            os.replace(folder / (LOG + ".part"), folder / LOG)
    else:
        capture_s = 0.0
        with contextlib.suppress(OSError):
            (folder / LOG).write_text(f"error: {message}\n", encoding="utf-8")
    sidecar = {
        "format": SIDECAR_FORMAT, "version": SIDECAR_VERSION, "clip": spec.name,
        "input": {"path": spec.path, **(digest or {})}, "software_version": software_version(),
        "config": config, "config_hash": chash, "outcome": outcome, "message": message, "reason": reason,
        "engine": engine, "host": socket.gethostname(), "files": {"clip": CLIP, "log": LOG},
        "timings": {"started": started, "finished": now_iso(), "hash_s": round(hash_s, 3),
                    "capture_s": round(capture_s, 3)},
    }
    if outcome == "ok":
        sidecar["clip_sha256"] = file_sha256(folder / CLIP)
    elif (folder / CLIP).is_file():
        sidecar["previous_clip_kept"] = True  # an earlier run's clip file: never deleted by a failed re-run
    if outcome == "ok" and blender:
        sidecar["blend"] = run_blend(blender, folder, fbx)
        result["blend"] = sidecar["blend"]["outcome"]
    sidecar["timings"]["total_s"] = round(time.perf_counter() - t0, 3)
    try:
        write_json_atomic(folder / SIDECAR, sidecar)
    except OSError as exc:
        outcome, message = "failed", f"cannot write {folder / SIDECAR}: {exc.strerror or exc}"
    if result["blend"] == "failed":
        message = f"Blender step: {sidecar['blend']['message']}"
    return {**result, "outcome": outcome, "reason": reason, "message": message,
            "seconds": sidecar["timings"]["total_s"]}
