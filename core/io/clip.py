"""The clip file (`docs/clip_format.md`): the one place that knows its keys.

`ClipResult` holds a captured clip as numpy arrays; `save_clip` / `load_clip` write and read it
(`.npz`, no pickles) and `load_clip` validates every key, dtype, shape and the version, so a damaged or
hostile file ends in one CaptureError.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

import numpy as np

from ..errors import CaptureError

FORMAT = "handcap.clip"
VERSION = 1


@dataclasses.dataclass(frozen=True)
class ClipResult:
    """A captured clip; every field is documented in docs/clip_format.md (T frames, H hands)."""

    source: str
    fps: float
    image_size: np.ndarray  # (2,) int [W, H]
    frame_index: np.ndarray  # (T,) int
    time: np.ndarray  # (T,) float seconds
    K: np.ndarray  # (T, 3, 3)
    K_guessed: bool
    sides: tuple  # (H,) "right"/"left"; two slots share a side only for two people's same-side hands
    model_names: tuple  # (H,) str
    model_paths: tuple  # (H,) str, "" = the bundled open model
    valid: np.ndarray  # (H, T) bool
    detected: np.ndarray  # (H, T) bool
    confidence: np.ndarray  # (H, T)
    betas: np.ndarray  # (H, B)
    global_orient: np.ndarray  # (H, T, 3)
    hand_pose: np.ndarray  # (H, T, 15, 3)
    transl: np.ndarray  # (H, T, 3)
    joints: np.ndarray  # (H, T, 21, 3) MediaPipe order, camera frame
    landmarks_px: np.ndarray  # (H, T, 21, 2)
    landmarks_world: np.ndarray  # (H, T, 21, 3)
    vertices: np.ndarray | None = None  # (H, T, V, 3)
    faces: np.ndarray | None = None  # (F, 3)
    cuts: tuple = ()  # clip frame positions (1..T-1) where a new shot starts (scene cuts); optional in the file
    image_sizes: np.ndarray | None = None  # (T, 2) int [W, H] per frame; optional (absent: image_size for all)
    K_exif: np.ndarray | None = None  # (T,) bool, K of the frame from the photo's EXIF focal length; optional
    # True: the right and left hands were given one size from both hands' evidence (one person's hands,
    # `core.capture.person_pair`); False: each hand sized alone. Optional in the file (absent: False).
    shared_size: bool = False
    contact: np.ndarray | None = None  # (H, T, 6) bool, region within 2 mm of a surface (contact refinement); optional
    penetration_mm: np.ndarray | None = None  # (H, T) float, deepest vertex inside an object / the other hand; optional
    detector: str = ""  # the hand detector backend that ran ("mediapipe", "hybrid", "torch"); optional ("": not recorded)
    fit_device: str = ""  # the torch device type the fit ran on ("cpu", "cuda"); optional ("": not recorded)
    # --fov auto: what the focal self-calibration found (one line; "" = not asked). Optional in the file.
    self_calibration: str = ""
    # which model made the 3D: "pipeline" (the detector's 3D landmarks, VAE, fit) or "paper:<weights> ..." (the
    # paper's network, `core.net.paper`); optional in the file ("": not recorded, older clips)
    model: str = ""

    def frame_sizes(self) -> np.ndarray:
        """(T, 2) int [W, H] of every frame: ``image_sizes`` where the clip has it, else ``image_size``."""
        if self.image_sizes is not None:
            return np.asarray(self.image_sizes, np.int64)
        return np.repeat(np.asarray(self.image_size, np.int64)[None], self.n_frames, 0)

    @property
    def mixed_sizes(self) -> bool:
        """True when the frames differ in size (an image folder of photos of different sizes)."""
        return self.image_sizes is not None and bool((np.asarray(self.image_sizes) != np.asarray(self.image_sizes)[:1]).any())

    @property
    def n_frames(self) -> int:
        return int(np.shape(self.frame_index)[0]) if np.ndim(self.frame_index) else 0

    @property
    def n_hands(self) -> int:
        return len(self.sides)

    def model_path(self, h: int) -> str | None:
        """Model file of hand slot ``h`` (None for the bundled open model)."""
        return self.model_paths[h] or None

    def hand(self, side: str) -> int:
        """Slot index of ``side`` (its first slot); raises CaptureError when the clip has no such hand."""
        if side not in self.sides:
            raise CaptureError(f"clip has no {side} hand (hands: {', '.join(self.sides) or 'none'})")
        return self.sides.index(side)


def _expected_shapes(c: ClipResult) -> dict:
    t, h = c.n_frames, c.n_hands
    return {
        "image_size": (2,),
        "time": (t,),
        "K": (t, 3, 3),
        "valid": (h, t),
        "detected": (h, t),
        "confidence": (h, t),
        "global_orient": (h, t, 3),
        "hand_pose": (h, t, 15, 3),
        "transl": (h, t, 3),
        "joints": (h, t, 21, 3),
        "landmarks_px": (h, t, 21, 2),
        "landmarks_world": (h, t, 21, 3),
    }


def check_clip(c: ClipResult, name: str = "clip") -> None:
    """Raise CaptureError listing every key whose shape breaks the format (and a clip without frames or hands)."""
    problems = []
    if c.n_frames == 0 or not c.sides:
        problems.append(f"it holds {c.n_frames} frames and {len(c.sides)} hands; a clip has at least one of each")
    if np.ndim(c.frame_index) != 1:
        problems.append(f"frame_index has shape {np.shape(c.frame_index)}, expected (T,)")
    for key, shape in _expected_shapes(c).items():
        got = np.shape(getattr(c, key))
        if got != shape:
            problems.append(f"{key} has shape {got}, expected {shape}")
    if np.ndim(c.betas) != 2 or np.shape(c.betas)[0] != c.n_hands:
        problems.append(f"betas has shape {np.shape(c.betas)}, expected ({c.n_hands}, B)")
    if len(c.model_names) != c.n_hands or len(c.model_paths) != c.n_hands:
        problems.append(f"model_names/model_paths need one entry per hand ({c.n_hands})")
    if any(s not in ("right", "left") for s in c.sides) or list(c.sides) != sorted(c.sides, key=("right", "left").index):
        problems.append(f"sides {list(c.sides)} must be 'right'/'left', right slots first")
    cuts = list(c.cuts)
    if any(not isinstance(x, (int, np.integer)) for x in cuts) or cuts != sorted(set(cuts)) \
            or any(not 0 < x < c.n_frames for x in cuts):
        problems.append(f"cuts {cuts[:5]} must be increasing clip frame positions in 1..{c.n_frames - 1}")
    if c.image_sizes is not None and np.shape(c.image_sizes) != (c.n_frames, 2):
        problems.append(f"image_sizes has shape {np.shape(c.image_sizes)}, expected ({c.n_frames}, 2)")
    if c.K_exif is not None and np.shape(c.K_exif) != (c.n_frames,):
        problems.append(f"K_exif has shape {np.shape(c.K_exif)}, expected ({c.n_frames},)")
    if c.contact is not None and np.shape(c.contact) != (c.n_hands, c.n_frames, 6):
        problems.append(f"contact has shape {np.shape(c.contact)}, expected ({c.n_hands}, {c.n_frames}, 6)")
    if c.penetration_mm is not None and np.shape(c.penetration_mm) != (c.n_hands, c.n_frames):
        problems.append(f"penetration_mm has shape {np.shape(c.penetration_mm)}, expected ({c.n_hands}, {c.n_frames})")
    if c.vertices is not None:
        v = np.shape(c.vertices)
        if len(v) != 4 or v[:2] != (c.n_hands, c.n_frames) or v[3] != 3 or c.faces is None:
            problems.append(f"vertices has shape {v}, expected ({c.n_hands}, {c.n_frames}, V, 3) with faces")
        else:
            f = np.asarray(c.faces)
            if f.ndim != 2 or f.shape[1:] != (3,) or f.dtype.kind not in "iu":
                problems.append(f"faces has shape {f.shape} ({f.dtype}), expected (F, 3) int")
            elif f.size and (f.min() < 0 or f.max() >= v[2]):
                problems.append(f"faces index vertices {int(f.min())}..{int(f.max())}, outside 0..{v[2] - 1}")
    if problems:
        raise CaptureError(f"{name} is not a valid clip file: " + "; ".join(problems))


def save_clip(c: ClipResult, path: str | os.PathLike) -> Path:
    """Write ``c`` to ``path`` (.npz) atomically (a temp file renamed over the target); returns the path."""
    check_clip(c)
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "source": np.array(str(c.source)),
        "fps": np.array(float(c.fps)),
        "image_size": np.asarray(c.image_size, np.int64),
        "frame_index": np.asarray(c.frame_index, np.int64),
        "time": np.asarray(c.time, np.float64),
        "K": np.asarray(c.K, np.float64),
        "K_guessed": np.array(bool(c.K_guessed)),
        "sides": np.array(list(c.sides), dtype="<U5"),
        "model_names": np.array([str(x) for x in c.model_names]),
        "model_paths": np.array([str(x) for x in c.model_paths]),
        "valid": np.asarray(c.valid, bool),
        "detected": np.asarray(c.detected, bool),
        "confidence": np.asarray(c.confidence, np.float32),
        "betas": np.asarray(c.betas, np.float32),
        "global_orient": np.asarray(c.global_orient, np.float32),
        "hand_pose": np.asarray(c.hand_pose, np.float32),
        "transl": np.asarray(c.transl, np.float32),
        "joints": np.asarray(c.joints, np.float32),
        "landmarks_px": np.asarray(c.landmarks_px, np.float32),
        "landmarks_world": np.asarray(c.landmarks_world, np.float32),
    }
    if c.vertices is not None:
        arrays["vertices"] = np.asarray(c.vertices, np.float32)
        arrays["faces"] = np.asarray(c.faces, np.int64)
    if c.cuts:
        arrays["cuts"] = np.asarray(c.cuts, np.int64)
    if c.image_sizes is not None:
        arrays["image_sizes"] = np.asarray(c.image_sizes, np.int64)
    if c.K_exif is not None:
        arrays["K_exif"] = np.asarray(c.K_exif, bool)
    if c.shared_size:
        arrays["shared_size"] = np.array(True)
    if c.contact is not None:
        arrays["contact"] = np.asarray(c.contact, bool)
    if c.penetration_mm is not None:
        arrays["penetration_mm"] = np.asarray(c.penetration_mm, np.float32)
    if c.detector:
        arrays["detector"] = np.array(str(c.detector))
    if c.fit_device:
        arrays["fit_device"] = np.array(str(c.fit_device))
    if c.self_calibration:
        arrays["self_calibration"] = np.array(str(c.self_calibration))
    if c.model:
        arrays["model"] = np.array(str(c.model))
    tmp = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as exc:  # a folder that cannot be made, no permission, disk full, name too long, ...
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CaptureError(f"cannot write the clip file {path}: {exc.strerror or exc}") from None
    return path


# Arrays of the file: dtype kinds accepted on reading ("b" bool, "i"/"u" integers, "f" floats) and the dtype
# they are read as.
_NUMERIC = {
    "image_size": ("iu", np.int64), "frame_index": ("iu", np.int64), "time": ("iuf", np.float64),
    "K": ("iuf", np.float64), "valid": ("biu", bool), "detected": ("biu", bool),
    "confidence": ("iuf", np.float32), "betas": ("iuf", np.float32), "global_orient": ("iuf", np.float32),
    "hand_pose": ("iuf", np.float32), "transl": ("iuf", np.float32), "joints": ("iuf", np.float32),
    "landmarks_px": ("iuf", np.float32), "landmarks_world": ("iuf", np.float32), "vertices": ("iuf", np.float32),
    "faces": ("iu", np.int64), "cuts": ("iu", np.int64), "image_sizes": ("iu", np.int64), "K_exif": ("biu", bool),
    "contact": ("biu", bool), "penetration_mm": ("iuf", np.float32),
}
_FINITE = ("time", "K", "betas", "global_orient", "hand_pose", "transl", "joints", "vertices", "penetration_mm")
_REQUIRED = ("source", "fps", "image_size", "frame_index", "time", "K", "K_guessed", "sides", "model_names",
             "model_paths", "valid", "detected", "confidence", "betas", "global_orient", "hand_pose", "transl",
             "joints", "landmarks_px", "landmarks_world")


def _scalar(a: np.ndarray, kinds: str):
    """The one value of a () or (1,) array whose dtype kind is in ``kinds``; None when it is not one."""
    if a.size != 1 or a.ndim > 1 or a.dtype.kind not in kinds:
        return None
    return a.reshape(()).item()


def _strings(a: np.ndarray) -> tuple | None:
    """A (N,) unicode array as a tuple of str; None when it is not one."""
    if a.ndim != 1 or a.dtype.kind != "U":
        return None
    return tuple(str(x) for x in a)


def load_clip(path: str | os.PathLike) -> ClipResult:
    """Read and validate a clip file. Raises CaptureError (naming the file) when it is not one: missing or
    unreadable file, not an .npz, another format or version, a missing key, or a key of the wrong dtype
    or shape; it never raises anything else for what a file holds."""
    path = Path(path)
    try:
        is_file = path.is_file()
    except (OSError, ValueError) as exc:  # a name the OS cannot look up (too long, embedded NUL)
        raise CaptureError(f"cannot open clip file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not is_file:
        raise CaptureError(f"clip file not found: {path}")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):  # a single .npy array
            raise CaptureError(f"{path.name} is not a clip file: it holds one array, not a Hand Capture .npz")
        with z:
            a = {k: np.asarray(z[k]) for k in z.files}
    except CaptureError:
        raise
    except Exception as exc:  # noqa: BLE001 - any read failure is the user's file
        raise CaptureError(f"{path.name} is not a readable clip file ({exc.__class__.__name__}: {exc})") from None
    if _scalar(a.get("format", np.array(0)), "U") != FORMAT:
        raise CaptureError(f"{path.name} is not a Hand Capture clip (no format '{FORMAT}')")
    version = _scalar(a.get("version", np.array(-1)), "iu")
    if version != VERSION:
        shown = version if version is not None else "(unreadable)"
        raise CaptureError(f"{path.name} has clip format version {shown}; this version reads {VERSION}: "
                           "update Hand Capture")
    missing = [k for k in _REQUIRED if k not in a]
    if missing:
        raise CaptureError(f"{path.name} is not a valid clip file: missing key{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(repr(k) for k in missing)}")
    problems = []
    source = _scalar(a["source"], "U")
    fps = _scalar(a["fps"], "iuf")
    k_guessed = _scalar(a["K_guessed"], "biu")
    shared = _scalar(a["shared_size"], "biu") if "shared_size" in a else False
    detector = _scalar(a["detector"], "U") if "detector" in a else ""
    fit_device = _scalar(a["fit_device"], "U") if "fit_device" in a else ""
    calibration = _scalar(a["self_calibration"], "U") if "self_calibration" in a else ""
    model = _scalar(a["model"], "U") if "model" in a else ""
    texts = {k: _strings(a[k]) for k in ("sides", "model_names", "model_paths")}
    if source is None:
        problems.append(f"source is a {a['source'].dtype} array of shape {a['source'].shape}, expected a string")
    if fps is None or not np.isfinite(fps) or fps <= 0:
        shown = repr(a["fps"].tolist()) if a["fps"].size < 5 else f"shape {a['fps'].shape}"
        problems.append(f"fps must be one positive number; got {shown}")
    problems += [f"{k} must be one {kind}; got a {a[k].dtype} array of shape {a[k].shape}"
                 for k, v, kind in (("K_guessed", k_guessed, "bool"), ("shared_size", shared, "bool"),
                                    ("detector", detector, "string"), ("fit_device", fit_device, "string"),
                                    ("self_calibration", calibration, "string"),
                                    ("model", model, "string"))
                 if v is None]
    problems += [f"{k} must be a list of strings; got a {a[k].dtype} array of shape {a[k].shape}"
                 for k, v in texts.items() if v is None]
    arrays = {}
    for key, (kinds, dtype) in _NUMERIC.items():
        if key not in a:
            continue
        if a[key].dtype.kind not in kinds:
            want = "bool" if dtype is bool else np.dtype(dtype)
            problems.append(f"{key} has dtype {a[key].dtype}, expected {want}")
        else:
            with np.errstate(over="ignore", invalid="ignore"):  # out of float32's range: inf, refused below
                arrays[key] = a[key].astype(dtype)
    if problems:
        raise CaptureError(f"{path.name} is not a valid clip file: " + "; ".join(problems))
    c = ClipResult(
        source=str(source), fps=float(fps), K_guessed=bool(k_guessed), sides=texts["sides"],
        model_names=texts["model_names"], model_paths=texts["model_paths"],
        image_size=arrays["image_size"], frame_index=arrays["frame_index"], time=arrays["time"], K=arrays["K"],
        valid=arrays["valid"], detected=arrays["detected"], confidence=arrays["confidence"], betas=arrays["betas"],
        global_orient=arrays["global_orient"], hand_pose=arrays["hand_pose"], transl=arrays["transl"],
        joints=arrays["joints"], landmarks_px=arrays["landmarks_px"], landmarks_world=arrays["landmarks_world"],
        vertices=arrays.get("vertices"), faces=arrays.get("faces"),
        cuts=tuple(int(x) for x in np.ravel(arrays["cuts"])) if "cuts" in arrays else (),
        image_sizes=arrays.get("image_sizes"), K_exif=arrays.get("K_exif"), shared_size=bool(shared),
        contact=arrays.get("contact"), penetration_mm=arrays.get("penetration_mm"), detector=str(detector),
        fit_device=str(fit_device), self_calibration=str(calibration), model=str(model),
    )
    check_clip(c, path.name)
    problems = []
    if (c.image_size <= 0).any():
        problems.append(f"image_size {c.image_size.tolist()} must be positive")
    if c.image_sizes is not None and (c.image_sizes <= 0).any():
        problems.append("image_sizes holds sizes that are not positive")
    if c.frame_index.size and c.frame_index.min() < 0:
        problems.append("frame_index holds negative frame numbers")
    bad = [k for k in _FINITE if getattr(c, k) is not None and not np.isfinite(getattr(c, k)).all()]
    if bad:  # what the add-on keys and draws; "pose arrays hold zeros" where a hand is not valid
        problems.append(f"{', '.join(bad)} hold{'s' if len(bad) == 1 else ''} non-finite values (nan or inf)")
    if problems:
        raise CaptureError(f"{path.name} is not a valid clip file: " + "; ".join(problems))
    return c
