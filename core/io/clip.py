"""The clip file (`docs/clip_format.md`): the one place that knows its keys.

`ClipResult` holds a captured clip as numpy arrays; `save_clip` / `load_clip` write and read it
(`.npz`, no pickles) and `load_clip` validates every key, shape and the version.
"""
from __future__ import annotations

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
    sides: tuple  # (H,) "right"/"left"
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

    @property
    def n_frames(self) -> int:
        return int(self.frame_index.shape[0])

    @property
    def n_hands(self) -> int:
        return len(self.sides)

    def model_path(self, h: int) -> str | None:
        """Model file of hand slot ``h`` (None for the bundled open model)."""
        return self.model_paths[h] or None

    def hand(self, side: str) -> int:
        """Slot index of ``side``; raises CaptureError when the clip has no such hand."""
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
    """Raise CaptureError listing every key whose shape breaks the format."""
    problems = []
    for key, shape in _expected_shapes(c).items():
        got = np.shape(getattr(c, key))
        if got != shape:
            problems.append(f"{key} has shape {got}, expected {shape}")
    if c.betas.ndim != 2 or c.betas.shape[0] != c.n_hands:
        problems.append(f"betas has shape {c.betas.shape}, expected ({c.n_hands}, B)")
    if len(c.model_names) != c.n_hands or len(c.model_paths) != c.n_hands:
        problems.append(f"model_names/model_paths need one entry per hand ({c.n_hands})")
    if any(s not in ("right", "left") for s in c.sides) or len(set(c.sides)) != len(c.sides):
        problems.append(f"sides {list(c.sides)} must be distinct 'right'/'left'")
    if c.vertices is not None:
        v = c.vertices.shape
        if len(v) != 4 or v[:2] != (c.n_hands, c.n_frames) or v[3] != 3 or c.faces is None:
            problems.append(f"vertices has shape {v}, expected ({c.n_hands}, {c.n_frames}, V, 3) with faces")
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return path


def load_clip(path: str | os.PathLike) -> ClipResult:
    """Read and validate a clip file. Raises CaptureError (naming the file) when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CaptureError(f"clip file not found: {path}")
    try:
        z = np.load(path, allow_pickle=False)
        a = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any read failure is the user's file
        raise CaptureError(f"{path.name} is not a readable clip file ({exc.__class__.__name__}: {exc})") from None
    if str(a.get("format", "")) != FORMAT:
        raise CaptureError(f"{path.name} is not a Hand Capture clip (no format '{FORMAT}')")
    version = int(a.get("version", -1))
    if version != VERSION:
        raise CaptureError(f"{path.name} has clip format version {version}; this version reads {VERSION}: update Hand Capture")
    try:
        c = ClipResult(
            source=str(a["source"]),
            fps=float(a["fps"]),
            image_size=a["image_size"],
            frame_index=a["frame_index"],
            time=a["time"],
            K=a["K"],
            K_guessed=bool(a["K_guessed"]),
            sides=tuple(str(s) for s in a["sides"]),
            model_names=tuple(str(x) for x in a["model_names"]),
            model_paths=tuple(str(x) for x in a["model_paths"]),
            valid=a["valid"],
            detected=a["detected"],
            confidence=a["confidence"],
            betas=a["betas"],
            global_orient=a["global_orient"],
            hand_pose=a["hand_pose"],
            transl=a["transl"],
            joints=a["joints"],
            landmarks_px=a["landmarks_px"],
            landmarks_world=a["landmarks_world"],
            vertices=a.get("vertices"),
            faces=a.get("faces"),
        )
    except KeyError as exc:
        raise CaptureError(f"{path.name} is not a valid clip file: missing key {exc}") from None
    check_clip(c, path.name)
    return c
