"""A second torch device simulated on the CPU, to test without a GPU that code keeps its tensors on one device.

Inside ``with Simulated():`` the device ``meta`` stands for a GPU: a tensor moved there (``.to("meta")``,
``torch.zeros(..., device="meta")``, a module's ``.to("meta")``) is an `OnDevice` wrapper that holds real CPU data
and computes with the CPU's own kernels, so results are the CPU's bit for bit, while torch's device rules are
enforced as CUDA enforces them:

- an operator given tensors on the device and CPU tensors raises `MixedDevices` (except 0-dim CPU tensors,
  which CUDA takes as scalars, CPU index tensors, which CUDA copies over, and copies between the two);
- ``.numpy()`` of a device tensor raises (``.cpu()`` first), ``.item()`` / ``float()`` / ``.tolist()`` copy;
- a tensor torch made on ``meta`` outside the simulation (it would have no data) is refused, never computed on.

Modes are per thread: run the code under test on this thread. ``torch.inference_mode`` acts as ``torch.no_grad``
inside (wrapper tensors cannot be inference tensors). About 15-20x slower than the CPU alone.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

DEVICE = torch.device("meta")


class MixedDevices(RuntimeError):
    """An operator got tensors on the device and on the CPU (CUDA: "Expected all tensors to be on the same
    device")."""


class OnDevice(torch.Tensor):
    """A tensor on the simulated device: its data is ``elem``, a CPU tensor of the same shape and strides."""

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        r = torch.Tensor._make_wrapper_subclass(cls, elem.shape, strides=elem.stride(), dtype=elem.dtype,
                                                device=DEVICE, requires_grad=elem.requires_grad,
                                                storage_offset=elem.storage_offset())
        r.elem = elem
        return r

    # Python sequences as indices become index tensors made on the indexed tensor's device by torch's C++,
    # outside the simulation (with no data on ``meta``): CPU index tensors here, which CUDA accepts too.
    def __getitem__(self, index):
        return super().__getitem__(_cpu_index(index))

    def __setitem__(self, index, value):
        return super().__setitem__(_cpu_index(index), value)

    def __repr__(self):
        return f"OnDevice({self.elem!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


def _cpu_index(index):
    def one(i):
        return torch.as_tensor(np.asarray(i)) if isinstance(i, (list, tuple, np.ndarray)) else i

    return tuple(one(i) for i in index) if isinstance(index, tuple) else one(index)


_INDEXING = {torch.ops.aten.index.Tensor, torch.ops.aten.index_put.default, torch.ops.aten.index_put_.default,
             torch.ops.aten._index_put_impl_.default}
_COPIES = {torch.ops.aten.copy_.default}


def _on_device(x) -> bool:
    return x is not None and torch.device(x).type == DEVICE.type


def _run(func, args, kwargs):
    found = [False]
    plain = []

    def unwrap(x):
        if isinstance(x, OnDevice):
            found[0] = True
            return x.elem
        if isinstance(x, torch.Tensor):
            plain.append(x)
        return x

    if func in _INDEXING:  # indices may stay on the CPU: only the indexed tensor and the values count
        a = (unwrap(args[0]), tree_map(lambda x: x.elem if isinstance(x, OnDevice) else x, args[1]),
             *tree_map(unwrap, tuple(args[2:])))
    else:
        a = tree_map(unwrap, args)
    kw = tree_map(unwrap, kwargs)
    made_here = _on_device(kw.get("device"))
    if made_here:
        kw["device"] = torch.device("cpu")
    elif func is torch.ops.aten._to_copy.default and kw.get("device") is not None:
        return func(*a, **kw)  # to the CPU: leaves the device
    if any(p.device.type == DEVICE.type for p in plain):
        raise RuntimeError(f"device simulation: {func} got a tensor without data (made on the device by torch "
                           "outside the simulation, e.g. on another thread)")
    if func in _COPIES:
        func(*a, **kw)
        return args[0]
    if found[0] and any(p.dim() > 0 for p in plain):
        raise MixedDevices(f"{func}: tensors on the device mixed with CPU tensors of shapes "
                           f"{[tuple(p.shape) for p in plain if p.dim() > 0]}")
    out = func(*a, **kw)
    if func is torch.ops.aten._local_scalar_dense.default or not (found[0] or made_here):
        return out
    return tree_map(lambda x: OnDevice(x) if isinstance(x, torch.Tensor) and not isinstance(x, OnDevice) else x, out)


class _Dispatch(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


class _Functions(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in (torch.tensor, torch.as_tensor) and _on_device(kwargs.get("device")):
            # Python data: torch builds the tensor in C++ and moves it outside the dispatch modes
            device = kwargs.pop("device")
            return func(*args, **kwargs).to(device)
        if func is torch.Tensor.tolist and isinstance(args[0], OnDevice):  # CUDA copies to the host
            return args[0].elem.tolist()
        if func is torch.Tensor.numpy and isinstance(args[0], OnDevice):  # CUDA refuses
            raise TypeError("can't convert a tensor on the simulated device to numpy; use Tensor.cpu() first")
        return func(*args, **kwargs)


class _NoGradForInference:
    """Stands in for torch's C++ inference-mode guard: no gradient recorded, as in inference mode, but tensors stay
    ordinary (views of the simulation's wrapper tensors cannot be made as inference tensors)."""

    def __init__(self, mode: bool):
        self._guard = torch.no_grad() if mode else torch.enable_grad()

    def __enter__(self):
        self._guard.__enter__()

    def __exit__(self, *exc):
        self._guard.__exit__(*exc)


class Simulated:
    """``with Simulated():`` the device ``meta`` (`DEVICE`) behaves as a second device with data."""

    def __enter__(self):
        self._inference = torch._C._InferenceMode
        torch._C._InferenceMode = _NoGradForInference
        self._modes = [_Functions(), _Dispatch()]
        for m in self._modes:
            m.__enter__()
        return self

    def __exit__(self, *exc):
        for m in reversed(self._modes):
            m.__exit__(*exc)
        torch._C._InferenceMode = self._inference
