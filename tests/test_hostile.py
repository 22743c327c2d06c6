"""Hostile and odd input: file names with spaces, quotes, non-ASCII characters and great length; Windows-style
``--intrinsics`` specs; MANO pickles crafted to run code; fuzzed clip files and command lines; broken
videos whose FFmpeg / OpenCV complaints must stay out of the user's view (one ``error:`` line).

The CLI always runs as an argument list (``subprocess.run([python, "-m", "core", ...])``), never through a
shell, the way the Blender add-on's worker runs it.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core import cli
from core.capture import load_intrinsics, parse_intrinsics_spec
from core.errors import CaptureError
from core.hand import load
from core.io.clip import ClipResult, check_clip, load_clip, save_clip

ROOT = Path(__file__).resolve().parent.parent
ODD = "Händé 手 clip 'a' \"b\""  # spaces, both quotes, non-ASCII (2- and 3-byte UTF-8)
NAME_MAX = 255  # bytes per path component on Linux / macOS file systems (and NTFS's 255 UTF-16 units)


def run_cli(*args, cwd=ROOT, env=None, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    argv = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args]
    return subprocess.run([sys.executable, "-m", "core", *argv], capture_output=True, cwd=cwd, env=env,
                          timeout=timeout)


def stderr_lines(r) -> list:
    return [ln for ln in r.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]


def assert_one_error_line(r, *words) -> str:
    """Exit 2 and stderr is exactly one line, ``error: ...``, holding ``words``."""
    lines = stderr_lines(r)
    assert r.returncode == 2, (r.returncode, lines)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def long_folder(base: Path, total: int = 300) -> Path:
    """A folder under ``base`` whose absolute path is longer than ``total`` characters (deep folders with
    odd names, each well under the per-component limit); created."""
    d = base
    i = 0
    while len(str(d)) <= total:
        name = f"{i:02d} {ODD} {'ü' * 40} dir"
        assert len(name.encode("utf-8")) < NAME_MAX
        d = d / name
        i += 1
    d.mkdir(parents=True)
    return d


@pytest.fixture(scope="module")
def video(data_dir) -> Path:
    v = data_dir / "video" / "single_hand.mp4"
    if not v.is_file():
        pytest.skip(f"{v} not found")
    return v


# ---------------------------------------------------------------------------------------------------------
# 1. Odd and long paths through the CLI


def test_odd_long_paths_round_trip(tmp_path, video):
    """A real clip copied to a > 260-character path of odd names; the clip file goes to another odd path.
    The clip is written, loads, and its ``source`` is the input path exactly as given."""
    src_dir = long_folder(tmp_path / f"in {ODD}")
    src = src_dir / f"{ODD} vidéo 視頻.mp4"
    shutil.copyfile(video, src)
    out = long_folder(tmp_path / f"out {ODD}") / f"clip {ODD}.npz"
    assert len(str(src)) > 260 and len(str(out)) > 260
    r = run_cli("capture", src, "--out", out, "--end", 6, "--hands", 1)
    assert r.returncode == 0, stderr_lines(r)
    assert stderr_lines(r) == []
    assert r.stdout == os.fsencode(str(out)) + b"\n"  # the path printed exactly
    clip = load_clip(out)
    assert clip.source == str(src)
    assert clip.n_frames == 6 and clip.sides and clip.valid.any()
    assert not list(out.parent.glob("*.part"))


def test_odd_image_folder_and_relative_names(tmp_path, video):
    """An image folder whose name holds quotes, non-ASCII, a line break and (POSIX) a byte that is not UTF-8,
    given as a relative path; --json-progress keeps stdout pure JSON and ``done`` names the clip."""
    import cv2

    weird = f"frames {ODD}\nline2"
    if os.name != "nt":
        weird += os.fsdecode(b" \xff\xfe")  # a Linux name may hold any byte but '/' and NUL
    folder = tmp_path / weird
    folder.mkdir()
    cap = cv2.VideoCapture(str(video))
    for i in range(3):
        ok, frame = cap.read()
        assert ok
        ok, png = cv2.imencode(".png", frame)
        png.tofile(str(folder / f"{i} ü 'x'.png"))
    cap.release()
    out_name = f"clip {ODD}\n.npz"
    r = run_cli("capture", weird, "--out", out_name, "--hands", 1, "--json-progress", cwd=tmp_path)
    assert r.returncode == 0, stderr_lines(r)
    events = [json.loads(line) for line in r.stdout.decode("utf-8").splitlines()]
    assert events[-1] == {"event": "done", "out": out_name}
    clip = load_clip(tmp_path / out_name)
    assert clip.source == weird and clip.n_frames == 3
    # the plain mode prints the clip's path byte for byte, also a name that is not UTF-8 on a strict UTF-8
    # stdout (a desktop's en_US.UTF-8 locale; it used to fail with UnicodeEncodeError after the clip was
    # written: exit 3)
    again = "again" + (os.fsdecode(b" \xff") if os.name != "nt" else " \u624b") + ".npz"
    r = run_cli("capture", weird, "--out", again, "--hands", 1, cwd=tmp_path, env={"PYTHONIOENCODING": "utf-8"})
    assert r.returncode == 0 and r.stdout == os.fsencode(again) + b"\n", stderr_lines(r)
    assert load_clip(tmp_path / again).source == weird


def test_hostile_names_fail_cleanly(tmp_path):
    """Names the OS refuses or that do not exist: one error line, no traceback."""
    too_long = tmp_path / ("x" * (NAME_MAX + 10) + ".mp4")
    assert_one_error_line(run_cli("capture", too_long, "--out", tmp_path / "c.npz"), "name too long")
    missing = tmp_path / f"{ODD}\nnope.mp4"
    line = assert_one_error_line(run_cli("capture", missing, "--out", tmp_path / "c.npz"), "video not found")
    assert "\\n" in line  # the line break in the name shown, not broken across lines
    assert_one_error_line(run_cli("capture", "", "--out", tmp_path / "c.npz"), "empty")
    assert_one_error_line(run_cli("eval", tmp_path / ("y" * 300 + ".npz"), "--gt", tmp_path / "g.npz"),
                          "name too long")
    junk = tmp_path / "v.mp4"
    junk.write_bytes(b"x")
    assert_one_error_line(run_cli("capture", junk, "--out", tmp_path / ("z" * 300 + ".npz"),
                                  "--model-right", tmp_path / ("m" * 300 + ".pkl")), "name too long")


def test_unwritable_outputs_fail_cleanly(tmp_path):
    """An output that cannot be written (its folder is a file): one error line naming it."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_one_error_line(run_cli("model", "--out", blocker / "sub"), "cannot write the hand model")
    assert_one_error_line(run_cli("--cache-dir", blocker, "model"), "cache folder")
    assert_one_error_line(run_cli("demo", "--out", blocker / "sub"), "Not a directory")
    rng = np.random.default_rng(0)
    _write_clip(tmp_path / "c.npz", _tiny_clip(rng))
    np.savez(tmp_path / "gt.npz", joints_cam=np.zeros((4, 21, 3)) + [0, 0, 0.5])
    assert_one_error_line(run_cli("eval", tmp_path / "c.npz", "--gt", tmp_path / "gt.npz", "--json",
                                  blocker / "e.json"), "cannot write", "e.json")


def test_save_clip_refuses_an_unwritable_target(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CaptureError, match="cannot write the clip file"):
        save_clip(_tiny_clip(np.random.default_rng(0)), tmp_path / "file" / "c.npz")
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(CaptureError, match="dir.npz"):
        save_clip(_tiny_clip(np.random.default_rng(0)), tmp_path / "dir.npz")
    assert not list(tmp_path.glob("*.part"))


# ---------------------------------------------------------------------------------------------------------
# 2. --intrinsics specs


@pytest.mark.parametrize("spec,expected", [
    (r"C:\dir\labels.npz:K", (r"C:\dir\labels.npz", "K")),
    (r"C:\dir\labels.npz", (r"C:\dir\labels.npz", None)),
    (r"C:\dir\LABELS.NPZ:K_crop", (r"C:\dir\LABELS.NPZ", "K_crop")),
    ("D:/x/y.npy", ("D:/x/y.npy", None)),
    ("D:/x/y.npz:K", ("D:/x/y.npz", "K")),
    ("C:", ("C:", None)),
    ("C:labels.npz", ("C:labels.npz", None)),
    ("dir/labels.npz:K_crop", ("dir/labels.npz", "K_crop")),
    ("labels.npz", ("labels.npz", None)),
    ("/data/run:1/labels.npz", ("/data/run:1/labels.npz", None)),
    ("/data/run:1/labels.npz:K", ("/data/run:1/labels.npz", "K")),
    ("/data/a:b.npz:c/K.npy", ("/data/a:b.npz:c/K.npy", None)),
    ("labels.npz:", ("labels.npz:", None)),  # no key: the name as a whole
    ("labels.npz:1st", ("labels.npz:1st", None)),  # not an identifier: not a key
    ("labels.npz:K crop", ("labels.npz:K crop", None)),
    ("y.npy:K", ("y.npy:K", None)),  # only .npz files hold named arrays
    (r"\\server\share\cam.npz:K", (r"\\server\share\cam.npz", "K")),
])
def test_parse_intrinsics_spec(spec, expected):
    assert parse_intrinsics_spec(spec) == expected


def _k(f=1000.0, c=(640.0, 360.0)):
    return np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1.0]])


def test_load_intrinsics_paths_with_colons_and_odd_names(tmp_path):
    d = tmp_path / (f"run:1 {ODD}" if os.name != "nt" else f"run 1 {ODD}")
    d.mkdir()
    per_frame = np.stack([_k(900), _k(950)])
    with open(d / "labels.NPZ", "wb") as f:  # np.savez would add ".npz" to a name it does not recognise
        np.savez(f, K=_k(), K_crop=per_frame)
    np.save(d / "k.npy", _k(800))
    np.testing.assert_array_equal(load_intrinsics(f"{d / 'labels.NPZ'}:K_crop"), per_frame)
    np.testing.assert_array_equal(load_intrinsics(str(d / "labels.NPZ")), _k())  # default key K
    np.testing.assert_array_equal(load_intrinsics(str(d / "k.npy")), _k(800))
    if os.name != "nt":  # a file whose own name ends in ':K' is that file
        with open(tmp_path / "odd.npz:K", "wb") as f:
            np.save(f, _k(700))
        np.testing.assert_array_equal(load_intrinsics(str(tmp_path / "odd.npz:K")), _k(700))


@pytest.mark.parametrize("make,words", [
    (lambda p: np.savez(p / "a.npz", K=_k()), ("a.npz", "no 'K_nope' array", "has: K")),
    (lambda p: np.savez(p / "a.npz", K_nope=np.full((3, 3), np.nan)), ("non-finite",)),
    (lambda p: np.savez(p / "a.npz", K_nope=_k(0.0)), ("focal length", "not positive")),
    (lambda p: np.savez(p / "a.npz", K_nope=np.eye(4)), ("shape (4, 4)",)),
    (lambda p: np.savez(p / "a.npz", K_nope=np.zeros((0, 3, 3))), ("hold no matrices",)),
    (lambda p: np.savez(p / "a.npz", K_nope=np.array([_k(), None], dtype=object)), ("cannot read intrinsics",)),
    (lambda p: np.savez(p / "a.npz", K_nope=np.array(["x"] * 9).reshape(3, 3)), ("cannot read intrinsics",)),
    (lambda p: (p / "a.npz").write_bytes(b"PK\x03\x04 broken"), ("cannot read intrinsics", "a.npz")),
])
def test_load_intrinsics_refuses_bad_contents(tmp_path, make, words):
    make(tmp_path)
    with pytest.raises(CaptureError) as err:
        load_intrinsics(f"{tmp_path / 'a.npz'}:K_nope")
    for w in words:
        assert w in str(err.value)


def test_cli_intrinsics_errors(tmp_path):
    v = tmp_path / "v.mp4"
    v.write_bytes(b"not decoded: the intrinsics fail first")
    d = tmp_path / f"cam {ODD}"
    d.mkdir()
    np.savez(d / "labels.npz", K=_k())
    out = tmp_path / "c.npz"
    line = assert_one_error_line(run_cli("capture", v, "--out", out, "--intrinsics", rf"C:\dir\labels.npz:K"),
                                 "intrinsics file not found")
    assert line.endswith(r"C:\dir\labels.npz")  # the key split off, the drive letter kept
    assert_one_error_line(run_cli("capture", v, "--out", out, "--intrinsics", f"{d / 'labels.npz'}:K_crop"),
                          "labels.npz has no 'K_crop' array (has: K)")
    assert_one_error_line(run_cli("capture", v, "--out", out, "--intrinsics", d / "missing.npy"),
                          "intrinsics file not found", "missing.npy")
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------
# 3. MANO pickles that would run code


def _binunicode(text: str) -> bytes:
    raw = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(raw)) + raw


def _hostile_pickle(module: str, name: str, *args: str, stack_global: bool = False) -> bytes:
    """{"v_template": module.name(*args)} as raw pickle opcodes: GLOBAL (protocol 0-2 style) or
    STACK_GLOBAL (protocol 4), so the module can be one this platform lacks (nt on Linux)."""
    if stack_global:
        func = _binunicode(module) + _binunicode(name) + b"\x93"
    else:
        func = b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    call = func + b"(" + b"".join(_binunicode(a) for a in args) + b"tR"
    return b"\x80\x04}" + _binunicode("v_template") + call + b"s."


def _hostile_cases(marker: Path) -> dict:
    m = str(marker)
    cmd = f"touch '{m}'"
    return {
        "posix.system": _hostile_pickle("posix", "system", cmd),
        "nt.system": _hostile_pickle("nt", "system", cmd, stack_global=True),
        "os.system": _hostile_pickle("os", "system", cmd, stack_global=True),
        "builtins.open": _hostile_pickle("builtins", "open", m, "w"),
        "__builtin__.open": _hostile_pickle("__builtin__", "open", m, "w"),
        "io.open": _hostile_pickle("io", "open", m, "w", stack_global=True),
        "builtins.exec": _hostile_pickle("builtins", "exec", f"open({m!r}, 'w')"),
        "builtins.eval": _hostile_pickle("builtins", "eval", f"open({m!r}, 'w')", stack_global=True),
        "pathlib.Path": _hostile_pickle("pathlib", "Path", m),
        "builtins.getattr": _hostile_pickle("builtins", "getattr", "os", "system"),
        "builtins.__import__": _hostile_pickle("builtins", "__import__", "os"),
        "copyreg._reconstructor": (b"\x80\x02}" + _binunicode("v_template") + b"ccopyreg\n_reconstructor\n"
                                   b"(cbuiltins\nobject\ncbuiltins\nstr\n" + _binunicode(cmd) + b"tRs."),
        "_codecs.encode": _hostile_pickle("_codecs", "encode", "x", "rot13"),
    }


def _subprocess_call_pickle(marker: Path) -> bytes:
    """subprocess.call(["touch", marker]) written by pickle itself (protocol 4)."""
    import subprocess as sp

    class Evil:
        def __reduce__(self):
            return (sp.call, (["touch", str(marker)],))

    return pickle.dumps({"v_template": Evil()}, protocol=4)


def test_crafted_pickles_really_run_code(tmp_path):
    """The payloads are live: plain pickle.loads does create the file (so the refusals below mean something)."""
    marker = tmp_path / "pwned"
    cases = _hostile_cases(marker)
    for name in ("builtins.open", "builtins.exec", "posix.system" if os.name != "nt" else "nt.system"):
        pickle.loads(cases[name])
        assert marker.exists(), name
        marker.unlink()
    if shutil.which("touch"):
        pickle.loads(_subprocess_call_pickle(marker))
        assert marker.exists()
        marker.unlink()


def test_crafted_pickles_are_refused_and_run_nothing(tmp_path):
    marker = tmp_path / "pwned"
    cases = _hostile_cases(marker)
    cases["subprocess.call"] = _subprocess_call_pickle(marker)
    for name, payload in cases.items():
        path = tmp_path / "MANO_RIGHT.pkl"
        path.write_bytes(payload)
        with pytest.raises(CaptureError) as err:
            load.load_model("right", path)
        msg = str(err.value)
        assert "MANO_RIGHT.pkl" in msg and "\n" not in msg, (name, msg)
        if name not in ("copyreg._reconstructor", "_codecs.encode"):  # allowed names, refused arguments
            assert msg.startswith("refusing to load MANO_RIGHT.pkl: it contains "), (name, msg)
        assert not marker.exists(), name


def test_cli_refuses_crafted_pickle(tmp_path):
    marker = tmp_path / "pwned"
    v = tmp_path / "v.mp4"
    v.write_bytes(b"never decoded: the model fails first")
    for i, payload in enumerate((_hostile_cases(marker)["posix.system"], _subprocess_call_pickle(marker))):
        evil = tmp_path / f"{ODD} {i}" / "MANO_RIGHT.pkl"
        evil.parent.mkdir()
        evil.write_bytes(payload)
        assert_one_error_line(run_cli("capture", v, "--out", tmp_path / "c.npz", "--model-right", evil),
                              "refusing to load MANO_RIGHT.pkl")
        assert not marker.exists()
    assert not (tmp_path / "c.npz").exists()


# ---------------------------------------------------------------------------------------------------------
# 4. Fuzzing: clip files and command lines


def _tiny_clip(rng, t=4, hands=("right",), vertices=False) -> ClipResult:
    h = len(hands)
    ones = np.ones((h, t), bool)
    return ClipResult(
        source=f"{ODD}.mp4", fps=30.0, image_size=np.array([64, 48]), frame_index=np.arange(t),
        time=np.arange(t) / 30, K=np.repeat(_k(50, (32, 24))[None], t, 0), K_guessed=True, sides=hands,
        model_names=("handcap-open",) * h, model_paths=("",) * h, valid=ones, detected=ones,
        confidence=ones.astype(np.float32), betas=rng.normal(size=(h, 10)), global_orient=rng.normal(size=(h, t, 3)),
        hand_pose=rng.normal(size=(h, t, 15, 3)), transl=rng.normal(size=(h, t, 3)) + [0, 0, 0.5],
        joints=rng.normal(size=(h, t, 21, 3)) * 0.03 + [0, 0, 0.5], landmarks_px=rng.normal(size=(h, t, 21, 2)),
        landmarks_world=rng.normal(size=(h, t, 21, 3)),
        vertices=rng.normal(size=(h, t, 5, 3)) if vertices else None,
        faces=np.array([[0, 1, 2], [2, 3, 4]]) if vertices else None)


def _write_clip(path: Path, clip: ClipResult) -> Path:
    return save_clip(clip, path)


def _clip_arrays(clip: ClipResult) -> dict:
    with tempfile.TemporaryDirectory() as d:
        p = save_clip(clip, Path(d) / "c.npz")
        with np.load(p) as z:
            return {k: z[k] for k in z.files}


_VALID = _clip_arrays(_tiny_clip(np.random.default_rng(0), vertices=True))
with tempfile.TemporaryDirectory() as _d:
    _VALID_BYTES = save_clip(_tiny_clip(np.random.default_rng(0)), Path(_d) / "c.npz").read_bytes()


def _loads_or_capture_error(data: bytes | None = None, arrays: dict | None = None):
    """Write the file, load it: a ClipResult that passes check_clip, or CaptureError; anything else fails."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.npz"
        if arrays is not None:
            np.savez(p, **arrays)  # object arrays are pickled into the file: load_clip must refuse them
        else:
            p.write_bytes(data)
        try:
            clip = load_clip(p)
        except CaptureError as exc:
            assert "\n" not in str(exc)
            return None
        check_clip(clip)
        assert clip.n_frames >= 1 and 1 <= clip.n_hands <= 2
        return clip


# derandomize: the same examples on every run, so CI is repeatable (set it False locally to explore more)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

_dtypes = st.sampled_from(["f4", "f8", "i8", "u1", "?", "U5", "S3", "c8", "M8[s]", "m8[s]",
                          [("a", "<i4"), ("b", "<f4")]]).map(np.dtype)
_arrays = st.one_of(
    hnp.arrays(_dtypes, hnp.array_shapes(min_dims=0, max_dims=4, max_side=4)),
    st.sampled_from([np.array(None, dtype=object), np.array([{"a": 1}], dtype=object),
                     np.array([1, "x"], dtype=object)]),
    st.just(np.zeros((0, 3))),
)


@FUZZ
@given(st.binary(max_size=2000))
def test_fuzz_load_clip_random_bytes(data):
    _loads_or_capture_error(data)


@FUZZ
@given(st.integers(0, len(_VALID_BYTES) - 1), st.lists(st.tuples(st.integers(0, len(_VALID_BYTES) - 1),
                                                                    st.integers(0, 255)), max_size=4))
def test_fuzz_load_clip_truncated_or_flipped(cut, flips):
    data = bytearray(_VALID_BYTES)
    for at, value in flips:
        data[at] = value
    _loads_or_capture_error(bytes(data[: cut if not flips else len(data)]))


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(_VALID)), st.one_of(st.none(), _arrays), max_size=5))
def test_fuzz_load_clip_arrays(changes):
    """A valid clip with keys removed (None) or replaced by arrays of any dtype and shape."""
    arrays = dict(_VALID)
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    clip = _loads_or_capture_error(arrays=arrays)
    if not changes:
        assert clip is not None and clip.source == f"{ODD}.mp4"


@FUZZ
@given(st.sampled_from(["version", "fps", "K_guessed", "format", "source", "image_size", "frame_index", "faces"]),
       st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=8), st.booleans()),
       st.sampled_from([(), (1,), (2,), (1, 1)]))
@example(key="fps", value="\n", shape=())  # found by CI: the message showed the raw string, a line break in it
def test_fuzz_load_clip_scalars(key, value, shape):
    """Plausible-looking values of the wrong kind where a scalar or a small int array is expected."""
    arrays = dict(_VALID)
    arrays[key] = np.full(shape, value)
    _loads_or_capture_error(arrays=arrays)


def test_load_clip_refusals_name_the_problem(tmp_path):
    rng = np.random.default_rng(1)
    cases = {
        "version": (dict(version=np.array([1, 1])), "version (unreadable)"),
        "fps": (dict(fps=np.array(np.nan)), "fps must be one positive number"),
        "dtype": (dict(joints=_VALID["joints"].astype("U8")), "joints has dtype <U8"),
        "object": (dict(sides=np.array(["right"], dtype=object)), "not a readable clip file"),
        "faces": (dict(faces=np.array([[0, 1, 99]])), "faces index vertices 0..99, outside 0..4"),
        "frames": (dict(frame_index=np.arange(4).reshape(2, 2)), "frame_index has shape (2, 2)"),
        "missing": (dict(K=None), "missing key 'K'"),
        "nan K": (dict(K=np.full_like(_VALID["K"], np.nan)), "K holds non-finite values"),
        "inf joints": (dict(joints=np.full(_VALID["joints"].shape, 1e300)), "joints holds non-finite"),
    }
    for name, (change, words) in cases.items():
        arrays = {k: v for k, v in {**_VALID, **change}.items() if v is not None}
        np.savez(tmp_path / "c.npz", **arrays)
        with pytest.raises(CaptureError) as err:
            load_clip(tmp_path / "c.npz")
        assert words in str(err.value) and "c.npz" in str(err.value), (name, str(err.value))
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(CaptureError, match="holds one array"):
        load_clip(tmp_path / "one.npy")
    assert load_clip(_write_clip(tmp_path / "ok.npz", _tiny_clip(rng, vertices=True))).vertices.shape == (1, 4, 5, 3)


# -- the command line, in process: core.cli.main(argv) --

# Options per command and the kind of value each takes (None: a flag).
OPTIONS = {
    "capture": {"--out": "path", "--static": None, "--hands": "choice", "--start": "int", "--end": "int",
                "--stride": "int", "--fx": "float", "--fy": "float", "--cx": "float", "--cy": "float",
                "--fov": "float", "--intrinsics": "path", "--with-vertices": None, "--model-right": "path",
                "--model-left": "path", "--no-vae": None, "--no-fit": None, "--no-collide": None,
                "--min-confidence": "float", "--json-progress": None, "--quiet": None, "--side": "choice"},
    "eval": {"--gt": "path", "--gt-key": "text", "--gt-hand": "choice", "--side": "choice", "--json": "path",
             "--plot": "path"},
    "model": {},
    "demo": {"--frames": "int"},
}
ALL_OPTIONS = sorted({o for opts in OPTIONS.values() for o in opts} | {"--cache-dir", "--out", "-h", "--help"})
NUMBERS = ["nan", "NaN", "inf", "-inf", "-1", "0", "-0", "1", "2", "3", "1e400", "1e-320", "-1e-300", "180", "0.5",
           "99999999999999999999999", "9" * 5000, "0x10", "1_000", "١٢", " 7 ", "", "1.5", "1e3", "60",
           "1000", "1e7", "1e8", "-5", "0.999"]
CHOICES = ["1", "2", "3", "0", "right", "left", "both", "RIGHT", ""]


@pytest.fixture(scope="module")
def fuzz_files(tmp_path_factory) -> dict:
    """Files the fuzzed command lines may name; none of them lets a capture or the demo really run."""
    d = tmp_path_factory.mktemp("fuzz")
    (d / "junk.mp4").write_text("not a video\n" * 20)
    (d / "empty").mkdir()
    (d / "bad images").mkdir()
    (d / "bad images" / "0.png").write_bytes(b"\x89PNG not really")
    (d / "blocker").write_text("a file where a folder is wanted")
    np.savez(d / "K.npz", K=_k(), K_crop=np.stack([_k()] * 2))
    (d / "model.pkl").write_bytes(_hostile_pickle("posix", "system", f"touch '{d / 'pwned'}'"))
    clip = _write_clip(d / "clip.npz", _tiny_clip(np.random.default_rng(2)))
    np.savez(d / "gt.npz", joints_cam=np.random.default_rng(3).normal(size=(4, 21, 3)) * 0.03 + [0, 0, 0.5])
    paths = {k: str(d / k) for k in ("junk.mp4", "empty", "bad images", "K.npz", "model.pkl", "gt.npz", "blocker")}
    paths.update({"clip": str(clip), "K_crop": f"{d / 'K.npz'}:K_crop", "K_win": r"C:\dir\K.npz:K",
                  "missing": str(d / f"{ODD}.mp4"), "blocked": str(d / "blocker" / "x"), "long": str(d / ("L" * 300)),
                  "dir": str(d), "rel": "out put 'x'.npz", "open model": str(ROOT / "build" / "cache")})
    return {"dir": d, "paths": paths}


def _argv(paths):
    """Command lines that are mostly well-formed (each command's own options) with hostile values, plus some
    garbage tokens. Nothing in them can start a real capture, model write or demo run: every capture input is
    broken, and model / demo always end with an --out that cannot be written (the last --out wins)."""
    text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/\\"), max_size=12)
    values = {"int": st.sampled_from(NUMBERS) | st.integers(-10, 10**6).map(str) | st.integers(0, 40).map(str),
              "float": st.sampled_from(NUMBERS) | st.floats().map(repr) | st.floats(0.01, 1.0).map(repr),
              "choice": st.sampled_from(CHOICES), "text": text | st.just("joints_cam"),
              "path": st.sampled_from(sorted(paths.values())) | text}
    garbage = st.one_of(st.sampled_from(ALL_OPTIONS), st.sampled_from(NUMBERS), text, st.just("--"), st.just("-"),
                        st.text(st.sampled_from("-=xz0"), max_size=5), st.sampled_from(sorted(paths.values())))
    inputs = st.sampled_from([paths[k] for k in ("junk.mp4", "empty", "bad images", "missing", "long", "blocked",
                                                 "clip", "dir", "K_win")]) | text

    @st.composite
    def build(draw):
        argv = []
        if draw(st.integers(0, 9)) == 0:
            argv += ["--cache-dir", draw(st.sampled_from([paths["blocker"], paths["open model"]]))]
        if draw(st.integers(0, 9)) == 0:
            command = draw(st.text(max_size=6).filter(lambda s: s not in OPTIONS))
        else:
            command = draw(st.sampled_from(["capture"] * 4 + ["eval"] * 2 + ["model", "demo"]))
        argv.append(command)
        opts = OPTIONS.get(command, {})
        if command == "capture":
            argv += [draw(inputs), "--out", draw(values["path"])]
        elif command == "eval":
            argv += [draw(st.sampled_from([paths["clip"], paths["gt.npz"], paths["missing"], paths["long"]]) | text),
                     "--gt", draw(st.sampled_from([paths["gt.npz"], paths["clip"], paths["K.npz"], paths["blocked"]]))]
        for opt in draw(st.lists(st.sampled_from(sorted(opts)), max_size=5)) if opts else []:
            argv.append(opt)
            if opts[opt] is not None:
                argv.append(draw(values[opts[opt]]))
        argv += draw(st.lists(garbage, max_size=2 if draw(st.integers(0, 2)) == 0 else 0))
        if command in ("model", "demo"):
            argv += ["--out", paths["blocked"]]
        if command == "capture":
            argv += ["--end", "3"]
        return argv

    return build()


def _run_main(argv, cwd):
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    env = dict(os.environ)
    os.chdir(cwd)  # relative names land in the fuzz folder
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # argparse: --help (0) and its own errors (2)
                code = exc.code
    finally:
        os.chdir(old)
        os.environ.clear()
        os.environ.update(env)
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=120, deadline=None, derandomize=True,  # repeatable in CI, as FUZZ
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_cli_arguments(fuzz_files, data):
    """Fuzzed command lines: exit 0, or exit 2 with exactly one ``error:`` line; never 3 or a traceback."""
    paths = fuzz_files["paths"]
    argv = data.draw(_argv(paths), label="argv")
    code, out, err = _run_main(argv, fuzz_files["dir"])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    event(f"exit {code}: " + (" ".join(lines[-1].split()[:3]) if lines and code else ""))
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code == 2:
        assert len([ln for ln in lines if ln.startswith("error: ")]) == 1, (argv, lines)
        assert all(ln.startswith(("error: ", "warning: ")) for ln in lines), (argv, lines)
    else:
        assert not any(ln.startswith("error: ") for ln in lines), (argv, lines)
    assert not (fuzz_files["dir"] / "pwned").exists()


def test_cli_number_validation():
    """Every number option refuses nan, inf and out-of-range values with one argparse line."""
    base = ["capture", "in.mp4", "--out", "o.npz"]
    for flag, bad in [("--fov", "nan"), ("--fov", "inf"), ("--fov", "-5"), ("--fov", "0"), ("--fov", "180"),
                      ("--fx", "nan"), ("--fx", "-1"), ("--fx", "0"), ("--fx", "1e400"), ("--fy", "-inf"),
                      ("--cx", "nan"), ("--cy", "1e300"), ("--stride", "0"), ("--stride", "-2"), ("--stride", "1.5"),
                      ("--start", "-1"), ("--end", "0"), ("--end", "nan"), ("--min-confidence", "nan"),
                      ("--min-confidence", "1.5"), ("--hands", "3")]:
        code, out, err = _run_main(base + [flag, bad], ROOT)
        lines = err.splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: argument {flag}: "), (flag, bad, err)
    code, _, err = _run_main(["demo", "--frames", "-3"], ROOT)
    assert code == 2 and err.startswith("error: argument --frames: ")


# ---------------------------------------------------------------------------------------------------------
# 5. FFmpeg / OpenCV noise stays out of the user's view


NOISE = ("[mov,", "moov atom", "[h264", "WARN", "ERROR:", "cap.cpp", "OPENCV", "Invalid NAL")


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    end = len(data) if end is None else end
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[i + 8:i + 16])[0], 16
        elif size == 0:
            size = end - i
        yield kind, i, head, size
        i += size


def faststart(data: bytes) -> bytes:
    """An mp4 with its index (moov) moved in front of the media data, chunk offsets shifted: a cut copy of
    it still opens, and decodes up to the cut (a cut ordinary mp4 loses its index at the end)."""
    top = list(_boxes(data))
    moov = next(b for b in top if b[0] == b"moov")
    assert moov[1] > next(b for b in top if b[0] == b"mdat")[1]
    m = bytearray(data[moov[1]:moov[1] + moov[3]])

    def walk(s, e):
        for kind, i, head, size in _boxes(m, s, e):
            if kind in (b"trak", b"mdia", b"minf", b"stbl"):
                walk(i + head, i + size)
            elif kind in (b"stco", b"co64"):
                n = struct.unpack(">I", m[i + head + 4:i + head + 8])[0]
                w, fmt = (4, ">I") if kind == b"stco" else (8, ">Q")
                for k in range(n):
                    o = i + head + 8 + k * w
                    m[o:o + w] = struct.pack(fmt, struct.unpack(fmt, m[o:o + w])[0] + len(m))

    walk(8, len(m))
    out = bytearray()
    for kind, i, head, size in top:
        if kind == b"mdat":
            out += m
        if kind != b"moov":
            out += data[i:i + size]
    return bytes(out)


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory, data_dir) -> dict:
    d = tmp_path_factory.mktemp("bad videos")
    real = (data_dir / "video" / "single_hand.mp4").read_bytes()
    fast = faststart(real)
    mdat = fast.find(b"mdat")
    rng = np.random.default_rng(0)
    corrupt = bytearray(real)
    at = real.find(b"mdat") + 8
    corrupt[at:at + 40000] = rng.integers(0, 256, 40000, dtype=np.uint8).tobytes()
    files = {
        "random bytes.mp4": rng.integers(0, 256, 20000, dtype=np.uint8).tobytes(),
        "zero bytes.mp4": b"",
        "text.mov": b"this is a text file, not a video\n" * 50,
        "cut (index lost).mp4": real[: len(real) // 2],
        "cut (no frame).mp4": fast[: mdat + 200],
        "corrupt frames.mp4": bytes(corrupt),
    }
    out = {}
    for name, data in files.items():
        (d / name).write_bytes(data)
        out[name] = d / name
    (d / "cut (11 frames).mp4").write_bytes(fast[: int(len(fast) * 0.05)])
    out["cut (11 frames).mp4"] = d / "cut (11 frames).mp4"
    return out


@pytest.mark.parametrize("name", ["random bytes.mp4", "zero bytes.mp4", "text.mov", "cut (index lost).mp4",
                                  "cut (no frame).mp4", "corrupt frames.mp4"])
def test_bad_video_shows_one_error_line(bad_videos, tmp_path, name):
    video = bad_videos[name]
    out = tmp_path / "c.npz"
    line = assert_one_error_line(run_cli("capture", video, "--out", out, "--end", 30, "--hands", 1), name)
    assert not any(n in line for n in NOISE)
    if name in ("zero bytes.mp4", "corrupt frames.mp4"):  # the worker protocol: stdout stays pure JSON
        r = run_cli("capture", video, "--out", out, "--end", 30, "--hands", 1, "--json-progress")
        assert_one_error_line(r, name)
        events = [json.loads(ln) for ln in r.stdout.decode().splitlines()]
        assert events[-1]["event"] == "error" and name in events[-1]["message"]
    assert not out.exists()


def test_library_noise_is_there_when_asked_for(bad_videos, tmp_path):
    """The quieting is a default: with the libraries' own variables set, their lines do reach stderr (so the
    test above really checks that we hid them)."""
    r = run_cli("capture", bad_videos["random bytes.mp4"], "--out", tmp_path / "c.npz",
                env={"OPENCV_FFMPEG_LOGLEVEL": "24", "OPENCV_LOG_LEVEL": "INFO"})
    noisy = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2 and any(n in noisy for n in NOISE), noisy


def test_truncated_video_warns_once(bad_videos, tmp_path):
    """A cut file whose first frames decode: the clip is written, and stderr holds one warning line and no
    library noise (the truncation used to print twice: once by Python's last-resort logging)."""
    video = bad_videos["cut (11 frames).mp4"]
    r = run_cli("capture", video, "--out", tmp_path / "c.npz", "--end", 30, "--hands", 1)
    assert r.returncode == 0, stderr_lines(r)
    lines = stderr_lines(r)
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "only 11 of 30" in lines[0], lines
    assert load_clip(tmp_path / "c.npz").n_frames == 11
