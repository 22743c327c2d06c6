"""MediaPipe Hands backend (legacy ``mediapipe.solutions.hands`` API, models bundled in the wheel).

Handedness: the legacy API assumes a mirrored selfie image, so on ordinary (unmirrored) frames its
"Left" label is a RIGHT hand and "Right" a LEFT hand. We feed frames unmirrored and swap the labels,
so `HandDet.side` is the anatomical side in the picture as filmed. Checked on real data
(tests/test_detect.py): the left hand of `real_world_testset_dev` (MediaPipe says "Right" on ~99 % of
crops) comes out "left"; the InterHand right-only / left-only samples come out "right" / "left".

Tracking mode (``static=False``) runs the palm detector only when tracking is lost, so feed one
clip's frames in order. The legacy graph keeps its own timestamps; ``timestamp`` is not used.
Landmarks: normalised x, y times the frame's W, H (image-corner origin); z and the world landmarks
as MediaPipe gives them (see `HandDet`).
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile

import numpy as np

from ..errors import CaptureError
from .base import Detector, DetectorConfig, HandDet, as_bgr, with_square_crops

# MediaPipe's raw label -> side in the unmirrored frame (its labels assume a mirrored selfie).
SIDE_FROM_MP_LABEL = {"Left": "right", "Right": "left"}


@contextlib.contextmanager
def _native_stderr_captured():
    """Send fd 2 (C++ logs of MediaPipe/TFLite) to a temp file; replay it if the block raises."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreter)
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                tmp.seek(0)
                with contextlib.suppress(Exception):
                    sys.stderr.write(tmp.read().decode("utf-8", "replace"))


# Packages whose ``__init__`` imports far more than the hands solution needs: ``mediapipe`` (every solution and
# ``mediapipe.tasks``) and ``mediapipe.python.solutions`` (every solution and the drawing utilities, which pull in
# matplotlib: ~1 s of a capture's start on the 2-core machine, BENCHMARKS.md).
_AGGREGATE_PACKAGES = ("mediapipe", "mediapipe.python.solutions")


def _import_mediapipe():
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        if "mediapipe" in sys.modules:  # already imported (in full, or by an earlier detector)
            from mediapipe.python.solutions import hands
        else:
            hands = _hands_module_alone()
    except ImportError as exc:
        raise CaptureError(f"the MediaPipe hand detector is not installed ({exc}); "
                           f"install mediapipe 0.10.x into the capture runtime") from None
    return hands


def _hands_module_alone():
    """``mediapipe.python.solutions.hands`` with only the modules it imports itself.

    Its parent packages are created from their own specs (the real package modules, with their real
    ``__path__``), but their ``__init__`` code -- which imports every other solution, the drawing utilities
    and matplotlib -- runs only when something first reads an attribute they do not have yet or lists them
    (PEP 562 ``__getattr__`` / ``__dir__``): then it runs in full, in the same module object, and the package is
    what a plain ``import mediapipe`` gives (tests/test_capture_parallel.py compares the two).
    """
    import importlib
    import importlib.util

    for name in _AGGREGATE_PACKAGES:
        parent, _, child = name.rpartition(".")
        if parent:
            importlib.import_module(parent)  # a plain package between the two (mediapipe.python) runs as usual
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            raise ImportError(f"No module named {name!r}")
        module = importlib.util.module_from_spec(spec)
        module.__getattr__ = module.__dir__ = _complete_on_first_use(module, spec)
        sys.modules[name] = module
        if parent:
            setattr(sys.modules[parent], child, module)  # as the import system binds a loaded submodule
    return importlib.import_module("mediapipe.python.solutions.hands")


def _complete_on_first_use(module, spec):
    running = []

    def complete(attr: str | None = None):
        """``__getattr__(attr)`` and ``__dir__()`` of the package until its __init__ has run."""
        if running:  # a name the __init__ itself looks up before binding it
            raise AttributeError(f"module {module.__name__!r} has no attribute {attr!r}")
        running.append(True)
        del module.__getattr__, module.__dir__
        spec.loader.exec_module(module)  # the package's own __init__, in full, in this module object
        return dir(module) if attr is None else getattr(module, attr)

    return complete


class MediaPipeHands(Detector):
    """`Detector` on ``mediapipe.solutions.hands.Hands``; ``static`` picks image or tracking mode."""

    def __init__(self, config: DetectorConfig):
        super().__init__(config)
        self._cv2 = __import__("cv2")
        hands = _import_mediapipe()
        with _native_stderr_captured():
            self._hands = hands.Hands(
                static_image_mode=bool(config.static),
                max_num_hands=int(config.max_hands),
                model_complexity=int(config.model_complexity),
                min_detection_confidence=float(config.min_detection_confidence),
                min_tracking_confidence=float(config.min_tracking_confidence),
            )
            # the graph opens its models on worker threads; one blank frame waits for that (no hand found,
            # so tracking state stays empty) and keeps their start-up logs inside this capture
            self._hands.process(np.zeros((64, 64, 3), np.uint8))
        self._first = True

    def detect(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> list[HandDet]:
        if self._hands is None:
            raise RuntimeError("MediaPipeHands.detect called after close()")
        bgr = as_bgr(frame_bgr)
        return with_square_crops(bgr, self._process(bgr), self.config, self._process)

    def _process(self, bgr: np.ndarray) -> list[HandDet]:
        """One MediaPipe pass over a BGR image: its hands, in its own pixels."""
        h, w = bgr.shape[:2]
        rgb = self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False  # lets MediaPipe wrap the buffer without a copy
        if self._first:  # graph start-up logs (TFLite delegate, feedback tensors) go to fd 2 once
            with _native_stderr_captured():
                result = self._hands.process(rgb)
            self._first = False
        else:
            result = self._hands.process(rgb)
        if not result.multi_hand_landmarks:
            return []
        out = []
        for lms, world, handed in zip(result.multi_hand_landmarks, result.multi_hand_world_landmarks,
                                      result.multi_handedness):
            xyz = np.array([(p.x, p.y, p.z) for p in lms.landmark], dtype=np.float32)  # (21, 3) normalised
            cls = handed.classification[0]
            out.append(HandDet(
                side=SIDE_FROM_MP_LABEL[cls.label],
                score=float(cls.score),
                landmarks_px=xyz[:, :2] * np.array([w, h], np.float32),
                landmarks_z=np.ascontiguousarray(xyz[:, 2]),
                world=np.array([(p.x, p.y, p.z) for p in world.landmark], dtype=np.float32),
            ))
        return out

    def close(self) -> None:
        if self._hands is not None:
            self._hands.close()
            self._hands = None
