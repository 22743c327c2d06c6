"""Capture and import jobs as step generators.

A job yields `Progress` between steps and returns a `CaptureOutcome`; it writes bpy data only in its
last step (`scene.apply_plan`, which undoes its own partial work on failure), so closing the generator
early (Esc) or an error leaves the scene as it was. ``execute()`` drains a job with `drain` (headless,
tests, farms); the modal operator ticks it from a timer. ``wait`` is how long one step may block waiting
for the worker (0 for the modal path); while waiting, a job yields the same `Progress` object again,
which tells the modal path to stop ticking.

Between steps the user may do anything (delete or rename objects, switch or delete the scene, undo,
which invalidates every Python reference to bpy data), so a job keeps no bpy reference across a step:
it remembers its scene by `SceneTarget` and looks it up again when it needs it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time

from ..core.io.clip import load_clip
from ..core.errors import CaptureError
from ..core.hand.load import load_model
from .progress import Progress
from .scene import AppliedScene, SceneOptions, apply_plan, clip_name, plan_scene, record_clip_file
from .worker import Worker, WorkerError, child_env

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".mts", ".m2ts", ".wmv")
# Share of the whole job per worker stage (start, end).
_STAGE_SPAN = {"open": (0.0, 0.02), "detect": (0.02, 0.7), "fit": (0.7, 0.9), "write": (0.9, 0.93)}


@dataclasses.dataclass(frozen=True)
class CaptureSettings:
    """What to capture (the operator's properties, checked).

    video: video file or image folder. frame_first / frame_last: 1-based source frames, inclusive
    (frame 1 is the video's first; frame_last 0 = to the end). stride: every N-th frame. hands: 1 or 2.
    side: with one hand, "right" / "left" keeps that hand ("" = the most confident, largest one).
    camera: "AUTO" (the core's default field of view), "FOV" (fov_deg across the longer side),
    "FOCAL_MM" (35 mm-equivalent focal length), "PIXELS" (fx; fy, cx, cy <= 0 = fx / image centre).
    with_vertices: store mesh vertices in the clip file. min_confidence: detector threshold.
    detector: "auto" (the torch port on a GPU, hybrid on the CPU), "mediapipe", "hybrid" or "torch" (the capture
    CLI's ``--detector``). model: "pipeline" (the detector's 3D landmarks, VAE, image-aligned fit) or "paper"
    (the paper's network on the detector's crops, core/net/paper; the capture CLI's ``--model``).
    model_right / model_left: official MANO files or "" for the bundled open model.
    """

    video: str
    frame_first: int = 1
    frame_last: int = 0
    stride: int = 1
    hands: int = 2
    side: str = ""
    camera: str = "AUTO"
    fov_deg: float = 69.0
    focal_mm: float = 26.0
    fx: float = 0.0
    fy: float = 0.0
    cx: float = -1.0
    cy: float = -1.0
    with_vertices: bool = False
    min_confidence: float = 0.5
    detector: str = "auto"
    model: str = "pipeline"
    model_right: str = ""
    model_left: str = ""

    def problems(self) -> list:
        """Every problem with the settings, as messages (empty when fine)."""
        out = []
        if not self.video:
            out.append("no video chosen: pick a video file in the Hand Capture panel")
        elif not os.path.exists(self.video):
            out.append(f"video not found: {self.video}")
        elif os.path.isfile(self.video) and not self.video.lower().endswith(VIDEO_EXTENSIONS):
            out.append(f"{os.path.basename(self.video)} does not look like a video (expected one of "
                       f"{', '.join(VIDEO_EXTENSIONS)})")
        if self.frame_first < 1:
            out.append(f"first frame must be 1 or more; got {self.frame_first}")
        if self.frame_last and self.frame_last < self.frame_first:
            out.append(f"last frame {self.frame_last} is before the first frame {self.frame_first}")
        if self.stride < 1:
            out.append(f"frame step must be 1 or more; got {self.stride}")
        if self.hands not in (1, 2):
            out.append(f"hands must be 1 or 2; got {self.hands}")
        if self.side not in ("", "right", "left"):
            out.append(f"side must be right or left; got {self.side!r}")
        elif self.side and self.hands != 1:
            out.append(f"only the {self.side} hand was asked for, with {self.hands} hands: choose one hand")
        if self.camera == "FOV" and not 1.0 <= self.fov_deg <= 170.0:
            out.append(f"field of view must be between 1 and 170 degrees; got {self.fov_deg:g}")
        if self.camera == "FOCAL_MM" and self.focal_mm <= 0:
            out.append(f"focal length must be positive; got {self.focal_mm:g} mm")
        elif self.camera == "FOCAL_MM" and focal_mm_to_fov(self.focal_mm) > MAX_FOV_DEG:
            out.append(f"a {self.focal_mm:g} mm focal length is too short: it sees more than {MAX_FOV_DEG:g} degrees "
                       f"(use at least {fov_to_focal_mm(MAX_FOV_DEG):.4f} mm)")
        if self.camera == "PIXELS" and self.fx <= 0:
            out.append(f"focal length in pixels must be positive; got {self.fx:g}")
        if self.detector not in DETECTORS:
            out.append(f"detector must be one of {', '.join(DETECTORS)}; got {self.detector!r}")
        if self.model not in MODELS:
            out.append(f"model must be one of {', '.join(MODELS)}; got {self.model!r}")
        for side, path in (("right", self.model_right), ("left", self.model_left)):
            if path and not os.path.isfile(path):
                out.append(f"{side} hand model not found: {path}")
        return out


DETECTORS = ("auto", "mediapipe", "hybrid", "torch")  # the worker's --detector choices (core.cli)
MODELS = ("pipeline", "paper")  # the worker's --model choices (core.cli)
MAX_FOV_DEG = 179.99  # the worker's --fov range (core.cli) ends here


def fov_to_focal_mm(fov_deg: float, sensor_mm: float = 36.0) -> float:
    """Field of view across the longer side, degrees -> 35 mm-equivalent focal length (the inverse of
    `focal_mm_to_fov`)."""
    return 0.5 * sensor_mm / math.tan(math.radians(fov_deg) / 2.0)


def focal_mm_to_fov(focal_mm: float, sensor_mm: float = 36.0) -> float:
    """35 mm-equivalent focal length -> field of view across the longer side, degrees (26 mm -> 69.4)."""
    return math.degrees(2.0 * math.atan(0.5 * sensor_mm / focal_mm))


def capture_argv(python: str, s: CaptureSettings, out_path: str) -> list:
    """The worker's command line: ``python -m core capture VIDEO --out CLIP --json-progress ...``."""
    argv = [python, "-m", "core", "capture", s.video, "--out", out_path, "--json-progress",
            "--hands", str(s.hands), "--start", str(s.frame_first - 1), "--stride", str(s.stride),
            "--min-confidence", f"{s.min_confidence:g}", "--detector", s.detector,
            "--model", s.model]
    if s.side:
        argv += ["--side", s.side]
    if s.frame_last:
        argv += ["--end", str(s.frame_last)]  # exclusive 0-based end == inclusive 1-based last
    if s.camera == "FOV":
        argv += ["--fov", f"{s.fov_deg:g}"]
    elif s.camera == "FOCAL_MM":
        argv += ["--fov", f"{focal_mm_to_fov(s.focal_mm):.4f}"]
    elif s.camera == "PIXELS":
        argv += ["--fx", f"{s.fx:g}"]
        for flag, v in (("--fy", s.fy), ("--cx", s.cx), ("--cy", s.cy)):
            if v > 0:
                argv += [flag, f"{v:g}"]
    if s.with_vertices:
        argv.append("--with-vertices")
    if s.model_right:
        argv += ["--model-right", s.model_right]
    if s.model_left:
        argv += ["--model-left", s.model_left]
    return argv


def clip_path_for(video: str, out_dir: str) -> str:
    """Clip file for a video: ``out_dir/<name>-<hash of the path>.npz`` (one per source, reused on re-runs)."""
    digest = hashlib.sha1(os.path.abspath(video).encode("utf-8")).hexdigest()[:8]
    return os.path.join(out_dir, f"{clip_name(video)}-{digest}.npz")


@dataclasses.dataclass(frozen=True)
class CaptureOutcome:
    """What a job made: applied (AppliedScene), clip_path, keyed {side: (keys, frames)}, warnings, info."""

    applied: AppliedScene
    clip_path: str
    keyed: dict
    warnings: tuple
    info: str


@dataclasses.dataclass(frozen=True)
class SceneTarget:
    """The scene (and view layer) a job writes into, by identity rather than by reference.

    ``scene_uid`` is the scene's ``session_uid``: kept across undo and renames, new after a file load,
    so a job never writes into a file other than the one it was started in.
    """

    scene_uid: int
    scene_name: str
    view_layer: str

    @classmethod
    def of(cls, scene, view_layer) -> "SceneTarget":
        return cls(scene.session_uid, scene.name, view_layer.name if view_layer is not None else "")

    def resolve(self) -> tuple:
        """(scene, view_layer) as they are now; raises CaptureError when the scene is gone."""
        import bpy

        scene = next((s for s in bpy.data.scenes if s.session_uid == self.scene_uid), None)
        if scene is None:
            raise CaptureError(f"the scene {self.scene_name!r} was deleted or its file closed while the job ran; "
                               f"nothing was written")
        # Any of the scene's view layers will do (it is only where the armature is briefly made active).
        layer = scene.view_layers.get(self.view_layer) or (scene.view_layers[0] if scene.view_layers else None)
        if layer is None:
            raise CaptureError(f"the scene {scene.name!r} has no view layer; nothing was written")
        return scene, layer


def partial_path(out_path: str) -> str:
    """Where the worker writes the clip before renaming it over ``out_path`` (core.io.clip.save_clip)."""
    return out_path + ".part"


def _progress_of(events):
    """The worker's progress events as `Progress` (one per event, in order)."""
    return (_worker_progress(ev.data) for ev in events if ev.kind == "progress")


def _worker_progress(ev: dict) -> Progress:
    stage = str(ev.get("stage", "capture"))
    done, total = int(ev.get("done", 0) or 0), int(ev.get("total", 0) or 0)
    a, b = _STAGE_SPAN.get(stage, (0.0, 0.93))
    frac = a + (b - a) * (done / total if total else 0.0)
    return Progress(stage, done, total, float(ev.get("fps", 0.0) or 0.0), float(ev.get("eta_s", -1.0)), frac)


def capture_steps(settings: CaptureSettings, python: str, core_root: str, out_path: str, scene, view_layer,
                  options: SceneOptions = SceneOptions(), units: float = 1.0, wait: float = 0.0,
                  log_path: str | None = None, cache_dir: str | None = None):
    """Capture ``settings.video`` in the worker, then build the scene (step generator -> CaptureOutcome).

    core_root: folder holding the ``core`` package (the extension's folder); the worker only reads it.
    cache_dir: the worker's cache (core's HANDCAP_CACHE and its bytecode, PYTHONPYCACHEPREFIX), a user
    folder, so that nothing is written into the installed extension. Raises CaptureError for bad
    settings, a worker error or crash (WorkerError) and a bad clip. Nothing half-written is left: the
    worker writes the clip beside ``out_path`` and renames it over it, and a failed or cancelled job removes
    that temporary file, so ``out_path`` holds an earlier complete clip, the new one, or nothing. Once the
    worker has written its clip, an error while building the scene names the file, so the capture is not lost.
    """
    return _capture_steps(settings, python, core_root, out_path, SceneTarget.of(scene, view_layer), options, units,
                          wait, log_path, cache_dir)


def _capture_steps(settings, python, core_root, out_path, target, options, units, wait, log_path, cache_dir):
    problems = settings.problems()
    if problems:
        raise CaptureError("; ".join(problems))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    extra = {"HANDCAP_CACHE": cache_dir, "PYTHONPYCACHEPREFIX": os.path.join(cache_dir, "pycache")} if cache_dir else {}
    worker = Worker(capture_argv(python, settings, out_path), name="capture worker",
                    cwd=os.path.dirname(os.path.abspath(out_path)), env=child_env(pythonpath=core_root, extra=extra),
                    log_path=log_path)
    last = Progress("start", message="starting the capture runtime")
    try:
        yield last
        while not worker.finished:
            for last in _progress_of(worker.poll(wait)):
                yield last
            yield last
        for last in _progress_of(worker.poll()):  # what came after the last look (a fast worker may end first)
            yield last
        try:
            done = worker.finish()
        except WorkerError as exc:
            if "No module named" in str(exc):
                raise WorkerError(f"{exc}. The capture runtime {python} lacks a package: press Set up runtime in "
                                  f"Preferences > Add-ons > Hand Capture, or choose a Python with the project's "
                                  f"packages", exc.log_tail) from None
            raise
    finally:
        worker.cancel()
        _remove_partial(out_path)  # a worker killed while writing leaves its temporary file
    clip_path = str(done.get("out") or out_path)
    try:
        outcome = yield from _import_steps(clip_path, target, options, units)
    except CaptureError as exc:
        raise CaptureError(f"{exc} (the capture is saved in {clip_path}: Import Clip File in the Hand Capture panel "
                           f"builds the rig from it without capturing again)") from None
    return dataclasses.replace(outcome, warnings=tuple(worker.warnings) + outcome.warnings)


def _remove_partial(out_path: str) -> None:
    try:
        os.remove(partial_path(out_path))
    except OSError:
        pass


def import_steps(clip_path: str, scene, view_layer, options: SceneOptions = SceneOptions(), units: float = 1.0):
    """Read a clip file and build the scene from it (step generator -> CaptureOutcome)."""
    return _import_steps(clip_path, SceneTarget.of(scene, view_layer), options, units)


def _import_steps(clip_path: str, target: SceneTarget, options: SceneOptions, units: float):
    yield Progress("load", message=f"reading {os.path.basename(clip_path)}", fraction=0.93)
    clip = load_clip(clip_path)
    models = {side: load_model(side, clip.model_path(h)) for h, side in enumerate(clip.sides)}
    yield Progress("plan", message="planning the rig and keys", fraction=0.95)
    render = target.resolve()[0].render
    plan = plan_scene(clip, models, render.fps / render.fps_base, units, options)
    del render  # no bpy reference outlives a step
    yield Progress("scene", message="writing the rig, mesh and keys", fraction=0.97)
    scene, view_layer = target.resolve()  # looked up again: the user may have changed anything meanwhile
    applied = apply_plan(plan, scene, view_layer)
    record_clip_file(applied, clip.sides, clip_path)  # contact refinement reads the clip again
    keyed = {hp.key: (hp.keys.n_keys, hp.n_frames) for hp in plan.hands}  # "right2": a second right hand
    hands = ", ".join(f"{applied.armatures[s]} keyed on {n} of {t} frames" for s, (n, t) in keyed.items())
    return CaptureOutcome(applied=applied, clip_path=str(clip_path), keyed=keyed,
                          warnings=plan.warnings + applied.warnings,
                          info=f"Hand Capture: {hands} (collection {applied.collection})")


def drain(steps, on_progress=None, min_interval_s: float = 1.0):
    """Run a step generator to the end; returns its result. ``on_progress(Progress)`` at most once a second.

    With HANDCAP_PROFILE=1 the run is profiled and the 25 costliest calls are printed.
    """
    profiler = None
    if os.environ.get("HANDCAP_PROFILE") == "1":
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    last = 0.0
    try:
        while True:
            try:
                p = next(steps)
            except StopIteration as stop:
                return stop.value
            now = time.monotonic()
            if on_progress is not None and now - last >= min_interval_s:
                last = now
                on_progress(p)
    finally:
        steps.close()
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
