"""Set up runtime: the lock files, the ready stamp, clear failures at once, and (slow, needs PyPI) the real set-up
from this Blender's Python into the test's temporary Blender user folder, then a capture through it.

The real set-up runs in every interpreter of tests/blender_matrix.py: Blender 4.5 and 5.0 run Python 3.11,
5.2 runs Python 3.13, for which MediaPipe 0.10.21 has no wheel; the runtime is Python 3.11 either way.
uv's download cache is shared between them (build/uv-cache, or $UV_CACHE_DIR), so only the first downloads.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
import zipfile
from pathlib import Path

import bpy
import pytest

import build
from helpers import ROOT, ext_module, heavy_modules_loaded

LOCK_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;[^\\]*)?\\?$")


def _parse_lock(path: Path) -> dict:
    """{name: [(version, hashes)]} of a `uv pip compile --generate-hashes` file; fails on any unpinned line."""
    out: dict = {}
    current = None
    for ln in path.read_text().splitlines():
        s = ln.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("--hash=sha256:"):
            assert current is not None and re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", s), ln
            current[1].append(s.split(":")[1].split()[0])
            continue
        m = LOCK_LINE.match(s)
        assert m, f"{path.name}: not a pinned requirement: {ln}"
        current = (m.group(2), [])
        out.setdefault(build.requirement_name(m.group(1)), []).append(current)
    return out


def _version(v: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", v.split("+")[0]))


def _satisfies(version: str, req: str) -> bool:
    for op, want in re.findall(r"(==|>=|<=|!=|<|>)\s*([\w.*]+)", req):
        a, b = _version(version), _version(want)
        n = max(len(a), len(b))
        a, b = a + (0,) * (n - len(a)), b + (0,) * (n - len(b))
        if not {"==": a == b, ">=": a >= b, "<=": a <= b, "!=": a != b, "<": a < b, ">": a > b}[op]:
            return False
    return True


def test_lock_in_step_with_requirements(ext_zip):
    """Every runtime requirement (requirements.txt without the dev-only packages, and requirements-nodeps.txt)
    is pinned in the lock to a version it allows, every line with hashes; the zip ships both locks."""
    lock = ROOT / build.RUNTIME_LOCK
    header = re.search(r"^# input-sha256: ([0-9a-f]{64})$", lock.read_text(), re.M)
    assert header and header.group(1) == build.lock_input_sha256(), (
        "requirements.txt or requirements-nodeps.txt changed since the lock was made: run python build.py --lock")
    pins = _parse_lock(lock)
    resolved, no_deps = build.runtime_requirements()
    assert not {build.requirement_name(r) for r in resolved} & set(build.DEV_ONLY)
    for req in resolved + no_deps:
        name = build.requirement_name(req)
        assert name in pins, f"{req} is not in {lock.name}: run python build.py --lock"
        for version, hashes in pins[name]:
            assert _satisfies(version, req), f"{lock.name} pins {name}=={version}, outside {req}"
    for name, entries in pins.items():
        for version, hashes in entries:
            assert hashes, f"{name}=={version} has no hash"
    assert {"torch", "mediapipe", "numpy", "opencv-python-headless", "smplx"} <= set(pins)
    assert not {"bpy", "pytest", "hypothesis", "opencv-contrib-python"} & set(pins)
    uv = _parse_lock(ROOT / build.UV_LOCK)
    assert list(uv) == ["uv"] and len(uv["uv"]) == 1
    assert len(uv["uv"][0][1]) >= 10, "uv-lock.txt should hold the hash of every platform's uv wheel"
    names = set(zipfile.ZipFile(ext_zip).namelist())
    assert set(build.LOCK_FILES) <= names


def test_lock_is_what_the_extension_installs(ext):
    runtime = ext_module("blender_addon.runtime")
    assert runtime.RUNTIME_LOCK.read_bytes() == (ROOT / build.RUNTIME_LOCK).read_bytes()
    assert runtime.uv_version() == _parse_lock(ROOT / build.UV_LOCK)["uv"][0][0]
    assert runtime.PYTHON_VERSION == build.RUNTIME_PYTHON


def _fake_runtime(rt: Path, stamp: dict | None) -> Path:
    runtime = ext_module("blender_addon.runtime")
    py = runtime.venv_python(rt / "venv")
    py.parent.mkdir(parents=True)
    py.write_text("")
    if stamp is not None:
        (rt / runtime.READY).write_text(json.dumps(stamp))
    return py


def test_runtime_without_ready_stamp_is_not_used(ext, tmp_path, monkeypatch):
    """A venv whose set-up did not finish, or made from another lock, is never "ready"."""
    runtime = ext_module("blender_addon.runtime")
    CaptureError = ext_module("core.errors").CaptureError
    monkeypatch.delenv("HAND_CAPTURE_PYTHON", raising=False)
    py = _fake_runtime(tmp_path / "half", None)
    with pytest.raises(CaptureError, match=r"the capture runtime in .*half is not ready \(its set-up did not finish; "
                                           r"see .*setup\.log\): press Set up runtime .* again"):
        runtime.find_python("", tmp_path / "half")
    _fake_runtime(tmp_path / "old", {"lock_sha256": "0" * 64, "python": "3.11.9"})
    with pytest.raises(CaptureError, match=r"was made for another version of Hand Capture: press Set up runtime"):
        runtime.find_python("", tmp_path / "old")
    (tmp_path / "half" / runtime.READY).write_text("{not json")
    with pytest.raises(CaptureError, match="is not ready"):
        runtime.find_python("", tmp_path / "half")
    (tmp_path / "half" / runtime.READY).write_text(json.dumps({"lock_sha256": runtime.lock_sha256()}))
    assert runtime.find_python("", tmp_path / "half") == (str(py), "runtime")
    with pytest.raises(CaptureError, match="^no capture runtime: open Preferences"):
        runtime.find_python("", tmp_path / "nothing")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _drain(steps) -> list:
    seen = []
    while True:
        try:
            seen.append(next(steps))
        except StopIteration:
            return seen


def test_offline_is_a_clear_error_at_once(scene, tmp_path, monkeypatch):
    """No index reachable: the button stops at once with what to do; a runtime that was ready stays ready,
    a fresh folder gets nothing, and find_python says there is no runtime."""
    runtime, prefs = ext_module("blender_addon.runtime"), ext_module("blender_addon.prefs")
    CaptureError = ext_module("core.errors").CaptureError
    monkeypatch.delenv("HAND_CAPTURE_PYTHON", raising=False)
    monkeypatch.setenv("UV_DEFAULT_INDEX", f"http://127.0.0.1:{_closed_port()}/simple")
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"cannot reach 127\.0\.0\.1 to download the capture runtime .*connect to "
                                           r"the internet"):
        bpy.ops.hand_capture.setup_runtime()
    assert time.monotonic() - t0 < 10
    assert prefs.runtime_status()[0] is False
    rt = Path(prefs.user_dir("runtime"))
    assert not (rt / runtime.READY).exists() and not (rt / "venv").exists() and not (rt / "bootstrap").exists()

    with pytest.raises(CaptureError, match="cannot reach 127.0.0.1"):
        _drain(runtime.setup_steps(tmp_path / "fresh", base_python=sys.executable, wait=0.05))
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == ["setup.log"]
    with pytest.raises(CaptureError, match="^no capture runtime"):
        runtime.find_python("", tmp_path / "fresh")

    py = _fake_runtime(tmp_path / "ready", {"lock_sha256": runtime.lock_sha256()})
    with pytest.raises(CaptureError, match="cannot reach 127.0.0.1"):
        _drain(runtime.setup_steps(tmp_path / "ready", base_python=sys.executable, wait=0.05))
    assert runtime.find_python("", tmp_path / "ready") == (str(py), "runtime")


class _Refusing(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = b"no"
        self.send_response(self.server.code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("code, message", [
    (403, r"refused the capture runtime's download \(HTTP 403 Forbidden\): check the index URL, its credentials"),
    (404, r"refused the capture runtime's download \(HTTP 404 Not Found\): it does not serve the packages"),
    (503, r"refused the capture runtime's download \(HTTP 503 Service Unavailable\): the index is failing"),
])
def test_registry_refusing_is_a_clear_error_at_once(ext, tmp_path, monkeypatch, code, message):
    runtime = ext_module("blender_addon.runtime")
    CaptureError = ext_module("core.errors").CaptureError
    monkeypatch.delenv("HAND_CAPTURE_PYTHON", raising=False)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    srv.code = code
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    rt = tmp_path / "rt"
    _fake_runtime(rt, None)  # an earlier set-up that stopped half way: still not ready afterwards
    t0 = time.monotonic()
    try:
        with pytest.raises(CaptureError, match=r"^the package index 127\.0\.0\.1 " + message):
            _drain(runtime.setup_steps(rt, base_python=sys.executable, wait=0.05,
                                       index_url=f"http://127.0.0.1:{srv.server_address[1]}/simple"))
    finally:
        srv.shutdown()
    assert time.monotonic() - t0 < 10
    assert not (rt / runtime.READY).exists() and not (rt / "bootstrap").exists()
    with pytest.raises(CaptureError, match="is not ready"):
        runtime.find_python("", rt)


class _NeedsLogin(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        import base64

        ok = self.headers.get("Authorization") == "Basic " + base64.b64encode(b"studio:p@ss").decode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_index_credentials_in_the_url(ext):
    """A mirror with a login in its URL (as pip and uv take it) is checked with that login, and kept out of logs."""
    runtime = ext_module("blender_addon.runtime")
    CaptureError = ext_module("core.errors").CaptureError
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NeedsLogin)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    try:
        runtime.check_index(f"http://studio:p%40ss@127.0.0.1:{port}/simple")
        with pytest.raises(CaptureError, match=r"refused the capture runtime's download \(HTTP 401 Unauthorized\): "
                                               r"check the index URL, its credentials"):
            runtime.check_index(f"http://studio:wrong@127.0.0.1:{port}/simple")
    finally:
        srv.shutdown()
    masked = runtime._masked(f"http://studio:p%40ss@127.0.0.1:{port}/simple")
    assert masked == f"http://studio:***@127.0.0.1:{port}/simple"


@pytest.mark.parametrize("step, lines, message", [
    ("bootstrap", ["Collecting uv==0.13.9", "WARNING: Retrying ... NewConnectionError('Failed to establish')",
                   "ERROR: No matching distribution found for uv==0.13.9"],
     r"^could not download the capture runtime from pypi\.org \(ERROR: No matching distribution found for "
     r"uv==0\.13\.9\): check the internet connection or proxy"),
    ("install", ["error: No solution found when resolving dependencies",
                 "cause: Because absl-py was not found in the package registry and you require absl-py==2.5.1, we "
                 "can conclude that your requirements are unsatisfiable.",
                 "hint: An index (https://pypi.org/simple) returned a 403 Forbidden error. Check that the index URL "
                 "is correct and the credentials are valid."],
     r"^the package index pypi\.org refused the capture runtime's download \(HTTP 403 Forbidden\)"),
    ("install", ["error: No solution found when resolving dependencies",
                 "cause: Because absl-py was not found in the package registry and you require absl-py==2.5.1, we "
                 "can conclude that your requirements are unsatisfiable."],
     r"^the package index pypi\.org lacks a package of the capture runtime \(Because absl-py was not found"),
    ("install", ["error: Request failed after 3 retries in 10.4s",
                 "cause: Failed to fetch: https://pypi.org/simple/absl-py/",
                 "cause: HTTP status server error (500 Internal Server Error) for url (https://pypi.org/simple/ab"
                 "sl-py/)"],
     r"^the package index pypi\.org refused .*\(HTTP 500 Internal Server Error\): the index is failing"),
    ("install", ["error: Failed to download `torch==2.13.0`", "cause: error sending request for url (https://files.p"
                 "ythonhosted.org/x.whl)", "cause: client error (Connect)", "cause: dns error",
                 "cause: failed to lookup address information: Name or service not known"],
     r"^could not download the capture runtime from pypi\.org \(failed to lookup address information"),
    ("install", ["error: Failed to install: torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl (torch==2.13.0)",
                 "Caused by: failed to write to file `/rt/venv/lib/python3.11/site-packages/torch/lib/libtorch.so`: "
                 "No space left on device (os error 28)"],
     r"^not enough disk space for the capture runtime in /rt \(failed to write .*\): it needs 5 GB; free some space"),
    ("bootstrap", ["ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device"],
     r"^not enough disk space for the capture runtime in /rt"),
    ("install", ["error: Failed to download `absl-py==2.5.1`", "Caused by: Hash mismatch for `absl-py==2.5.1`"],
     r"^a downloaded file did not match the sha256 in the extension's lock \(Hash mismatch for `absl-py==2\.5\.1`\)"),
    ("install", ["error: Request failed after 3 retries", "cause: invalid peer certificate: UnknownIssuer"],
     r"^the secure connection to pypi\.org failed \(invalid peer certificate: UnknownIssuer\): where the network "
     r"uses its own certificates, set UV_NATIVE_TLS=1"),
    ("python", ["error: Request failed after 3 retries in 9.1s", "cause: Failed to download `https://github.com/"
                "astral-sh/python-build-standalone/releases/download/x/cpython-3.11.18.tar.gz`",
                "cause: tcp connect error", "cause: Connection refused (os error 111)"],
     r"^no Python 3\.11 on this computer, and downloading one failed \(Connection refused \(os error 111\)\): "
     r"install Python 3\.11 \(python\.org\) or connect to the internet"),
    ("python", ["error: No interpreter found for Python 3.11 in managed installations"],
     r"^no Python 3\.11 on this computer"),
    ("check", ["Traceback (most recent call last):", "ModuleNotFoundError: No module named 'cv2'"],
     r"^the new capture runtime cannot import its packages \(ModuleNotFoundError: No module named 'cv2'\)"),
])
def test_failure_wording(ext, step, lines, message):
    """Real pip and uv output of each failure becomes one sentence that names the fix."""
    runtime = ext_module("blender_addon.runtime")
    assert re.search(message, str(runtime.explain_failure(step, lines, "https://pypi.org/simple", "/rt")))


# -- the real set-up (slow: downloads what the lock pins unless uv's cache has it)


@pytest.fixture(scope="module")
def online(ext):
    runtime = ext_module("blender_addon.runtime")
    try:
        runtime.check_index(runtime.resolve_index())
    except ext_module("core.errors").CaptureError as exc:
        pytest.skip(f"the real set-up needs the package index: {exc}")


@pytest.fixture(scope="module")
def uv_cache():
    """UV_CACHE_DIR for the module: the caller's, else build/uv-cache (shared by the matrix's Blender versions)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UV_CACHE_DIR", os.environ.get("UV_CACHE_DIR") or str(ROOT / "build" / "uv-cache"))
        yield Path(os.environ["UV_CACHE_DIR"])


@pytest.fixture(scope="module")
def made_runtime(ext, online, uv_cache):
    """runtime.setup_steps with this interpreter's Python (Blender's) into the Blender user folder; removed after."""
    runtime, prefs = ext_module("blender_addon.runtime"), ext_module("blender_addon.prefs")
    rt = Path(prefs.user_dir("runtime"))
    warm = uv_cache.is_dir() and any(uv_cache.iterdir())
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HAND_CAPTURE_PYTHON", raising=False)
        addon_prefs = prefs.get()
        old_pref, addon_prefs.python_path = addon_prefs.python_path, ""
        try:
            t0 = time.monotonic()
            seen, steps = [], runtime.setup_steps(rt, base_python=sys.executable, wait=0.05)
            while True:
                try:
                    seen.append(next(steps))
                except StopIteration as stop:
                    python = stop.value
                    break
            info = {"python": python, "progress": seen, "seconds": time.monotonic() - t0, "dir": rt,
                    "warm_cache": warm}
            yield info
        finally:
            addon_prefs.python_path = old_pref
            shutil.rmtree(rt, ignore_errors=True)
            prefs.refresh_runtime_status()


def test_setup_from_blenders_python(made_runtime, artifacts):
    """The set-up ran from this Blender's Python (3.11 or 3.13) and made a ready Python 3.11 runtime."""
    runtime = ext_module("blender_addon.runtime")
    rt, seen = made_runtime["dir"], made_runtime["progress"]
    stages = [p.stage for i, p in enumerate(seen) if i == 0 or p.stage != seen[i - 1].stage]
    assert stages == ["check", "bootstrap", "python", "install", "check"]
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    info = runtime.ready_info(rt)
    assert info["lock_sha256"] == runtime.lock_sha256() and info["python"].startswith("3.11.")
    assert info["torch"].startswith("2.13.0") and info["mediapipe"] == "0.10.21"
    bootstrap_cfg = (rt / "bootstrap" / "pyvenv.cfg").read_text()
    assert re.search(rf"^version\w* = {sys.version_info.major}\.{sys.version_info.minor}\.", bootstrap_cfg, re.M)
    assert runtime.find_python("", rt) == (made_runtime["python"], "runtime")
    assert not (rt / "cache").exists()  # uv's cache is the caller's UV_CACHE_DIR here
    sizes = {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
             for p in rt.iterdir() if p.is_dir()}
    (artifacts / f"runtime_setup_{bpy.app.version_string.split()[0]}.json").write_text(json.dumps({
        "blender": bpy.app.version_string, "blender_python": sys.version.split()[0], "runtime_python": info["python"],
        "seconds": round(made_runtime["seconds"], 1), "uv_cache_warm_before": made_runtime["warm_cache"],
        "bytes": sizes}, indent=1))


def test_setup_runtime_button_again_and_capture_through_it(made_runtime, data_dir, monkeypatch):
    """Set up runtime on a ready runtime (the operator; quick with the packages in place), then a capture with no
    HAND_CAPTURE_PYTHON and no preference runs in that runtime."""
    prefs = ext_module("blender_addon.prefs")
    video = data_dir / "video" / "single_hand.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found")
    monkeypatch.delenv("HAND_CAPTURE_PYTHON", raising=False)
    t0 = time.monotonic()
    assert bpy.ops.hand_capture.setup_runtime() == {"FINISHED"}
    assert time.monotonic() - t0 < 120
    assert prefs.runtime_status() == (True, f"Using {made_runtime['python']} (runtime)")
    assert prefs.runtime_python() == (made_runtime["python"], "runtime")
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.hand_capture.capture_video(filepath=str(video), hands="1", frame_last=10) == {"FINISHED"}
    rigs = [o for o in bpy.data.objects if re.fullmatch(r"single_hand_hand_[RL]", o.name)]
    assert len(rigs) == 1 and rigs[0].type == "ARMATURE" and rigs[0].animation_data.action is not None
    assert heavy_modules_loaded() == []


def test_no_python_311_and_download_failing_is_a_clear_error(ext, online, uv_cache, tmp_path, monkeypatch):
    """uv finds no Python 3.11 (only its own installs allowed) and cannot download one: one sentence, no stamp."""
    runtime = ext_module("blender_addon.runtime")
    CaptureError = ext_module("core.errors").CaptureError
    monkeypatch.setenv("UV_PYTHON_PREFERENCE", "only-managed")
    monkeypatch.setenv("UV_PYTHON_INSTALL_MIRROR", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    with pytest.raises(CaptureError, match=r"^no Python 3\.11 on this computer, and downloading one failed \(.*\): "
                                           r"install Python 3\.11"):
        _drain(runtime.setup_steps(tmp_path / "rt", base_python=sys.executable, wait=0.05))
    assert not (tmp_path / "rt" / runtime.READY).exists()
    assert "FAILED: no Python 3.11" in (tmp_path / "rt" / "setup.log").read_text()
    with pytest.raises(CaptureError, match="is not ready"):
        runtime.find_python("", tmp_path / "rt")
