"""The Python runtime that runs the heavy core (torch, MediaPipe) outside Blender.

Blender's own Python never imports torch: captures run ``python -m core capture ...`` in a separate
interpreter, found in this order: the ``HAND_CAPTURE_PYTHON`` environment variable (farms, tests),
the add-on preference, then the runtime that "Set up runtime" made in the extension's user folder
(``prefs.user_dir("runtime")``), accepted only once its set-up finished (``ready.json``).

`setup_steps` makes that runtime as a step generator, independent of Blender's Python version (4.5 runs
Python 3.11, 5.1+ runs 3.13, for which MediaPipe 0.10.21 has no wheel):

1. check that the package index answers (offline or refused: a clear message at once);
2. ``bootstrap/``: a small venv of Blender's Python holding uv, installed by pip from uv-lock.txt
   (pinned, every platform's sha256, --require-hashes);
3. ``venv/``: ``uv venv --python 3.11``, a Python 3.11 found on the machine or a managed CPython that uv
   downloads into ``python/``;
4. ``uv pip sync --require-hashes`` of runtime-lock.txt (``python build.py --lock`` writes both locks);
5. import numpy, torch, cv2 and mediapipe in it, then write ``ready.json`` (the lock's sha256, versions).

uv's download cache is ``$UV_CACHE_DIR`` when set, else ``cache/`` (deleted after a set-up that finished,
kept after a failed one so that the next try resumes). ``setup.log`` keeps every command's output.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..core.errors import CaptureError
from .progress import Progress
from .worker import Worker, WorkerError, child_env

ENV_VAR = "HAND_CAPTURE_PYTHON"
PYTHON_VERSION = "3.11"  # the runtime's Python, whatever Blender's is (MediaPipe 0.10.21: cp39-cp312 wheels)
HERE = Path(__file__).resolve().parent
RUNTIME_LOCK = HERE / "runtime-lock.txt"  # python build.py --lock
UV_LOCK = HERE / "uv-lock.txt"
READY = "ready.json"
SETUP_LOG = "setup.log"
# Linux, torch with CUDA (measured: 2.7 GB of downloads, 5.0 GB installed); macOS and Windows get less.
DOWNLOAD_TEXT, DISK_TEXT = "up to 3 GB", "5 GB"
CHECK_IMPORTS = "import numpy, torch, cv2, mediapipe; print(torch.__version__)"
_VERSIONS = ("import json, platform, numpy, torch, cv2, mediapipe; print(json.dumps({'python': "
             "platform.python_version(), 'numpy': numpy.__version__, 'torch': torch.__version__, "
             "'opencv': cv2.__version__, 'mediapipe': getattr(mediapipe, '__version__', '?')}))")
DEFAULT_INDEX = "https://pypi.org/simple"
INDEX_VARS = ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL")  # a mirror, most specific first
_NETWORK_MARKERS = (
    "NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
    "Name or service not known", "nodename nor servname", "Network is unreachable", "ConnectTimeout",
    "ReadTimeout", "Connection refused", "Connection reset", "ProxyError", "No matching distribution found",
    "Could not find a version that satisfies", "error sending request", "dns error", "tcp connect error",
    "operation timed out", "timed out", "Request failed after", "failed to lookup address",
)
_SSL_MARKERS = ("SSLError", "CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "invalid peer certificate",
                "UnknownIssuer", "tls handshake")
_DISK_MARKERS = ("No space left on device", "os error 28", "Errno 28", "Disk quota exceeded", "os error 122")
_HASH_MARKERS = ("Hash mismatch", "DO NOT MATCH THE HASHES", "hash mismatch")
_STATUS = re.compile(r"\b(40[1347]|429|5\d\d)\b[ :]*(?:Client Error: |Server Error: )?([A-Z][A-Za-z ]*[a-z])?")
_STATUS_WORDS = ("HTTP", "status", "returned a", "Client Error", "Server Error")


def venv_python(venv_dir: str | os.PathLike) -> Path:
    """The interpreter inside a venv folder."""
    venv_dir = Path(venv_dir)
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _venv_exe(venv_dir: Path, name: str) -> Path:
    return venv_dir / ("Scripts" if os.name == "nt" else "bin") / (name + (".exe" if os.name == "nt" else ""))


@functools.lru_cache(maxsize=None)
def lock_sha256(path: str = str(RUNTIME_LOCK)) -> str:
    """sha256 of a lock file (the ready stamp records the runtime lock's)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def uv_version() -> str:
    """The uv version pinned in uv-lock.txt."""
    m = re.search(r"^uv==(\S+)", UV_LOCK.read_text(), re.M)
    if not m:
        raise CaptureError(f"{UV_LOCK} pins no uv: reinstall the extension")
    return m.group(1)


def ready_info(runtime_dir: str | os.PathLike) -> dict | None:
    """The runtime's ready stamp (lock_sha256, python, versions ...), or None when it has none or it is unreadable."""
    try:
        info = json.loads((Path(runtime_dir) / READY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def runtime_state(runtime_dir: str | os.PathLike | None) -> tuple:
    """(python or None, why not): the set-up's runtime when it is ready, else the reason in words."""
    if runtime_dir is None:
        return None, "missing"
    runtime_dir = Path(runtime_dir)
    py = venv_python(runtime_dir / "venv")
    info = ready_info(runtime_dir)
    if info is None:  # a set-up that stopped after its first download (a failed check makes nothing)
        return None, "unfinished" if (runtime_dir / "venv").exists() or (runtime_dir / "bootstrap").exists() \
            else "missing"
    if not py.is_file():
        return None, "unfinished"
    if info.get("lock_sha256") != lock_sha256():
        return None, "outdated"
    return str(py), "ready"


def find_python(pref_path: str, runtime_dir: str | os.PathLike | None) -> tuple:
    """The runtime interpreter and where it came from: (path str, "environment" | "preferences" | "runtime").

    Raises:
        CaptureError: none is set, the one set does not exist, or the set-up's runtime is not ready
            (unfinished, or made from another version's lock); the message says how to fix it.
    """
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        if not Path(env).is_file():
            raise CaptureError(f"{ENV_VAR} is set to {env}, which is not a file: point it at a Python "
                               f"interpreter that has torch and mediapipe, or unset it")
        return env, "environment"
    pref = (pref_path or "").strip()
    if pref:
        if not Path(pref).is_file():
            raise CaptureError(f"the Python set in Preferences > Add-ons > Hand Capture ({pref}) does not exist: "
                               f"choose another one, or clear it and press Set up runtime")
        return pref, "preferences"
    py, state = runtime_state(runtime_dir)
    if py is not None:
        return py, "runtime"
    if state == "unfinished":
        raise CaptureError(f"the capture runtime in {runtime_dir} is not ready (its set-up did not finish; see "
                           f"{Path(runtime_dir) / SETUP_LOG}): press Set up runtime in Preferences > Add-ons > "
                           f"Hand Capture again")
    if state == "outdated":
        raise CaptureError(f"the capture runtime in {runtime_dir} was made for another version of Hand Capture: "
                           f"press Set up runtime in Preferences > Add-ons > Hand Capture to update it")
    raise CaptureError("no capture runtime: open Preferences > Add-ons > Hand Capture and press Set up runtime "
                       f"(it downloads {DOWNLOAD_TEXT} once and takes {DISK_TEXT}), or set a Python that has torch "
                       f"and mediapipe there or in {ENV_VAR}")


# -- the package index


def resolve_index(index_url: str | None = None) -> str:
    """The package index to install from: ``index_url``, else $UV_DEFAULT_INDEX / $UV_INDEX_URL /
    $PIP_INDEX_URL, else PyPI."""
    if index_url:
        return index_url
    for var in INDEX_VARS:
        if os.environ.get(var, "").strip():
            return os.environ[var].strip()
    return DEFAULT_INDEX


def _masked(index_url: str) -> str:
    """The index URL without its password (for the log and the stamp)."""
    u = urllib.parse.urlsplit(index_url)
    return urllib.parse.urlunsplit(u._replace(netloc=f"{u.username}:***@{u.netloc.rpartition('@')[2]}")) \
        if u.password else index_url


def index_host(index_url: str) -> tuple:
    """(host, port) of a package index URL."""
    u = urllib.parse.urlsplit(index_url)
    return u.hostname or "pypi.org", u.port or (443 if u.scheme == "https" else 80)


def _offline(host: str, why: str) -> CaptureError:
    return CaptureError(f"cannot reach {host} to download the capture runtime ({why}): connect to the internet "
                        f"(or set up a proxy) and press Set up runtime again, or choose a Python that already has "
                        f"torch and mediapipe in the preferences")


def check_online(index_url: str = DEFAULT_INDEX, timeout_s: float = 5.0) -> None:
    """Raise CaptureError (offline, with the fix) unless the package index's host (or the proxy configured
    for it) accepts a connection."""
    u = urllib.parse.urlsplit(index_url)
    if u.scheme == "file":
        path = urllib.request.url2pathname(u.path)
        if not os.path.isdir(path):
            raise CaptureError(f"the package index folder {path} does not exist: correct the index URL "
                               f"({index_url}) and press Set up runtime again")
        return
    host, port = index_host(index_url)
    target = (host, port)
    proxy = urllib.request.getproxies().get(u.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        target = (p.hostname or host, p.port or (443 if p.scheme == "https" else 80))
    try:
        with socket.create_connection(target, timeout=timeout_s):
            pass
    except OSError as exc:
        raise _offline(host if target == (host, port) else f"{host} through the proxy {target[0]}",
                       exc.strerror or str(exc)) from None


def _refused(index_url: str, code: int, reason: str) -> CaptureError:
    host = index_host(index_url)[0]
    what = f"HTTP {code} {reason}".strip()
    if code in (401, 403, 407):
        fix = ("check the index URL, its credentials and the proxy, or ask whoever runs the mirror to allow it, "
               "then press Set up runtime again")
    elif code == 404:
        fix = ("it does not serve the packages: point the index at PyPI or a full mirror of it "
               "(UV_DEFAULT_INDEX) and press Set up runtime again")
    elif code == 429:
        fix = "it limits downloads: wait a few minutes and press Set up runtime again"
    else:
        fix = "the index is failing: press Set up runtime again later, or use a mirror (UV_DEFAULT_INDEX)"
    return CaptureError(f"the package index {host} refused the capture runtime's download ({what}): {fix}")


def check_index(index_url: str, timeout_s: float = 5.0) -> None:
    """Raise CaptureError at once when the index is unreachable or refuses (HTTP 4xx/5xx) the uv project page.

    TLS trouble is left to pip and uv (they carry their own certificates), so it does not stop the set-up here.
    """
    check_online(index_url, timeout_s)
    if urllib.parse.urlsplit(index_url).scheme not in ("http", "https"):
        return
    u = urllib.parse.urlsplit(index_url.rstrip("/") + "/uv/")
    headers = {"Accept": "text/html", "User-Agent": "hand-capture-setup"}
    if u.username is not None:  # credentials in the URL, as pip and uv take them: send them as they do
        import base64

        user = urllib.parse.unquote(u.username) + ":" + urllib.parse.unquote(u.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(user.encode()).decode()
        u = u._replace(netloc=u.netloc.rpartition("@")[2])
    req = urllib.request.Request(urllib.parse.urlunsplit(u), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s * 2) as resp:
            resp.read(1)
    except urllib.error.HTTPError as exc:
        raise _refused(index_url, exc.code, str(exc.reason or "")) from None
    except ValueError as exc:
        raise CaptureError(f"the package index URL {index_url} is not valid ({exc}): correct it (UV_DEFAULT_INDEX) "
                           f"and press Set up runtime again") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, OSError) and not isinstance(reason, socket.timeout) and \
                "SSL" not in type(reason).__name__ and "CERTIFICATE" not in str(reason):
            raise _offline(index_host(index_url)[0], getattr(reason, "strerror", None) or str(reason)) from None
        # a slow answer or TLS details: pip and uv will say more


# -- the set-up


def explain_failure(step: str, log_tail, index_url: str, runtime_dir: str | os.PathLike,
                    detail: str = "") -> CaptureError:
    """One sentence with the fix for a failed set-up step ("venv", "bootstrap", "python", "install", "check"),
    read from the command's last output lines."""
    lines = [ln.strip() for ln in log_tail if ln.strip()]
    tail = "\n".join(lines)
    host = index_host(index_url)[0]
    log = Path(runtime_dir) / SETUP_LOG
    causes = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(("cause:", "Caused by:"))]
    errors = [ln for ln in lines if ln.lower().startswith("error")]
    reason = (causes or errors or lines or [detail or "no output"])[-1][:300]
    if any(m in tail for m in _DISK_MARKERS):
        return CaptureError(f"not enough disk space for the capture runtime in {runtime_dir} ({reason}): it needs "
                            f"{DISK_TEXT}; free some space and press Set up runtime again")
    if any(m in tail for m in _HASH_MARKERS):
        return CaptureError(f"a downloaded file did not match the sha256 in the extension's lock ({reason}): a "
                            f"proxy or mirror changed it; check them (or use PyPI) and press Set up runtime again")
    if step == "python":
        if "No interpreter found" in tail or "Failed to download" in tail or "python-build-standalone" in tail:
            return CaptureError(f"no Python {PYTHON_VERSION} on this computer, and downloading one failed ({reason}): "
                                f"install Python {PYTHON_VERSION} (python.org) or connect to the internet, then press "
                                f"Set up runtime again (studios: UV_PYTHON_INSTALL_MIRROR; details in {log})")
        return CaptureError(f"uv could not make the runtime's Python {PYTHON_VERSION} environment ({reason}): see "
                            f"{log}, then press Set up runtime again")
    for ln in lines:
        m = _STATUS.search(ln)
        if m and any(w in ln for w in _STATUS_WORDS):
            return _refused(index_url, int(m.group(1)), re.sub(r" error$", "", (m.group(2) or "").strip()))
    if "not found in the package registry" in tail:
        return CaptureError(f"the package index {host} lacks a package of the capture runtime ({reason}): point "
                            f"the index at PyPI or a full mirror of it (UV_DEFAULT_INDEX) and press Set up runtime "
                            f"again")
    if any(m in tail for m in _SSL_MARKERS):
        return CaptureError(f"the secure connection to {host} failed ({reason}): where the network uses its own "
                            f"certificates, set UV_NATIVE_TLS=1 (or SSL_CERT_FILE) and press Set up runtime again")
    if any(m in tail for m in _NETWORK_MARKERS):
        return CaptureError(f"could not download the capture runtime from {host} ({reason}): check the internet "
                            f"connection or proxy and press Set up runtime again")
    if step == "venv":
        return CaptureError(f"Blender's Python cannot make the small set-up environment ({reason}): see {log}; "
                            f"or choose a Python that has torch and mediapipe in the preferences")
    if step == "check":
        return CaptureError(f"the new capture runtime cannot import its packages ({reason}): see {log}, then "
                            f"press Set up runtime again")
    return CaptureError(f"the capture runtime's {step} step failed ({reason}): see {log}, then press Set up "
                        f"runtime again")


_SIZE = re.compile(r"^Downloading (\S+) \(([\d.]+) ?(B|KiB|MiB|GiB)\)")
_UNITS = {"B": 1, "KiB": 2 ** 10, "MiB": 2 ** 20, "GiB": 2 ** 30}


class _InstallProgress:
    """Reads ``uv pip sync``'s lines (Resolved, Downloading X (size), Downloaded X, Prepared, Installed)
    into a fraction of the install step: resolution, then bytes of the large files, then the install."""

    def __init__(self):
        self.sizes: dict = {}
        self.done: set = set()
        self.phase = 0.0
        self.shown = 0.0  # never goes back (a later "Downloading" line adds to the total)

    def feed(self, line: str) -> tuple:
        """(fraction 0..1 of the step, message)."""
        s = line.strip()
        m = _SIZE.match(s)
        if m:
            self.sizes[m.group(1)] = float(m.group(2)) * _UNITS[m.group(3)]
        elif s.startswith("Downloaded "):
            self.done.add(s.split()[1])
        elif s.startswith("Resolved "):
            self.phase = max(self.phase, 0.03)
        elif s.startswith("Prepared "):
            self.phase = max(self.phase, 0.92)
        elif s.startswith(("Installed ", "Checked ", "Audited ")):
            self.phase = 1.0
        self.shown = max(self.shown, self.fraction())
        return self.shown, self.message()

    def fraction(self) -> float:
        total = sum(self.sizes.values())
        got = sum(v for k, v in self.sizes.items() if k in self.done)
        return max(self.phase, 0.03 + 0.89 * got / total if total else 0.0)

    def message(self) -> str:
        total = sum(self.sizes.values())
        if self.phase >= 0.92 or not total:
            return "installing the packages" if self.phase >= 0.92 else "resolving the packages"
        got = sum(v for k, v in self.sizes.items() if k in self.done)
        return (f"downloading packages: {len(self.done & set(self.sizes))} of {len(self.sizes)} large files, "
                f"{got / 2 ** 30:.1f} of {total / 2 ** 30:.1f} GB")


def _run(argv: list, step: str, stage: str, span: tuple, wait: float, ctx: dict, env: dict | None = None,
         reader=None, cwd: str | None = None):
    """Run one set-up command, yielding Progress while it runs (a new one per output line or second,
    the same one while waiting); raises explain_failure's CaptureError when it fails. Returns its output."""
    t0 = time.monotonic()
    try:
        worker = Worker(argv, name=f"{step} step", json_events=False, env=env or child_env(), cwd=cwd,
                        log_path=ctx["log"], log_append=True)
    except WorkerError as exc:
        raise explain_failure(step, (), ctx["index"], ctx["dir"], detail=str(exc)) from None
    lines: list = []
    frac, msg = 0.0, f"{stage}: starting"
    last = Progress(stage, fraction=span[0], message=msg)
    shown = time.monotonic()
    try:
        while not worker.finished:
            events = worker.poll(wait)
            for ev in events:
                line = ev.data.get("line", "")
                lines.append(line)
                if reader is not None:
                    frac, msg = reader(line)
                else:
                    msg = line[:120]
            now = time.monotonic()
            if events or now - shown >= 1.0:
                shown = now
                last = Progress(stage, fraction=span[0] + (span[1] - span[0]) * frac,
                                message=f"{msg} ({now - t0:.0f} s)")
            yield last
        try:
            worker.finish()
        except WorkerError as exc:
            raise explain_failure(step, exc.log_tail, ctx["index"], ctx["dir"], detail=str(exc)) from None
    finally:
        worker.cancel()
    return lines


def _uv_env(runtime_dir: Path) -> tuple:
    """(environment for uv, cache folder, whether the cache is the set-up's own)."""
    cache = os.environ.get("UV_CACHE_DIR", "").strip()
    own = not cache
    cache = cache or str(runtime_dir / "cache")
    env = child_env(extra={"UV_PYTHON_INSTALL_DIR": str(runtime_dir / "python"), "UV_CACHE_DIR": cache,
                           "UV_NO_PROGRESS": "1", "NO_COLOR": "1"})
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX", "UV_PYTHON", "UV_SYSTEM_PYTHON", "UV_NO_CACHE"):
        env.pop(var, None)
    return env, cache, own


def _venv_version(venv: Path) -> str:
    try:
        text = (venv / "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        return ""
    m = re.search(r"^(?:version_info|version)\s*=\s*(\S+)", text, re.M)
    return m.group(1) if m else ""


def setup_steps(runtime_dir: str | os.PathLike, base_python: str | None = None, index_url: str | None = None,
                wait: float = 0.0):
    """Make the capture runtime in ``runtime_dir`` (step generator; see the module docstring).

    base_python: Blender's own Python (any version 3.11+; it only runs pip for uv). index_url: the package
    index (default: resolve_index()). Yields Progress (stages check, bootstrap, python, install, check);
    returns the runtime's interpreter. Raises CaptureError with one sentence naming the fix; ``setup.log``
    keeps the details. Whatever fails, or when the generator is closed (cancelled), ``ready.json`` is absent.
    """
    index = resolve_index(index_url)
    runtime_dir = Path(runtime_dir)
    ctx = {"index": index, "dir": runtime_dir, "log": str(runtime_dir / SETUP_LOG)}
    yield Progress("check", message=f"checking {index_host(index)[0]}", fraction=0.0)
    try:
        runtime_dir.mkdir(parents=True, exist_ok=True)
        with open(ctx["log"], "w", encoding="utf-8") as f:  # one log per set-up; each command appends to it
            f.write(f"Set up runtime {datetime.datetime.now().isoformat(timespec='seconds')}: index "
                    f"{_masked(index)}, base Python {base_python or sys.executable}, uv {uv_version()}\n")
    except OSError as exc:
        raise explain_failure("check", (str(exc),), index, runtime_dir) from None
    check_index(index)
    (runtime_dir / READY).unlink(missing_ok=True)  # from here on the runtime is not ready until the end
    env, cache, own_cache = _uv_env(runtime_dir)
    ok = False
    try:
        # 1. uv, pinned and hashed, in a small venv of Blender's Python (remade: Blender may have moved)
        bootstrap = runtime_dir / "bootstrap"
        yield from _run([base_python or sys.executable, "-m", "venv", "--clear", str(bootstrap)], "venv",
                        "bootstrap", (0.01, 0.04), wait, ctx)
        pip_env = child_env(extra={"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"})
        yield from _run([str(venv_python(bootstrap)), "-m", "pip", "install", "--progress-bar", "off",
                         "--require-hashes", "--no-deps", "--only-binary", ":all:", "--index-url", index,
                         "-r", str(UV_LOCK)], "bootstrap", "bootstrap", (0.04, 0.07), wait, ctx, env=pip_env)
        uv = str(_venv_exe(bootstrap, "uv"))
        # 2. Python 3.11, found on the machine or downloaded by uv into runtime_dir/python
        venv = runtime_dir / "venv"
        keep = "--allow-existing" if _venv_version(venv).startswith(PYTHON_VERSION + ".") else "--clear"
        yield from _run([uv, "venv", "--no-config", "--python", PYTHON_VERSION, keep, str(venv)], "python", "python",
                        (0.07, 0.1), wait, ctx, env=env, cwd=str(runtime_dir))
        py = venv_python(venv)
        # 3. exactly the lock's packages
        yield from _run([uv, "pip", "sync", "--no-config", "--python", str(py), "--require-hashes", "--no-build",
                         "--index-url", index, str(RUNTIME_LOCK)], "install", "install", (0.1, 0.93), wait, ctx,
                        env=env, cwd=str(runtime_dir), reader=_InstallProgress().feed)
        # 4. it imports what captures need
        yield Progress("check", message="checking the runtime's packages", fraction=0.93)
        out = yield from _run([str(py), "-c", _VERSIONS], "check", "check", (0.93, 0.98), wait, ctx)
        versions = next((json.loads(ln) for ln in reversed(out) if ln.startswith("{\"python\"")), None)
        if versions is None:
            raise explain_failure("check", out[-5:], index, runtime_dir)
        if not versions.get("python", "").startswith(PYTHON_VERSION + "."):
            raise CaptureError(f"the runtime's Python is {versions.get('python')}, not {PYTHON_VERSION}: see "
                               f"{ctx['log']}, then press Set up runtime again")
        if own_cache:
            yield Progress("check", message="removing the download cache", fraction=0.98)
            try:
                yield from _run([uv, "cache", "clean"], "cache", "check", (0.98, 0.99), wait, ctx, env=env,
                                cwd=str(runtime_dir))
            except CaptureError:
                pass  # only disk space; the log says what happened
            shutil.rmtree(cache, ignore_errors=True)
        stamp = {"lock_sha256": lock_sha256(), "uv": uv_version(), "made": datetime.datetime.now().isoformat(
            timespec="seconds"), "base_python": base_python or sys.executable, "index": _masked(index), **versions}
        tmp = runtime_dir / (READY + ".part")
        tmp.write_text(json.dumps(stamp, indent=1), encoding="utf-8")
        os.replace(tmp, runtime_dir / READY)
        ok = True
        yield Progress("check", message=f"capture runtime ready: Python {versions['python']}, torch "
                                        f"{versions.get('torch')}", fraction=1.0)
        return str(py)
    except (CaptureError, OSError) as exc:  # OSError: writing the stamp, a vanished folder
        error = exc if isinstance(exc, CaptureError) else explain_failure(
            "check", (f"{exc.strerror or exc} ({exc.filename or runtime_dir})",), index, runtime_dir)
        try:
            with open(ctx["log"], "a", encoding="utf-8") as f:
                f.write(f"FAILED: {error}\n")
        except OSError:
            pass
        if own_cache and "disk space" in str(error):
            shutil.rmtree(cache, ignore_errors=True)
        raise error from None
    finally:
        if not ok:
            (runtime_dir / READY).unlink(missing_ok=True)


def check_steps(python: str, wait: float = 0.0):
    """Check that ``python`` imports the core's packages (step generator); returns torch's version line."""
    worker = Worker([python, "-c", CHECK_IMPORTS], name="runtime check", json_events=False, env=child_env())
    waiting = Progress("check", message=f"checking {python}")
    try:
        while not worker.finished:
            worker.poll(wait)
            yield waiting
        try:
            worker.finish()
        except WorkerError as exc:
            raise CaptureError(f"{python} cannot run captures ({exc.log_tail[-1] if exc.log_tail else exc}): "
                               f"press Set up runtime, or choose a Python with torch and mediapipe") from None
        return worker.last_log_line()
    finally:
        worker.cancel()
