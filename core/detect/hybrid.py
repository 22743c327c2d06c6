"""`HybridHands` (backend "hybrid"): MediaPipe's own palm and landmark subgraphs, driven by the project's port of the
legacy tracking graph with its palm schedule (`core.detect.schedule`).

MediaPipe's legacy Hands graph (``hand_landmark_tracking_cpu``) is two subgraphs, ``PalmDetectionCpu`` (the palm
network with its letterbox, anchors, weighted non-max suppression) and ``HandLandmarkCpu`` (the ROI crop, the
landmark network, the presence gate, the projection back into the image, handedness), joined by a few
calculators that turn palms and landmarks into ROIs and keep tracked hands. The wheel registers both subgraphs,
so this backend runs each as its own small graph (XNNPACK, as the legacy graph runs them) and does the joining in
Python with the same functions the torch port uses (`core.detect.torch_hands.pipeline`: checked step by step
against MediaPipe's own ROI streams, BENCHMARKS.md "Torch port"). What differs from MediaPipe's graph is only the
schedule: the palm network runs on every frame while no hand is tracked (and during a grace after the start and
after a loss), then every 5th frame while fewer hands than asked are tracked; MediaPipe runs it on every such frame,
which on a one-hand clip with two hands asked is every frame, at about the landmark network's cost.

No torch: a segment worker with this backend imports MediaPipe's hands module, OpenCV and numpy only.
Conventions as `core.detect.mp_hands` (sides swapped from MediaPipe's mirrored-selfie labels, landmarks in image
pixels with the corner origin, z and world landmarks as MediaPipe gives them).
"""
from __future__ import annotations

import numpy as np

from .base import DetectorConfig
from .mp_hands import _import_mediapipe, _native_stderr_captured
from .schedule import ScheduledHands
from .torch_hands import pipeline as P

PALM_GRAPH = """
input_stream: "image"
output_stream: "detections"
node {
  calculator: "PalmDetectionCpu"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_stream: "IMAGE:image"
  output_stream: "DETECTIONS:detections"
}
"""

LANDMARK_GRAPH = """
input_stream: "image"
input_stream: "roi"
output_stream: "landmarks"
output_stream: "world"
output_stream: "handedness"
node {
  calculator: "HandLandmarkCpu"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  output_stream: "LANDMARKS:landmarks"
  output_stream: "WORLD_LANDMARKS:world"
  output_stream: "HANDEDNESS:handedness"
}
"""


class _Graph:
    """One MediaPipe graph run packet by packet: ``run(inputs)`` adds each input's packets (a list of packets per
    stream, timestamps increasing across calls), waits until the graph is idle and returns the non-empty output
    packets per stream in timestamp order."""

    def __init__(self, text: str, params: dict, outputs: list[str], model_complexity: int):
        import os

        import mediapipe
        from google.protobuf import text_format
        from mediapipe.framework import calculator_pb2
        from mediapipe.python import packet_creator
        from mediapipe.python._framework_bindings import calculator_graph, resource_util, validated_graph_config
        from mediapipe.python.solution_base import SolutionBase

        # the models are resources under the package's root, as `SolutionBase` sets it
        resource_util.set_resource_dir(os.path.dirname(os.path.dirname(os.path.abspath(mediapipe.__file__))))
        validated = validated_graph_config.ValidatedGraphConfig()
        validated.initialize(graph_config=text_format.Parse(text, calculator_pb2.CalculatorGraphConfig()))
        config = calculator_pb2.CalculatorGraphConfig()
        config.ParseFromString(validated.binary_config)  # the subgraphs expanded: their nodes can be set
        SolutionBase._modify_calculator_options(None, config, params)  # uses no state of the instance
        self.graph = calculator_graph.CalculatorGraph(graph_config=config)
        self.outputs: dict[str, list] = {name: [] for name in outputs}
        for name in outputs:
            self.graph.observe_output_stream(name, lambda stream, packet: self.outputs[stream].append(packet))
        self.graph.start_run({"model_complexity": packet_creator.create_int(int(model_complexity))})
        self.ts = 0

    def run(self, inputs: dict[str, list]) -> dict[str, list]:
        for name in self.outputs:
            self.outputs[name] = []
        for stream, packets in inputs.items():
            for p in packets:
                self.graph.add_packet_to_input_stream(stream, p)
        self.graph.wait_until_idle()
        return self.outputs

    def stamps(self, n: int) -> list[int]:
        """``n`` new timestamps."""
        self.ts += n
        return list(range(self.ts - n + 1, self.ts + 1))

    def close(self) -> None:
        self.graph.close()


class HybridHands(ScheduledHands):
    """`Detector` on MediaPipe's palm and landmark subgraphs with the palm schedule of `core.detect.schedule`."""

    def __init__(self, config: DetectorConfig, palm_every: int | None = None, palm_grace: int | None = None):
        super().__init__(config, palm_every, palm_grace)
        import cv2

        self._cv2 = cv2
        _import_mediapipe()  # the hands module alone, MediaPipe's log levels set before its C++ loads
        from mediapipe.framework.formats import rect_pb2
        from mediapipe.python import packet_creator, packet_getter
        from mediapipe.python._framework_bindings import image_frame

        self._rect, self._create, self._get = rect_pb2.NormalizedRect, packet_creator, packet_getter
        self._srgb = image_frame.ImageFormat.SRGB
        mc = int(config.model_complexity)
        with _native_stderr_captured():  # the delegates' start-up lines
            self._palm = _Graph(PALM_GRAPH, {"palmdetectioncpu__TensorsToDetectionsCalculator.min_score_thresh":
                                             float(config.min_detection_confidence)}, ["detections"], mc)
            self._landmark = _Graph(LANDMARK_GRAPH, {"handlandmarkcpu__ThresholdingCalculator.threshold":
                                                     float(config.min_tracking_confidence)},
                                    ["landmarks", "world", "handedness"], mc)
            # both graphs open their models on their first packets: a blank frame (no hand) keeps the start-up
            # logs here (and the landmark projection's one-time note on ROIs given without image dimensions,
            # which MediaPipe's own graph logs the same way)
            blank = self._frame(np.zeros((64, 64, 3), np.uint8))
            self.palms(blank, blank)
            self.hands_in(blank, [np.array([0.5, 0.5, 1.0, 1.0, 0.0], np.float32)], blank)

    def _frame(self, bgr: np.ndarray) -> np.ndarray:
        rgb = self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False  # lets MediaPipe wrap the buffer without a copy
        return rgb

    def palms(self, bgr: np.ndarray, frame=None) -> list[P.PalmDetection]:
        rgb = self._frame(bgr) if frame is None else frame
        (ts,) = self._palm.stamps(1)
        got = self._palm.run({"image": [self._create.create_image_frame(data=rgb, image_format=self._srgb).at(ts)]})
        out = []
        for packet in got["detections"][:1]:
            for d in self._get.get_proto_list(packet):
                b = d.location_data.relative_bounding_box
                kp = np.array([(k.x, k.y) for k in d.location_data.relative_keypoints], np.float32)
                out.append(P.PalmDetection(np.array([b.xmin, b.ymin, b.width, b.height], np.float32), kp,
                                           float(d.score[0])))
        return out

    def hands_in(self, bgr: np.ndarray, rects: list[np.ndarray], frame=None) -> list[P.HandResult]:
        """The landmark subgraph on every ROI (one timestamp each, all added before one wait, so that the graph
        may overlap them); a ROI whose hand is not present (MediaPipe's own gate at ``min_tracking_confidence``)
        gives no result."""
        if not rects:
            return []
        rgb = self._frame(bgr) if frame is None else frame
        stamps = self._landmark.stamps(len(rects))
        image = self._create.create_image_frame(data=rgb, image_format=self._srgb)
        rois = [self._create.create_proto(self._rect(x_center=float(r[0]), y_center=float(r[1]), width=float(r[2]),
                                                     height=float(r[3]), rotation=float(r[4]))) for r in rects]
        got = self._landmark.run({"image": [image.at(t) for t in stamps],
                                  "roi": [p.at(t) for p, t in zip(rois, stamps)]})
        by_stamp = [{p.timestamp.value: p for p in got[name]} for name in ("landmarks", "world", "handedness")]
        out = []
        for rect, t in zip(rects, stamps):
            if not all(t in b for b in by_stamp):
                continue
            lm, world, handed = (self._get.get_proto(b[t]) for b in by_stamp)
            lm = np.array([(p.x, p.y, p.z) for p in lm.landmark], np.float32)
            world = np.array([(p.x, p.y, p.z) for p in world.landmark], np.float32)
            cls = handed.classification[0]
            p_left = float(cls.score) if cls.label == "Left" else 1.0 - float(cls.score)
            out.append(P.HandResult(lm, world, 1.0, p_left, np.asarray(rect, np.float32)))
        return out

    def close(self) -> None:
        super().close()
        for g in ("_palm", "_landmark"):
            graph = getattr(self, g, None)
            if graph is not None:
                graph.close()
                setattr(self, g, None)
