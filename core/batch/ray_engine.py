"""The Ray engine: one Ray task per clip, each running `core.batch.job.run_clip`, asking for ``num_gpus`` when the
batch does.

By default a task captures inside its Ray worker process (`core.batch.job.capture_in_process`, as the local engine
does): Ray keeps its worker processes for later tasks, so the capture's imports and model set-up are paid once per
worker, not once per clip, and each task's torch uses the ``CPUS_PER_CLIP`` CPUs Ray gave it (no more threads than
cores when tasks run side by side). ``isolate`` (or a ``python`` of its own) runs the capture CLI as a child process
of the task instead (``python -m core capture ... --json-progress``): a crash of the capture is then only that
clip's failure, at the price of the CLI's start-up per clip.

The only module of the core that imports Ray (an optional extra: ``pip install -r requirements-ray.txt``, plain
``ray``: the ``ray[default]`` extra pulls a protobuf that MediaPipe's pin refuses). ``address`` None starts a Ray
on this machine (``num_cpus`` / ``num_gpus`` as given); otherwise ``ray.init(address=...)`` joins a cluster
(``auto`` on a cluster node, ``ray://head:10001`` through Ray Client), whose nodes must see the manifest's inputs
and the output folder at the same paths (shared storage). A task whose worker process or node dies is run again
(``max_retries``); a clip's own failure is a recorded outcome, never retried.
"""
from __future__ import annotations

import contextlib
import os

from ..errors import CaptureError
from .job import CODE_ROOT, capture_in_process, capture_subprocess, run_clip

MAX_RETRIES = 3  # runs of a task whose worker died (node lost, process killed), as Ray counts them
CPUS_PER_CLIP = 1  # CPUs each task asks Ray for; its torch uses as many threads
# What a worker started by a Ray started here needs from the driver's environment.
_ENV_KEYS = ("HANDCAP_CACHE", "HANDCAP_BLENDER")


def _use_cpus(n: int) -> None:
    """Torch (and OpenCV) in this worker use ``n`` threads: the CPUs Ray gave the task (Ray also sets
    OMP_NUM_THREADS to them); several tasks side by side then never run more compute threads than cores."""
    import cv2
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    cv2.setNumThreads(n)


def _clip_task(spec, out: str, blender: str | None, fbx: bool, python: str | None = None,
               isolate: bool = False) -> dict:
    """Body of one Ray task (runs in a Ray worker process). The capture runs in the worker itself, unless
    ``isolate`` or ``python`` (the capture CLI's interpreter) asks for a child process."""
    if isolate or python:
        def capture(s, clip, log):
            return capture_subprocess(s, clip, log, python=python)
    else:
        _use_cpus(CPUS_PER_CLIP)
        capture = capture_in_process
    return run_clip(spec, out, capture=capture, engine="ray", blender=blender, fbx=fbx)


def _lost(spec, exc) -> dict:
    """The result of a task that Ray gave up on (its worker died more than MAX_RETRIES times, or it was cancelled)."""
    first = str(exc).strip().splitlines()
    return {"clip": spec.name, "input": spec.path, "engine": "ray", "outcome": "failed", "reason": "task lost",
            "message": f"the Ray task failed ({exc.__class__.__name__}: {first[0] if first else ''})",
            "blend": None, "seconds": 0.0}


@contextlib.contextmanager
def _environ(values: dict):
    """``os.environ`` updated with ``values`` inside the block, as it was after it."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_on_ray(specs, out, settings, finished) -> None:
    """Run ``specs`` as Ray tasks; ``finished(result)`` in the order they end."""
    try:
        import ray
    except ImportError:
        raise CaptureError("the ray engine needs Ray: .venv/bin/python -m pip install -r requirements-ray.txt "
                           "(or use --engine local)") from None
    started_here = not ray.is_initialized()
    if started_here:
        env = {"PYTHONPATH": os.pathsep.join(p for p in (CODE_ROOT, os.environ.get("PYTHONPATH")) if p)}
        env.update({key: os.environ[key] for key in _ENV_KEYS if os.environ.get(key)})
        kwargs = dict(include_dashboard=False, log_to_driver=False)
        try:
            if settings.address:
                # A driver started by `ray job submit` runs with the job's runtime_env (its --working-dir is on every
                # worker's path); otherwise the cluster's workers find the code through PYTHONPATH (shared storage).
                if not os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):
                    kwargs["runtime_env"] = {"env_vars": env}
                ray.init(address=settings.address, **kwargs)
            else:
                # A Ray started here: its workers inherit this environment. No runtime_env, so the tasks run on the
                # workers Ray starts with (a runtime_env would make Ray start other workers for them).
                with _environ(env):
                    ray.init(num_cpus=settings.num_cpus, num_gpus=settings.num_gpus, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = settings.address or "this machine"
            raise CaptureError(f"cannot start or reach Ray at {where}: {str(exc).splitlines()[0]}") from None
    try:
        gpus = float(settings.gpus_per_clip or 0)
        have = ray.cluster_resources().get("GPU", 0.0)
        if gpus > have:
            raise CaptureError(f"--gpus-per-clip {gpus:g} but the Ray cluster has {have:g} GPUs: no task could run")
        task = ray.remote(_clip_task).options(num_cpus=CPUS_PER_CLIP, num_gpus=gpus, max_retries=MAX_RETRIES,
                                              retry_exceptions=False)
        refs = {task.remote(spec, str(out), settings.blender, settings.fbx, settings.python, settings.isolate): spec
                for spec in specs}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    result = _lost(refs[ref], exc)
                finished(result)
    finally:
        if started_here:
            ray.shutdown()
