"""Torch port of MediaPipe 0.10.21's hand networks and of its legacy Hands graph (backend "torch").

`TorchHands` (in `detector`) is the `Detector`; `net` builds the torch modules from the .tflite files
(`tflite` reads them) and caches the converted weights; `pipeline` is the graph logic around them;
`reference` runs MediaPipe's own interpreter for parity checks.
"""
from __future__ import annotations

__all__ = ["TorchHands"]


def __getattr__(name):
    if name == "TorchHands":
        from .detector import TorchHands

        return TorchHands
    raise AttributeError(name)
