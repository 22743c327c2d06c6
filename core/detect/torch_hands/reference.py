"""MediaPipe's own TFLite interpreter on the hand networks: the reference for parity tests and benchmarks.

`ReferenceNet("palm" | "landmark")` runs a tiny MediaPipe graph, ImageToTensor -> InferenceCalculator
(XNNPACK, as the legacy Hands graph runs it) -> one float list per output tensor, on an RGB image of the
network's exact input size (so ImageToTensor's warp is the identity and the input tensor is rgb / 255).
Needs the ``mediapipe`` package (0.10.21); never used by the capture path.
"""
from __future__ import annotations

import os

import numpy as np

from ..mp_hands import _native_stderr_captured
from .net import MODELS

_SIZES = {"palm": (192, 2), "landmark": (224, 4)}


def _graph_config(name: str) -> str:
    size, n_out = _SIZES[name]
    model = "mediapipe/" + MODELS[name]
    outs = "\n".join(f'output_stream: "f{i}"' for i in range(n_out))
    ranges = " ".join(f"ranges {{ begin: {i} end: {i + 1} }}" for i in range(n_out))
    split_out = " ".join(f'output_stream: "t{i}"' for i in range(n_out))
    floats = "\n".join(f'node {{ calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:t{i}" '
                       f'output_stream: "FLOATS:f{i}" }}' for i in range(n_out))
    return f'''
input_stream: "image"
{outs}
node {{ calculator: "ImageToTensorCalculator" input_stream: "IMAGE:image" output_stream: "TENSORS:tensors"
  options {{ [mediapipe.ImageToTensorCalculatorOptions.ext] {{ output_tensor_width: {size}
    output_tensor_height: {size} keep_aspect_ratio: true output_tensor_float_range {{ min: 0 max: 1 }}
    border_mode: BORDER_ZERO }} }} }}
node {{ calculator: "InferenceCalculator" input_stream: "TENSORS:tensors" output_stream: "TENSORS:out"
  options {{ [mediapipe.InferenceCalculatorOptions.ext] {{ model_path: "{model}" delegate {{ xnnpack {{}} }} }} }} }}
node {{ calculator: "SplitTensorVectorCalculator" input_stream: "out" {split_out}
  options {{ [mediapipe.SplitVectorCalculatorOptions.ext] {{ {ranges} }} }} }}
{floats}
'''


class ReferenceNet:
    """MediaPipe's TFLite interpreter on one hand network; ``run(rgb)`` -> list of float32 arrays."""

    def __init__(self, name: str):
        os.environ.setdefault("GLOG_minloglevel", "2")
        import mediapipe
        from mediapipe.python import packet_creator, packet_getter
        from mediapipe.python._framework_bindings import calculator_graph, image_frame, resource_util

        self.size, self.n_out = _SIZES[name]
        self._creator, self._format = packet_creator, image_frame.ImageFormat.SRGB
        resource_util.set_resource_dir(os.path.dirname(os.path.dirname(mediapipe.__file__)))
        self._graph = calculator_graph.CalculatorGraph(graph_config=_graph_config(name))
        self._out: dict[int, np.ndarray] = {}
        for i in range(self.n_out):
            self._graph.observe_output_stream(
                f"f{i}", lambda _s, p, i=i: self._out.__setitem__(i, np.array(packet_getter.get_float_list(p),
                                                                              np.float32)))
        self._t = 0
        with _native_stderr_captured():
            self._graph.start_run()

    def run(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Raw outputs (flattened) of the network on ``rgb``, (size, size, 3) uint8."""
        if rgb.shape != (self.size, self.size, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"reference input must be ({self.size}, {self.size}, 3) uint8; got {rgb.shape} {rgb.dtype}")
        self._out.clear()
        packet = self._creator.create_image_frame(image_format=self._format, data=np.ascontiguousarray(rgb))
        with _native_stderr_captured():
            self._graph.add_packet_to_input_stream("image", packet.at(self._t))
            self._graph.wait_until_idle()
        self._t += 1
        return [self._out[i] for i in range(self.n_out)]

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None


class ReferenceTracker:
    """MediaPipe's legacy Hands graph itself (``hand_landmark_tracking_cpu``, as ``mediapipe.solutions.hands``
    runs it) with its ROI streams as outputs, for per-frame parity of the tracking logic: ``process(rgb)`` ->
    dict of "landmarks" (list of (21, 3) normalised), "palm_rects" (``hand_rects_from_palm_detections``: the
    ROIs of this frame's palm detections; empty where the palm detector did not run) and "next_rects"
    (``hand_rects_from_landmarks``: the ROIs this frame's landmarks give the next frame), rects as
    float32 (cx, cy, w, h, rotation), normalised. The ROIs a frame's landmarks came from are
    `pipeline.associate` (palm_rects, the previous frame's next_rects)."""

    def __init__(self, max_hands: int = 2, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5):
        os.environ.setdefault("GLOG_minloglevel", "2")
        from mediapipe.python.solution_base import SolutionBase

        with _native_stderr_captured():
            self._sb = SolutionBase(
                binary_graph_path="mediapipe/modules/hand_landmark/hand_landmark_tracking_cpu.binarypb",
                side_inputs={"model_complexity": 1, "num_hands": int(max_hands), "use_prev_landmarks": True},
                calculator_params={
                    "palmdetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": float(min_detection_confidence),
                    "handlandmarkcpu__ThresholdingCalculator.threshold": float(min_tracking_confidence)},
                outputs=["multi_hand_landmarks", "hand_rects_from_palm_detections", "hand_rects_from_landmarks"])
        self._first = True

    @staticmethod
    def _rects(lst) -> list[np.ndarray]:
        return [np.array([r.x_center, r.y_center, r.width, r.height, r.rotation], np.float32) for r in (lst or [])]

    def process(self, rgb: np.ndarray) -> dict:
        if self._first:
            with _native_stderr_captured():
                res = self._sb.process(rgb)
            self._first = False
        else:
            res = self._sb.process(rgb)
        return {"landmarks": [np.array([(p.x, p.y, p.z) for p in lm.landmark], np.float32)
                              for lm in (res.multi_hand_landmarks or [])],
                "palm_rects": self._rects(res.hand_rects_from_palm_detections),
                "next_rects": self._rects(res.hand_rects_from_landmarks)}

    def close(self) -> None:
        if self._sb is not None:
            self._sb.close()
            self._sb = None
