"""Hand keypoint detection backends behind one interface (`Detector`), chosen by name.

``create_detector("mediapipe", static=False)`` returns a context-managed `Detector`; `detect_frames`
runs one over a `core.io.video.VideoSource`, yielding one `Detections` per frame. Result types and
conventions (handedness in the unmirrored picture, pixel origin) are in `base`.

Backends: "mediapipe" (MediaPipe's legacy Hands graph as its Python API runs it, `mp_hands`), "hybrid"
(MediaPipe's palm and landmark subgraphs in the project's port of that graph with a palm schedule, `hybrid`:
the CPU default), "torch" (the torch ports of both networks in the same port of the graph, `torch_hands`: the GPU
default); the graph logic the last two share is `schedule`.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Iterable, Iterator

import numpy as np

from ..errors import CaptureError
from .base import SIDES, Detections, Detector, DetectorConfig, HandDet, is_device_name, make_config

__all__ = ["SIDES", "BACKENDS", "CHOICES", "resolve_backend", "Detections", "Detector", "DetectorConfig", "HandDet",
           "make_config", "create_detector", "detect_frames", "check_device", "decode_ahead", "on_a_gpu",
           "torch_device"]

# backend name -> (module in this package, class); imported only when chosen
BACKENDS = {"mediapipe": ("mp_hands", "MediaPipeHands"), "hybrid": ("hybrid", "HybridHands"),
            "torch": ("torch_hands.detector", "TorchHands")}
CHOICES = ("auto", *BACKENDS)


def resolve_backend(name: str, device: str = "auto") -> str:
    """The backend that "auto" stands for: "torch" where a GPU is used (``device`` cuda, or auto with a GPU
    torch can see), else "hybrid" (MediaPipe's own networks with the palm schedule: on the CPU faster than
    MediaPipe's legacy graph with one hand in view and at par with two, BENCHMARKS.md); other names unchanged."""
    if name != "auto":
        return name
    return "torch" if on_a_gpu(device) else "hybrid"


def on_a_gpu(device: str) -> bool:
    """Whether the torch detector's ``--device`` option puts it on a GPU: "cuda..." yes, "cpu" no, "auto" where
    torch sees a GPU (a CPU-only torch build is recognised without importing torch)."""
    if device == "cpu":
        return False
    if device.startswith("cuda"):
        return True
    if not _torch_built_for_a_gpu():  # a CPU-only torch sees no GPU: no need to import it (~2 s) to ask
        return False
    import torch

    return bool(torch.cuda.is_available())


def check_device(device: str) -> None:
    """Refuse a ``--device`` that is not a device name (`base.is_device_name`) or names a GPU torch cannot use here,
    in one line (before any work; without this a CPU-only torch fails deep in the detector or the fit with an
    assertion). "auto" and "cpu" always pass.

    Raises:
        CaptureError: not a device name; "cuda" without a GPU torch can use, or "cuda:N" past the GPUs it sees.
    """
    if not is_device_name(device):
        raise CaptureError(f"--device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}")
    if not device.startswith("cuda"):
        return
    n = 0
    if _torch_built_for_a_gpu():
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        raise CaptureError(f"--device {device}: torch sees no GPU on this machine (a CPU-only build or no driver); "
                           "use --device auto or cpu")
    index = device.partition(":")[2]
    if index and int(index) >= n:
        raise CaptureError(f"--device {device}: torch sees {n} GPU{'s' if n > 1 else ''} (cuda:0"
                           f"{f' to cuda:{n - 1}' if n > 1 else ''})")


def decode_ahead(backend: str, device: str) -> int:
    """Frames to decode ahead of the detector (`core.io.video.read_ahead`): `READ_AHEAD` for the torch detector on
    a GPU, where decoding is most of a frame's CPU work; 0 on the CPU, where the detector's graph already keeps both
    cores busy (no gain measured, BENCHMARKS.md)."""
    from ..io.video import READ_AHEAD

    return READ_AHEAD if backend == "torch" and on_a_gpu(device) else 0


def torch_device(device: str):
    """The torch device ``device`` names ("auto": the GPU where torch sees one, else the CPU): where the torch
    detector and the fit (VAE, IK, refinement, limits, penetration fix, smoothing) run. Imports torch."""
    import torch

    if device == "auto":
        return torch.device("cuda" if on_a_gpu("auto") else "cpu")
    return torch.device(device)


def _torch_built_for_a_gpu() -> bool:
    """False where torch is missing or is a CPU-only build (its ``torch/version.py`` names no CUDA or ROCm
    version), read without importing torch; True otherwise (then only torch itself can tell)."""
    import importlib.util
    import re
    from pathlib import Path

    try:
        spec = importlib.util.find_spec("torch")
        if spec is None or not spec.submodule_search_locations:
            return False
        text = (Path(list(spec.submodule_search_locations)[0]) / "version.py").read_text()
    except (OSError, ValueError, ImportError):
        return True
    found = {m.group(1): m.group(2) for m in re.finditer(r"^(cuda|hip)\b[^=\n]*=\s*(.+?)\s*$", text, re.M)}
    if set(found) != {"cuda", "hip"}:
        return True  # a layout this check does not know: ask torch
    return any(v != "None" for v in found.values())


def create_detector(name: str = "mediapipe", *, config: DetectorConfig | None = None, **options) -> Detector:
    """A hand detector backend.

    Args:
        name: backend name (a key of ``BACKENDS``, or "auto": `resolve_backend`); ignored when ``config``
            is given.
        config: a full `DetectorConfig`; ``options`` then override its fields.
        **options: `DetectorConfig` fields (static, max_hands, min_detection_confidence,
            min_tracking_confidence, model_complexity); an unknown key is a CaptureError.
    Returns:
        Detector (use ``with create_detector(...) as det:``).
    Raises:
        CaptureError: unknown backend or option, invalid value, backend not installed.
    """
    base = dataclasses.asdict(config) if config is not None else {"name": name}
    cfg = make_config(**{**base, **options})
    if cfg.name == "auto":
        cfg = dataclasses.replace(cfg, name=resolve_backend("auto", cfg.device))
    if cfg.name not in BACKENDS:
        raise CaptureError(f"unknown hand detector {cfg.name!r} (available: {', '.join(CHOICES)})")
    module, cls = BACKENDS[cfg.name]
    return getattr(importlib.import_module(f".{module}", __name__), cls)(cfg)


def detect_frames(frames: Iterable[tuple[int, np.ndarray]], detector: Detector, fps: float) -> Iterator[Detections]:
    """Run ``detector`` on ``(frame_index, frame_bgr)`` pairs (e.g. a `VideoSource`), one `Detections` each.

    Args:
        frames: iterable of (int, (H, W, 3) uint8 BGR), frame indices increasing.
        detector: an open `Detector` (tracking mode for a video, static for an image folder).
        fps: frames per second of the source; ``timestamp = frame_index / fps``.
    """
    for index, frame in frames:
        t = float(index) / float(fps)
        hands = detector.detect(frame, t)
        yield Detections(frame_index=int(index), timestamp=t, image_size=(int(frame.shape[1]), int(frame.shape[0])),
                         hands=tuple(hands))
