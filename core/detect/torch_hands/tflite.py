"""A minimal reader of TensorFlow Lite model files (FlatBuffers), numpy only, no schema package.

Reads the few tables the hand models need: Model, SubGraph, Tensor, Buffer, Operator, OperatorCode and
the builtin option tables of the operators they use. Field numbers follow TFLite's public ``schema.fbs``
(slot ``i`` of a table sits at vtable entry ``4 + 2 i``).

`read_model(data)` -> `Graph`: tensors (name, shape, dtype, constant data where a buffer holds it),
operators in execution order (builtin name, input / output tensor indices, decoded options), and the
graph's input and output tensor indices.
"""
from __future__ import annotations

import dataclasses
import struct

import numpy as np

# TFLite TensorType -> numpy dtype (the types these models hold)
TENSOR_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_,
                7: np.int16, 9: np.int8, 10: np.float64}

# BuiltinOperator codes (schema.fbs) of the operators a MediaPipe hand model may hold
BUILTIN_OPS = {0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
               6: "DEQUANTIZE", 9: "FULLY_CONNECTED", 14: "LOGISTIC", 17: "MAX_POOL_2D", 18: "MUL",
               19: "RELU", 21: "RELU6", 22: "RESHAPE", 23: "RESIZE_BILINEAR", 25: "SOFTMAX", 28: "TANH",
               34: "PAD", 40: "MEAN", 54: "PRELU", 60: "PADV2"}

PADDING = {0: "SAME", 1: "VALID"}
ACTIVATIONS = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}


class _Table:
    """One FlatBuffers table at byte ``pos`` of ``buf``."""

    __slots__ = ("buf", "pos", "vt", "vt_len")

    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        self.vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt_len = struct.unpack_from("<H", buf, self.vt)[0]

    def _field(self, slot: int) -> int:
        """Absolute position of field ``slot``, or 0 where it is absent (default value)."""
        entry = 4 + 2 * slot
        if entry >= self.vt_len:
            return 0
        off = struct.unpack_from("<H", self.buf, self.vt + entry)[0]
        return self.pos + off if off else 0

    def scalar(self, slot: int, fmt: str, default=0):
        p = self._field(slot)
        return struct.unpack_from("<" + fmt, self.buf, p)[0] if p else default

    def _indirect(self, p: int) -> int:
        return p + struct.unpack_from("<I", self.buf, p)[0]

    def table(self, slot: int) -> "_Table | None":
        p = self._field(slot)
        return _Table(self.buf, self._indirect(p)) if p else None

    def _vector(self, slot: int) -> tuple[int, int]:
        """(start of the elements, length) of vector field ``slot``; (0, 0) when absent."""
        p = self._field(slot)
        if not p:
            return 0, 0
        v = self._indirect(p)
        return v + 4, struct.unpack_from("<I", self.buf, v)[0]

    def vector(self, slot: int, dtype) -> np.ndarray:
        start, n = self._vector(slot)
        return np.frombuffer(self.buf, dtype=np.dtype(dtype).newbyteorder("<"), count=n, offset=start) \
            if n else np.zeros(0, dtype)

    def tables(self, slot: int) -> list["_Table"]:
        start, n = self._vector(slot)
        return [_Table(self.buf, self._indirect(start + 4 * i)) for i in range(n)]

    def string(self, slot: int) -> str:
        start, n = self._vector(slot)
        return bytes(self.buf[start:start + n]).decode("utf-8", "replace") if n else ""


@dataclasses.dataclass
class Tensor:
    """One tensor of the graph: ``data`` is its constant value (None for activations)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type
    data: np.ndarray | None


@dataclasses.dataclass
class Op:
    """One operator: builtin ``kind`` (e.g. "CONV_2D"), tensor indices (-1 = optional input absent)."""

    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict


@dataclasses.dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _options(kind: str, t: _Table | None) -> dict:
    """The builtin option table of an operator, decoded (defaults as in schema.fbs)."""
    if kind in ("CONV_2D",):
        return {"padding": PADDING[t.scalar(0, "b") if t else 0],
                "stride_w": t.scalar(1, "i") if t else 1, "stride_h": t.scalar(2, "i") if t else 1,
                "activation": ACTIVATIONS[t.scalar(3, "b") if t else 0],
                "dilation_w": t.scalar(4, "i", 1) if t else 1, "dilation_h": t.scalar(5, "i", 1) if t else 1}
    if kind == "DEPTHWISE_CONV_2D":
        return {"padding": PADDING[t.scalar(0, "b") if t else 0],
                "stride_w": t.scalar(1, "i") if t else 1, "stride_h": t.scalar(2, "i") if t else 1,
                "depth_multiplier": t.scalar(3, "i") if t else 1,
                "activation": ACTIVATIONS[t.scalar(4, "b") if t else 0],
                "dilation_w": t.scalar(5, "i", 1) if t else 1, "dilation_h": t.scalar(6, "i", 1) if t else 1}
    if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        return {"padding": PADDING[t.scalar(0, "b")], "stride_w": t.scalar(1, "i"), "stride_h": t.scalar(2, "i"),
                "filter_w": t.scalar(3, "i"), "filter_h": t.scalar(4, "i"),
                "activation": ACTIVATIONS[t.scalar(5, "b")]}
    if kind in ("ADD", "MUL"):
        return {"activation": ACTIVATIONS[t.scalar(0, "b") if t else 0]}
    if kind == "FULLY_CONNECTED":
        return {"activation": ACTIVATIONS[t.scalar(0, "b") if t else 0], "weights_format": t.scalar(1, "b") if t else 0,
                "keep_num_dims": bool(t.scalar(2, "B")) if t else False}
    if kind == "RESIZE_BILINEAR":
        return {"align_corners": bool(t.scalar(2, "B")) if t else False,
                "half_pixel_centers": bool(t.scalar(3, "B")) if t else False}
    if kind == "MEAN":
        return {"keep_dims": bool(t.scalar(0, "B")) if t else False}
    if kind == "CONCATENATION":
        return {"axis": t.scalar(0, "i"), "activation": ACTIVATIONS[t.scalar(1, "b")]}
    if kind == "RESHAPE":
        return {"new_shape": tuple(int(v) for v in t.vector(0, np.int32))} if t else {}
    return {}


def read_model(data: bytes) -> Graph:
    """The first subgraph of a .tflite file's bytes, with constant tensors as numpy arrays (copies)."""
    buf = memoryview(data).toreadonly() if not isinstance(data, bytes) else data
    if len(buf) < 8 or bytes(buf[4:8]) != b"TFL3":
        raise ValueError("not a TensorFlow Lite model (no TFL3 identifier)")
    model = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
    codes = []
    for oc in model.tables(1):
        code = max(oc.scalar(0, "b"), oc.scalar(3, "i"))  # deprecated_builtin_code / builtin_code
        if oc.string(1):
            raise ValueError(f"custom operator {oc.string(1)!r} is not supported")
        if code not in BUILTIN_OPS:
            raise ValueError(f"TFLite builtin operator {code} is not supported")
        codes.append(BUILTIN_OPS[code])
    buffers = []
    for b in model.tables(4):
        raw = b.vector(0, np.uint8)
        if not raw.size and b.scalar(1, "Q"):  # data stored after the flatbuffer (large models)
            off, size = b.scalar(1, "Q"), b.scalar(2, "Q")
            raw = np.frombuffer(buf, np.uint8, count=size, offset=off)
        buffers.append(raw)
    sub = model.tables(2)[0]
    tensors = []
    for i, t in enumerate(sub.tables(0)):
        shape = tuple(int(v) for v in t.vector(0, np.int32))
        ttype = t.scalar(1, "b")
        if ttype not in TENSOR_TYPES:
            raise ValueError(f"tensor type {ttype} is not supported")
        dtype = TENSOR_TYPES[ttype]
        raw = buffers[t.scalar(2, "I")]
        value = None
        if raw.size:
            value = np.frombuffer(raw.tobytes(), dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
        tensors.append(Tensor(i, t.string(3), shape, dtype, value))
    ops = []
    for o in sub.tables(3):
        kind = codes[o.scalar(0, "I")]
        ops.append(Op(kind, tuple(int(v) for v in o.vector(1, np.int32)), tuple(int(v) for v in o.vector(2, np.int32)),
                      _options(kind, o.table(4))))
    return Graph(tensors, ops, tuple(int(v) for v in sub.vector(1, np.int32)), tuple(int(v) for v in sub.vector(2, np.int32)))
