"""MediaPipe's hand networks as torch modules, built from the graph in their .tflite files.

`load_net("palm")` / `load_net("landmark")` return a `TFLiteNet` (eval mode, fp32): the operators
of the .tflite graph run in order on NCHW-indexed activations (stored channels-last), batched (TFLite's graph is batch 1; any batch
size works here). TFLite's conventions are reproduced exactly:

* layout: activations NHWC in TFLite, NCHW here (filters permuted once at conversion); a RESHAPE of a
  4-D activation goes back to NHWC order first, so flattened outputs come out in TFLite's order;
* padding SAME: total = max((out - 1) * stride + dilated kernel - in, 0), ``total // 2`` before and the
  rest after (asymmetric for stride 2 on even sizes), as TFLite computes it; VALID: none;
* DEQUANTIZE of fp16 weights: done once at conversion (weights fp16 -> fp32);
* RESIZE_BILINEAR with half_pixel_centers (and align_corners) as flagged in the file;
* fused activations (RELU, RELU6, ...), PRELU with per-channel slopes, channel PAD, MEAN, FULLY_CONNECTED.

Where the models come from (`model_source`): the installed ``mediapipe`` package's
``modules/palm_detection/palm_detection_full.tflite`` and ``modules/hand_landmark/hand_landmark_full.tflite``
(found without importing mediapipe), else the 0.10.21 wheel file named by ``$HANDCAP_MEDIAPIPE_WHEEL``
(read as a zip, so any Python works). The converted graph (op list + fp32 weights) is cached at first use
in ``cache_root()/torch_hands/<model>-<sha256 of the .tflite, 16 hex>.pt`` and never committed or shipped.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import CaptureError
from ...hand.load import cache_root
from .tflite import read_model

CONVERTER_VERSION = 1
ENV_WHEEL = "HANDCAP_MEDIAPIPE_WHEEL"
MODELS = {"palm": "modules/palm_detection/palm_detection_full.tflite",
          "landmark": "modules/hand_landmark/hand_landmark_full.tflite"}
# SHA-256 of the files in mediapipe 0.10.21 (the version whose graph logic `pipeline` reproduces)
KNOWN_SHA256 = {"palm": "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
                "landmark": "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3"}


def model_source(name: str) -> tuple[str, bytes]:
    """(where, bytes) of the .tflite file of model ``name`` ("palm" or "landmark")."""
    rel = MODELS[name]
    spec = importlib.util.find_spec("mediapipe")
    if spec is not None and spec.submodule_search_locations:
        for base in spec.submodule_search_locations:
            path = Path(base) / rel
            if path.is_file():
                return str(path), path.read_bytes()
    wheel = os.environ.get(ENV_WHEEL, "").strip()
    if wheel:
        try:
            with zipfile.ZipFile(wheel) as z:
                return f"{wheel}:mediapipe/{rel}", z.read(f"mediapipe/{rel}")
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise CaptureError(f"cannot read mediapipe/{rel} from {wheel} (${ENV_WHEEL}): {exc}") from None
    raise CaptureError(f"the torch hand detector needs MediaPipe 0.10.21's {Path(rel).name}: install "
                       f"mediapipe==0.10.21, or point ${ENV_WHEEL} at its wheel file")


def _same_pad(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _activation(x: torch.Tensor, act: str | None) -> torch.Tensor:
    """A fused activation, in place (``x`` is always the fresh output of the operator it is fused to)."""
    if act is None:
        return x
    if act == "RELU":
        return x.relu_()
    if act == "RELU6":
        return x.clamp_(0.0, 6.0)
    if act == "RELU_N1_TO_1":
        return x.clamp_(-1.0, 1.0)
    if act == "TANH":
        return x.tanh_()
    raise ValueError(f"fused activation {act} is not supported")


def convert(data: bytes) -> dict:
    """A .tflite graph as {"steps": [...], "weights": {key: fp32 tensor}, "inputs", "outputs"}: plain
    python values and tensors, so that ``torch.load(weights_only=True)`` reads it back."""
    g = read_model(data)
    const = {t.index: t.data.astype(np.float32) if t.data.dtype == np.float16 else t.data
             for t in g.tensors if t.data is not None}
    weights: dict[str, torch.Tensor] = {}
    steps = []
    rank4 = {i for i in g.inputs if len(g.tensors[i].shape) == 4}

    def w(key: str, array: np.ndarray) -> str:
        weights[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        return key

    for n, op in enumerate(g.ops):
        ins, outs, o = op.inputs, op.outputs, dict(op.options)
        out_shape = g.tensors[outs[0]].shape
        if op.kind == "DEQUANTIZE":
            if ins[0] not in const:
                raise ValueError("DEQUANTIZE of an activation is not supported")
            const[outs[0]] = const[ins[0]].astype(np.float32)
            continue
        step = {"kind": op.kind, "in": [int(i) for i in ins if i >= 0 and i not in const], "out": int(outs[0])}
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            filt = const[ins[1]]
            if op.kind == "CONV_2D":
                step["weight"] = w(f"w{n}", filt.transpose(0, 3, 1, 2))
                step["groups"] = 1
            else:
                step["weight"] = w(f"w{n}", filt.transpose(3, 0, 1, 2))
                step["groups"] = int(g.tensors[ins[0]].shape[3])
            step["bias"] = w(f"b{n}", const[ins[2]]) if len(ins) > 2 and ins[2] >= 0 else None
            h, wd = g.tensors[ins[0]].shape[1:3]
            kh, kw = filt.shape[1:3]
            if o["padding"] == "SAME":
                pt, pb = _same_pad(h, kh, o["stride_h"], o["dilation_h"])
                pl, pr = _same_pad(wd, kw, o["stride_w"], o["dilation_w"])
            else:
                pt = pb = pl = pr = 0
            step.update(stride=[o["stride_h"], o["stride_w"]], dilation=[o["dilation_h"], o["dilation_w"]],
                        pad=[pl, pr, pt, pb], activation=o["activation"])
        elif op.kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            h, wd = g.tensors[ins[0]].shape[1:3]
            if o["padding"] == "SAME":
                pt, pb = _same_pad(h, o["filter_h"], o["stride_h"], 1)
                pl, pr = _same_pad(wd, o["filter_w"], o["stride_w"], 1)
            else:
                pt = pb = pl = pr = 0
            step.update(kernel=[o["filter_h"], o["filter_w"]], stride=[o["stride_h"], o["stride_w"]],
                        pad=[pl, pr, pt, pb], activation=o["activation"])
        elif op.kind == "PRELU":
            alpha = const[ins[1]]
            if alpha.size != alpha.shape[-1]:
                raise ValueError("PRELU with spatially varying slopes is not supported")
            step["alpha"] = w(f"a{n}", alpha.reshape(1, -1, 1, 1))
        elif op.kind in ("ADD", "MUL"):
            step["activation"] = o["activation"]
            for i in ins:
                if i in const:
                    step["const"] = w(f"c{n}", const[i])
        elif op.kind in ("PAD", "PADV2"):
            p = const[ins[1]].astype(int)
            if p[0].any():
                raise ValueError("PAD of the batch axis is not supported")
            # NHWC pads -> F.pad order for NCHW: (W before, W after, H before, H after, C before, C after)
            step["pad"] = [int(v) for v in (p[2, 0], p[2, 1], p[1, 0], p[1, 1], p[3, 0], p[3, 1])]
            step["value"] = float(const[ins[2]].reshape(())) if len(ins) > 2 and ins[2] in const else 0.0
        elif op.kind == "RESIZE_BILINEAR":
            step.update(size=[int(v) for v in const[ins[1]]], **o)
        elif op.kind == "MEAN":
            axes = [int(a) for a in np.atleast_1d(const[ins[1]])]
            step.update(axes=axes, keep_dims=o["keep_dims"], nchw=ins[0] in rank4)
        elif op.kind == "FULLY_CONNECTED":
            step["weight"] = w(f"w{n}", const[ins[1]])
            step["bias"] = w(f"b{n}", const[ins[2]]) if len(ins) > 2 and ins[2] >= 0 else None
            step["activation"] = o["activation"]
        elif op.kind == "RESHAPE":
            step["shape"] = [int(v) for v in out_shape[1:]]
            step["nchw"] = ins[0] in rank4
        elif op.kind == "CONCATENATION":
            rank = len(out_shape)
            axis = o["axis"] % rank
            if ins[0] in rank4:
                axis = {0: 0, 1: 2, 2: 3, 3: 1}[axis]
            step.update(axis=axis, activation=o["activation"])
        elif op.kind in ("LOGISTIC", "RELU", "RELU6", "TANH", "SOFTMAX"):
            pass
        else:
            raise ValueError(f"operator {op.kind} is not supported")
        if len(out_shape) == 4:
            rank4.add(int(outs[0]))
        steps.append(step)
    return {"version": CONVERTER_VERSION, "steps": steps, "weights": weights,
            "inputs": [int(i) for i in g.inputs], "outputs": [int(i) for i in g.outputs],
            "input_shape": [int(v) for v in g.tensors[g.inputs[0]].shape],
            "output_names": [g.tensors[i].name for i in g.outputs]}


class TFLiteNet(torch.nn.Module):
    """A converted .tflite graph: ``forward(x)`` with x (B, 3, H, W) float (NCHW; TFLite's input is the
    same tensor in NHWC) returns the graph's outputs in its order, each (B, ...) as TFLite shapes them."""

    def __init__(self, spec: dict):
        super().__init__()
        self.steps = spec["steps"]
        self.input_index = spec["inputs"][0]
        self.output_indices = spec["outputs"]
        self.input_shape = tuple(spec["input_shape"])
        self.output_names = list(spec["output_names"])
        self.params = torch.nn.ParameterDict({k: torch.nn.Parameter(v, requires_grad=False)
                                              for k, v in spec["weights"].items()})
        # where each activation is last read, so it can be freed early
        last = {}
        for n, s in enumerate(self.steps):
            for i in s["in"]:
                last[i] = n
        self._free = [[i for i in s["in"] if last[i] == n and i not in self.output_indices]
                      for n, s in enumerate(self.steps)]

    def _apply(self, fn, *args, **kwargs):
        self._plan = None  # parameters moved or cast: resolve them again
        return super()._apply(fn, *args, **kwargs)

    def _resolved(self) -> dict:
        """{key: tensor} of the parameters, looked up once (ParameterDict access is slow per call)."""
        if getattr(self, "_plan", None) is None:
            self._plan = {k: v for k, v in self.params.items()}
        return self._plan

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p = self._resolved()
        env = {self.input_index: x.contiguous(memory_format=torch.channels_last)}
        for s, free in zip(self.steps, self._free):
            k = s["kind"]
            a = env[s["in"][0]]
            if k in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                pl, pr, pt, pb = s["pad"]
                bias = p[s["bias"]] if s["bias"] else None
                if pl == pr and pt == pb:
                    y = F.conv2d(a, p[s["weight"]], bias, s["stride"], (pt, pl), s["dilation"], s["groups"])
                else:
                    y = F.conv2d(F.pad(a, (pl, pr, pt, pb)), p[s["weight"]], bias, s["stride"], 0,
                                 s["dilation"], s["groups"])
                y = _activation(y, s["activation"])
            elif k == "MAX_POOL_2D":
                pl, pr, pt, pb = s["pad"]
                if pl or pr or pt or pb:
                    a = F.pad(a, (pl, pr, pt, pb), value=float("-inf"))
                y = _activation(F.max_pool2d(a, s["kernel"], s["stride"]), s["activation"])
            elif k == "AVERAGE_POOL_2D":
                pl, pr, pt, pb = s["pad"]
                if pl or pr or pt or pb:  # TFLite averages over the valid cells only
                    ones = F.pad(torch.ones_like(a[:1, :1]), (pl, pr, pt, pb))
                    y = F.avg_pool2d(F.pad(a, (pl, pr, pt, pb)), s["kernel"], s["stride"]) / \
                        F.avg_pool2d(ones, s["kernel"], s["stride"])
                else:
                    y = F.avg_pool2d(a, s["kernel"], s["stride"])
                y = _activation(y, s["activation"])
            elif k == "PRELU":  # x where x > 0, else alpha x (one operator; the same numbers as TFLite's)
                y = F.prelu(a, p[s["alpha"]].reshape(-1))
            elif k in ("ADD", "MUL"):
                b = p[s["const"]] if "const" in s else env[s["in"][1]]
                y = _activation(a + b if k == "ADD" else a * b, s["activation"])
            elif k in ("PAD", "PADV2"):
                y = F.pad(a, s["pad"], value=s["value"])
            elif k == "RESIZE_BILINEAR":
                if s["align_corners"]:
                    y = F.interpolate(a, size=s["size"], mode="bilinear", align_corners=True)
                elif s["half_pixel_centers"]:
                    y = F.interpolate(a, size=s["size"], mode="bilinear", align_corners=False)
                else:
                    raise ValueError("RESIZE_BILINEAR without half_pixel_centers or align_corners is not supported")
            elif k == "MEAN":
                axes = [{1: 2, 2: 3, 3: 1}.get(ax, ax) for ax in s["axes"]] if s["nchw"] else s["axes"]
                y = a.mean(dim=axes, keepdim=s["keep_dims"])
                if s["keep_dims"] and s["nchw"]:
                    y = y.permute(0, 2, 3, 1)  # a 4-D result leaves the NCHW world in TFLite's order
            elif k == "FULLY_CONNECTED":
                y = _activation(F.linear(a.reshape(a.shape[0], -1), p[s["weight"]],
                                         p[s["bias"]] if s["bias"] else None), s["activation"])
            elif k == "RESHAPE":
                if s["nchw"]:
                    a = a.permute(0, 2, 3, 1)
                y = a.reshape(a.shape[0], *s["shape"])
            elif k == "CONCATENATION":
                y = _activation(torch.cat([env[i] for i in s["in"]], dim=s["axis"]), s["activation"])
            elif k == "LOGISTIC":
                y = torch.sigmoid(a)
            elif k == "RELU":
                y = F.relu(a)
            elif k == "RELU6":
                y = F.hardtanh(a, 0.0, 6.0)
            elif k == "TANH":
                y = torch.tanh(a)
            elif k == "SOFTMAX":
                y = torch.softmax(a, dim=-1)
            else:  # pragma: no cover - convert() refuses these
                raise ValueError(k)
            env[s["out"]] = y
            for i in free:
                del env[i]
        return [env[i] for i in self.output_indices]


def cached_spec(name: str) -> dict:
    """The converted graph of model ``name``: read from the cache, else converted and cached."""
    if name not in MODELS:
        raise ValueError(f"unknown hand network {name!r} (one of {', '.join(MODELS)})")
    where, data = model_source(name)
    digest = hashlib.sha256(data).hexdigest()
    folder = cache_root() / "torch_hands"
    path = folder / f"{name}-{digest[:16]}-v{CONVERTER_VERSION}.pt"
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a torn or foreign file: convert again below
            pass
    try:
        spec = convert(data)
    except ValueError as exc:
        raise CaptureError(f"cannot convert {where} to torch: {exc}") from None
    spec["sha256"] = digest
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(spec, tmp)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the conversion next time
    return spec


def frozen(net: TFLiteNet):
    """``net`` traced and frozen by TorchScript for CPU inference (constant weights folded in, one graph
    call instead of a Python loop over ~100 operators: measured ~15 % faster a forward on 1 thread, outputs
    bit-identical), as a callable x -> outputs; ``net`` itself where tracing is not available (TorchScript is
    deprecated in torch 2.x and may go)."""
    import warnings

    size = net.input_shape[1:3]
    x = torch.zeros(1, 3, *size).contiguous(memory_format=torch.channels_last)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            traced = torch.jit.freeze(torch.jit.trace(net, (x,), check_trace=False).eval())
            traced(x)
        return traced
    except Exception:  # no TorchScript in this torch, or it cannot trace the graph: run the module itself
        return net


def load_net(name: str, device: str | torch.device = "cpu") -> TFLiteNet:
    """Model ``name`` ("palm" or "landmark") as an eval-mode `TFLiteNet` on ``device``, channels-last (NHWC in
    memory, as TFLite lays it out: several times faster than NCHW for these depthwise convolutions on the
    CPU, where oneDNN's NCHW depthwise path was measured 10-20x slower with 2 threads)."""
    return TFLiteNet(cached_spec(name)).eval().to(device).to(memory_format=torch.channels_last)
