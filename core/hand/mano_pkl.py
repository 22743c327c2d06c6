"""MANO pickles: read a user's official MANO_RIGHT.pkl / MANO_LEFT.pkl without chumpy; write our own.

The official files are Python 2 pickles of a dict holding numpy arrays, a ``scipy.sparse.csc_matrix``
(J_regressor) and chumpy ``Ch`` objects (shapedirs, sometimes more).  Unpickling runs whatever the file
names, so `_RestrictedUnpickler.find_class` hands out only:

* numpy's array / dtype / scalar reconstructors (``numpy.core.multiarray._reconstruct``,
  ``numpy.ndarray``, ``numpy.dtype``, ``numpy.core.multiarray.scalar``, ``numpy.core.numeric._frombuffer``,
  and their ``numpy._core`` spellings);
* ``scipy.sparse`` CSC / CSR matrices, mapped to `_SparseState`, which only records their arrays;
* any ``chumpy.*`` class, mapped to a `_ChumpyState` that only records its pickled state (chumpy pickles
  ``Ch.__dict__`` minus caches: the array is ``x``; reordering ops keep their input in ``a``);
* plain data types (``set``, ``frozenset``, ``object``, ``slice``, ``dict``, ``list``, ``tuple``, numbers,
  strings, ``collections.OrderedDict``: parts of chumpy's state), ``copyreg._reconstructor`` limited to
  the shims above, and ``_codecs.encode`` limited to latin-1 (how Python 3 writes bytes at protocol 2).

Anything else (``os.system``, ``builtins.eval``, ...) raises `CaptureError` before it can be called.

Side check (`hand_chirality`): with MANO's joints, n = (index1 - wrist) x (pinky1 - wrist) points out of
the palm for a right hand and out of the back for a left one, and the thumb sits palmar of the knuckle
plane (official MANO: ~1.6-2.1 cm; handcap-open: ~1.5-2 cm).  So sign(n . (mean(thumb1..3) - wrist)) is
+ for a right hand and - for a left one.  Mirroring (left = right with x -> -x) flips it.
"""
from __future__ import annotations

import collections
import importlib
import io
import os
import pickle
from pathlib import Path

import numpy as np

from ..errors import CaptureError
from .model import SIDES, validate_arrays

# Keys smplx.MANO reads from the pickle.
MANO_PICKLE_KEYS = ("v_template", "f", "weights", "J_regressor", "kintree_table", "shapedirs", "posedirs",
                    "hands_components", "hands_mean")
CHIRALITY_MIN = 0.05  # |chirality| below this: the geometry cannot tell the side


class _ChumpyState:
    """Stands in for a chumpy object: keeps its class name and pickled state, computes nothing."""

    chumpy_name = "chumpy.?"

    def __init__(self, *args, **kwargs):
        self.args, self.state = args, {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"state": state}


class _SparseState:
    """Stands in for a scipy.sparse CSC/CSR matrix: keeps its arrays and shape."""

    sparse_format = "csc"

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {}

    def toarray(self) -> np.ndarray:
        """The dense matrix, in numpy alone (Blender has no scipy): CSC stores row ``indices`` per column
        ``indptr`` range, CSR column indices per row; duplicate entries add up, as in scipy."""
        s = self.state
        shape = tuple(int(n) for n in s.get("_shape", s.get("shape", ())))
        data, minor, indptr = (np.asarray(s[k]) for k in ("data", "indices", "indptr"))
        major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        dense = np.zeros(shape, data.dtype)
        rows, cols = (minor, major) if self.sparse_format == "csc" else (major, minor)
        np.add.at(dense, (rows, cols), data)
        return dense


_shim_classes: dict = {}


def _chumpy_class(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _shim_classes:
        _shim_classes[key] = type(name, (_ChumpyState,), {"chumpy_name": key})
    return _shim_classes[key]


def _sparse_class(fmt: str) -> type:
    key = f"sparse.{fmt}"
    if key not in _shim_classes:
        _shim_classes[key] = type(f"{fmt}_state", (_SparseState,), {"sparse_format": fmt})
    return _shim_classes[key]


def _numpy_attr(submodule: str, name: str):
    for mod in (f"numpy._core.{submodule}", f"numpy.core.{submodule}"):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise AttributeError(name)


def _safe_reconstructor(cls, base, state):
    """copyreg._reconstructor for the shims only (protocol 0/1 pickles of new-style objects)."""
    if not (isinstance(cls, type) and issubclass(cls, (_ChumpyState, _SparseState))):
        raise pickle.UnpicklingError(f"copyreg._reconstructor of {cls!r}")
    return cls.__new__(cls)


def _latin1_encode(text, encoding="latin1", errors="strict"):
    if str(encoding).replace("-", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}")
    return text.encode("latin1")


# Plain data constructors that may appear in chumpy's pickled state; none can run code.
_SAFE_BUILTINS = {t.__name__: t for t in (set, frozenset, object, slice, complex, bytearray, dict, list, tuple,
                                          int, float, str, bytes, bool)}
_NUMPY_NAMES = {("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")}
_SPARSE_MODULES = ("scipy.sparse", "scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr",
                   "scipy.sparse._csr", "scipy.sparse.compressed", "scipy.sparse._compressed")


class _Refused(Exception):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray") and name in ("ndarray", "dtype"):
            return getattr(np, name)
        for prefix in ("numpy.core.", "numpy._core."):
            if module.startswith(prefix) and (module[len(prefix):], name) in _NUMPY_NAMES:
                return _numpy_attr(module[len(prefix):], name)
        if module in _SPARSE_MODULES and name in ("csc_matrix", "csr_matrix", "csc_array", "csr_array"):
            return _sparse_class(name[:3])
        if (module == "chumpy" or module.startswith("chumpy.")) and name.isidentifier():
            return _chumpy_class(module, name)
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module in ("copyreg", "copy_reg") and name == "_reconstructor":
            return _safe_reconstructor
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        raise _Refused(f"{module}.{name}")


def _value(obj, key: str, source: str):
    """The numpy array behind a pickled value (array, sparse matrix, chumpy expression)."""
    if isinstance(obj, _SparseState):
        return obj.toarray()
    if isinstance(obj, _ChumpyState):
        s, kind = obj.state, obj.chumpy_name.rsplit(".", 1)[-1]
        if kind == "Ch" and "x" in s:
            return _value(s["x"], key, source)
        if kind == "Reshape" and "a" in s:
            return np.reshape(_value(s["a"], key, source), s["newshape"])
        if kind == "transpose" and "a" in s:
            return np.transpose(_value(s["a"], key, source), s.get("axes"))
        if kind == "Select" and "a" in s:
            out = np.ravel(_value(s["a"], key, source))[np.asarray(s["idxs"])]
            return out.reshape(s["preferred_shape"]) if "preferred_shape" in s else out
        if kind == "Concatenate" and "axis" in s:
            terms = sorted((k for k in s if k[:1] == "m" and k[1:].isdigit()), key=lambda k: int(k[1:]))
            return np.concatenate([_value(s[k], key, source) for k in terms], axis=s["axis"])
        raise CaptureError(f"{source}: '{key}' is a chumpy {obj.chumpy_name} expression, which this reader "
                           "cannot evaluate; re-save the model with plain numpy arrays")
    return np.asarray(obj)


def read_pickle(path: str | Path):
    """Unpickle a MANO file with the restricted unpickler; CaptureError names the file on any failure."""
    path = Path(path)
    if not path.is_file():
        raise CaptureError(f"MANO model file not found: {path}")
    try:
        with open(path, "rb") as fh:
            return _RestrictedUnpickler(fh, encoding="latin1").load()
    except _Refused as exc:
        raise CaptureError(f"refusing to load {path.name}: it contains {exc.what}, which a MANO model file "
                           "never does") from None
    except EOFError:
        raise CaptureError(f"{path.name} is truncated (the pickle ends early): download the MANO model "
                           "again") from None
    except pickle.UnpicklingError as exc:
        if "truncated" in str(exc):
            raise CaptureError(f"{path.name} is truncated ({exc}): download the MANO model again") from None
        raise CaptureError(f"{path.name} is not a MANO pickle ({exc}); expected MANO_RIGHT.pkl or "
                           "MANO_LEFT.pkl from mano.is.tue.mpg.de") from None
    except CaptureError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure is the user's file
        raise CaptureError(f"cannot read {path.name} as a MANO model: {type(exc).__name__}: {exc}") from None


def hand_chirality(joints: np.ndarray) -> float:
    """Side test on rest joints (16, 3) in MANO order: > 0 right hand, < 0 left hand (see module doc).

    Returns the cosine between the knuckle-plane normal (index1 - wrist) x (pinky1 - wrist) and the
    wrist-to-thumb direction (mean of thumb1..3); |value| < CHIRALITY_MIN means undecided.
    """
    j = np.asarray(joints, np.float64)
    n = np.cross(j[1] - j[0], j[7] - j[0])
    t = j[13:16].mean(axis=0) - j[0]
    return float(n @ t / max(np.linalg.norm(n) * np.linalg.norm(t), 1e-30))


def _file_side(path: Path) -> str | None:
    stem = path.name.upper()
    if "RIGHT" in stem and "LEFT" not in stem:
        return "right"
    if "LEFT" in stem and "RIGHT" not in stem:
        return "left"
    return None


def read_official(path: str | Path, side: str) -> tuple:
    """Read an official MANO pickle (or one written by `write_mano_pickle`) as MANO-format arrays.

    `core.hand.load.load_model` turns them into a `HandModel` and then calls `check_chirality`.

    Args:
        path: MANO_RIGHT.pkl / MANO_LEFT.pkl (any name; RIGHT / LEFT in it must match ``side``).
        side: "right" or "left".
    Returns:
        (arrays, name): the validated arrays (``faces``, ``v_template``, ...; metres, MANO's model frame) and
        the model's name (its ``name`` entry, else the file name).
    Raises:
        CaptureError: missing / not a pickle / truncated / unsafe file, wrong keys or shapes, or a file
            named for the other side.
    """
    path = Path(path)
    if side not in SIDES:
        raise CaptureError(f"hand side must be 'right' or 'left'; got {side!r}")
    named = _file_side(path)
    if named is not None and named != side:
        raise CaptureError(f"{path.name} is the {named} hand's MANO file; a {side} hand was asked for: "
                           f"choose MANO_{side.upper()}.pkl")
    data = read_pickle(path)
    if not isinstance(data, dict):
        raise CaptureError(f"{path.name} is not a MANO model: it holds a {type(data).__name__}, not a dict of "
                           "arrays")
    rename = {"f": "faces"}
    wanted = ("v_template", "f", "faces", "weights", "J_regressor", "shapedirs", "posedirs", "tip_vertex_ids",
              "beta_names", "name")
    arrays = {rename.get(k, k): _value(data[k], k, path.name) for k in wanted if k in data}
    problems = validate_arrays(arrays, path.name)
    if problems:
        raise CaptureError("; ".join(problems))
    return arrays, str(arrays.get("name", path.name))


def check_chirality(model, path: str | Path) -> None:
    """Raise CaptureError when ``model`` (a `HandModel` read from ``path``) is, by its geometry, a hand of
    the other side than ``model.side`` (`hand_chirality`)."""
    chir = hand_chirality(model.rest_joints())
    found = "right" if chir > 0 else "left"
    if abs(chir) >= CHIRALITY_MIN and found != model.side:
        raise CaptureError(f"{Path(path).name} holds a {found} hand (its thumb is on the {found} hand's side of "
                           f"the palm); a {model.side} hand was asked for")


def write_mano_pickle(arrays: dict, path: str | Path) -> Path:
    """Write a MANO-format pickle: a plain dict of numpy arrays, what ``smplx.MANO`` loads.

    Args:
        arrays: at least MANO_PICKLE_KEYS (``f`` are the faces); extra keys are kept.
        path: output file; written atomically (temporary file, then rename).
    """
    missing = [k for k in MANO_PICKLE_KEYS if k not in arrays]
    if missing:
        raise CaptureError(f"cannot write {Path(path).name}: missing {', '.join(missing)}")
    data = {k: np.asarray(v) for k, v in arrays.items()}
    buf = io.BytesIO()
    pickle.dump(data, buf, protocol=4)
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return path
