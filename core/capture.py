"""The capture job: video -> detector -> hand identity -> MANO fit -> clip file.

`run_capture` is a generator: it yields `Progress` events while it streams frames (never holding
the clip's images), then returns the `ClipResult` (``StopIteration.value``); `capture_to_file`
drives it for the CLI. Everything after detection is batched over the clip.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Generator

import numpy as np

from .io.clip import ClipResult, save_clip
from .errors import CaptureError, NoHandError
from .progress import Progress, Rate

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CaptureOptions:
    """Settings of one capture (frozen). Intrinsics: ``K`` (3,3)/(T,3,3) wins over fx..cy, then fov."""

    input: str
    static: bool | None = None  # None: static for image folders, tracking for video
    hands: int = 2
    side: str | None = None  # with hands=1: keep this side ("right"/"left"); None: the most confident, largest hand
    start: int = 0
    end: int | None = None
    stride: int = 1
    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    fov: float | None = None
    # --fov auto: one field of view per clip from the hand itself (`core.solve.camera.self_calibrate`), the
    # default kept where the clip does not determine one; reported in the clip (``self_calibration``).
    fov_auto: bool = False
    K: np.ndarray | None = None
    # Video: the detector's landmark convention (`core.net.renders.measure_2d`, measured on renders of our hand)
    # in the final image alignment's 2D term and in the shape fit (`core.solve.fit.with_landmark_offsets`); stills
    # are left as they were (on the real dev crops it cost wrist-relative error). False: the 2D compared with the
    # joints themselves (the ablation; no CLI flag).
    landmark_offsets: bool = True
    # A prior on the depths of one person's two hands acting together (`core.solve.pose.pair_depths`): after
    # both are fitted, each is aligned once more with the depth the pair implies. Off by default, no CLI flag
    # (BENCHMARKS.md "Image alignment (issue 15)": no gain shown on the two-hand view and video).
    pair_depth: bool = False
    with_vertices: bool = False
    model_right: str | None = None
    model_left: str | None = None
    min_confidence: float = 0.5
    vae: bool = True  # the VAE joint refinement (core.net); False for the ablation
    # The 2D-aware fit (core.solve.fit: back-projected 3D target, refinement against the 2D landmarks); False
    # keeps the analytic IK of the detector's 3D landmarks, placed by the 2D translation solve (ablation).
    fit: bool = True
    collide: bool = True  # push apart fingers that penetrate each other (core.solve.collide); False for the ablation
    # One size for a right and a left hand seen together in a video (`person_pair`): both hands' size evidence
    # pooled (`core.solve.pose.shared_lengths`); False: each hand sized alone (two people, the ablation).
    shared_size: bool = True
    # hand detector backend: "auto" (torch on a GPU, hybrid on the CPU), "mediapipe", "hybrid" or "torch"
    # (`core.detect.resolve_backend`); the torch device of the torch detector and of the fit ("auto": a GPU where
    # torch sees one; `core.detect.torch_device`).
    detector: str = "auto"
    device: str = "auto"
    # Detection in parallel segments of the clip, one process each (`core.detect.segments`): None (auto) one per
    # core for a clip of at least 100 frames per core; 1 reads the clip in one pass in this process.
    workers: int | None = None
    # "pipeline": the detector's 3D landmarks through the VAE and the fit (default); "paper": the paper's network
    # (`core.net.paper`) on the detector's crops, its MANO branch placed on the image by the fit (issue 13)
    model: str = "pipeline"
    paper_weights: str | None = None  # the network's weights (default core/net/weights/paper.pt)

    @classmethod
    def from_args(cls, a) -> "CaptureOptions":
        K = load_intrinsics(a.intrinsics) if a.intrinsics else None
        side = getattr(a, "side", None)
        if side is not None and a.hands == 2:
            raise CaptureError(f"--side {side} keeps one hand; it cannot be used with --hands 2")
        hands = a.hands if a.hands is not None else (1 if side else 2)
        return cls(input=a.input, static=True if a.static else None, hands=hands, side=side,
                   start=a.start, end=a.end,
                   stride=a.stride, fx=a.fx, fy=a.fy, cx=a.cx, cy=a.cy, K=K,
                   fov=None if a.fov == "auto" else a.fov, fov_auto=a.fov == "auto",
                   with_vertices=a.with_vertices, model_right=a.model_right, model_left=a.model_left,
                   min_confidence=a.min_confidence, vae=not a.no_vae, fit=not a.no_fit,
                   collide=not a.no_collide, shared_size=not getattr(a, "separate_sizes", False),
                   detector=getattr(a, "detector", "auto"), device=getattr(a, "device", "auto"),
                   workers=getattr(a, "workers", None), model=getattr(a, "model", "pipeline"),
                   paper_weights=getattr(a, "paper_weights", None))


def parse_intrinsics_spec(spec: str) -> tuple[str, str | None]:
    """Split an ``--intrinsics`` spec into (file, key or None); a pure string rule, the same on every OS.

    A trailing ``:key`` is split off only where the part before it ends in ``.npz`` (any case) and the key
    is a Python identifier: ``labels.npz:K_crop`` -> ("labels.npz", "K_crop"), ``C:\\d\\labels.npz:K`` ->
    ("C:\\d\\labels.npz", "K"). Anything else is one path: a drive letter (``C:\\d\\labels.npz``,
    ``D:/x/y.npy``) is never a key, nor is a ':' inside a folder name (``/data/run:1/K.npy``).
    """
    head, sep, key = spec.rpartition(":")
    if sep and head.lower().endswith(".npz") and key.isidentifier():
        return head, key
    return spec, None


def load_intrinsics(spec: str) -> np.ndarray:
    """K (3, 3) or (T, 3, 3) from ``file.npy`` or ``file.npz[:key]`` (default key "K"; see
    `parse_intrinsics_spec`). A spec naming an existing file as a whole is that file. Raises CaptureError
    for a missing file or key, an unreadable file, a wrong shape, or matrices with non-finite entries or
    focal lengths that are not positive."""
    spec = str(spec)
    path, key = (spec, None) if _is_file(spec) else parse_intrinsics_spec(spec)
    p = Path(path)
    if not _is_file(path):
        raise CaptureError(f"intrinsics file not found: {path}")
    try:
        if p.suffix.lower() == ".npz":
            with np.load(p, allow_pickle=False) as z:
                k = key or "K"
                if k not in z.files:
                    raise CaptureError(f"{p.name} has no '{k}' array (has: {', '.join(z.files) or 'none'}); "
                                       f"name it as {p.name}:KEY")
                arr = np.asarray(z[k], np.float64)
        else:
            if key is not None:
                raise CaptureError(f"{p.name} is not an .npz file, so it has no '{key}' array")
            arr = np.asarray(np.load(p, allow_pickle=False), np.float64)
    except CaptureError:
        raise
    except Exception as exc:  # noqa: BLE001 - any read failure is the user's file
        raise CaptureError(f"cannot read intrinsics {p.name}: {exc.__class__.__name__}: {exc}") from None
    if arr.ndim not in (2, 3) or arr.shape[-2:] != (3, 3):
        raise CaptureError(f"intrinsics in {p.name} have shape {arr.shape}; expected (3, 3) or (T, 3, 3)")
    if arr.ndim == 3 and len(arr) == 0:
        raise CaptureError(f"intrinsics in {p.name} hold no matrices (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise CaptureError(f"intrinsics in {p.name} hold non-finite values (nan or inf)")
    focal = arr[..., [0, 1], [0, 1]]
    if not (focal > 0).all():
        raise CaptureError(f"intrinsics in {p.name} have a focal length (K[0,0] or K[1,1]) that is not positive: "
                           f"{focal[focal <= 0].ravel()[0]:g}; expected pixel focal lengths > 0")
    return arr


def _is_file(path: str) -> bool:
    try:
        return os.path.isfile(path)
    except (OSError, ValueError):  # a name the OS cannot even look up (too long, embedded NUL)
        return False


def _intrinsics_for(opts: CaptureOptions, sizes: np.ndarray, frame_index: np.ndarray,
                    exif_fov: list | None = None) -> tuple[np.ndarray, bool, np.ndarray]:
    """K (T, 3, 3) for the kept frames, whether any frame's K was guessed, and (T,) bool: K from EXIF.

    ``sizes`` (T, 2) [W, H] of each frame: a guessed K (the default field of view across each image's longer
    side, its centre the principal point) follows each frame's own size. ``exif_fov`` (T,) degrees or None
    per frame (photos' EXIF focal lengths) is used only where the user gave no --intrinsics/--fx/--fov."""
    n = len(frame_index)
    no_exif = np.zeros(n, bool)
    if opts.K is not None:
        if opts.K.ndim == 2:
            return np.repeat(opts.K[None], n, 0), False, no_exif
        if len(opts.K) <= int(frame_index.max()):
            raise CaptureError(f"per-frame intrinsics hold {len(opts.K)} matrices but the source has frame {int(frame_index.max())}")
        return opts.K[frame_index], False, no_exif
    from .solve import camera  # torch: imported once the frames are read

    use_exif = exif_fov is not None and opts.fx is None and opts.fov is None
    from_exif = np.array([use_exif and exif_fov[k] is not None for k in range(n)], bool)
    K = np.stack([camera.intrinsics(int(w), int(h), opts.fx, opts.fy, opts.cx, opts.cy,
                                    exif_fov[k] if from_exif[k] else opts.fov)
                  for k, (w, h) in enumerate(np.asarray(sizes))])
    guessed = opts.fx is None and not (n and from_exif.all())  # --fov alone counts as guessed, as before
    return K, bool(guessed), from_exif


def fit_shots(fit, cuts, fps: float | None, kp_px: np.ndarray, world: np.ndarray, detected: np.ndarray,
              K: np.ndarray, landmarks_z: np.ndarray | None = None, **kwargs):
    """``fit`` (`core.solve.pose.fit_hand` without its layer) over a clip with scene cuts, so that neither
    gap filling nor smoothing reaches across a cut: at every cut, enough undetected frames are inserted
    (longer than any gap the temporal clean-up fills or smooths across), the clip is fitted once (one
    shape per hand), and the inserted frames are taken out again.

    Args:
        fit: callable(kp_px, world, detected, K, landmarks_z=..., fps=..., **kwargs) -> `HandFit`.
        cuts: frame positions (1..T-1) where a new shot starts.
        fps: frames per second of the (strided) video, or None for unrelated images (no temporal clean-up).
        kp_px (T, 21, 2), world (T, 21, 3), detected (T,), K (T, 3, 3), landmarks_z (T, 21) or None.
    Returns:
        the `HandFit` of the T frames.
    """
    cuts = sorted({int(c) for c in cuts if 0 < int(c) < len(detected)})
    if not cuts or fps is None:
        return fit(kp_px, world, detected, K, landmarks_z=landmarks_z, fps=fps, **kwargs)
    from .solve.smooth import SmoothConfig

    pad = int(np.ceil(max(SmoothConfig().max_gap_s, 1.0) * fps)) + 2  # over a second of nothing at each cut
    t = len(detected)
    pos = np.arange(t) + pad * np.searchsorted(cuts, np.arange(t), side="right")  # frame -> padded position

    def spread(a, fill=None):
        a = np.asarray(a)
        out = np.zeros((pos[-1] + 1, *a.shape[1:]), a.dtype)
        if fill is not None:
            out[:] = fill
        out[pos] = a
        return out

    if kwargs.get("depth_prior") is not None:  # per-frame arrays too: nothing on the inserted frames
        depth, weight = kwargs["depth_prior"]
        kwargs = dict(kwargs, depth_prior=(spread(depth, fill=np.nan), spread(weight)))
    res = fit(spread(kp_px), spread(world), spread(detected), spread(K, fill=np.asarray(K)[0]),
              landmarks_z=None if landmarks_z is None else spread(landmarks_z), fps=fps, **kwargs)
    return dataclasses.replace(res, **{f.name: getattr(res, f.name)[pos] for f in dataclasses.fields(res)
                                       if f.name != "betas" and getattr(res, f.name) is not None})


def _self_calibrate_allowed(opts: CaptureOptions, stills: bool) -> None:
    """CaptureError where --fov auto cannot apply: with given intrinsics, or on stills."""
    if opts.K is not None or opts.fx is not None:
        raise CaptureError("--fov auto estimates the focal length; it cannot be used with --fx or --intrinsics")
    if stills:
        raise CaptureError("--fov auto needs a video (one camera over the clip); photos use their EXIF focal "
                           "length or --fov DEGREES")


def _self_calibrate(opts: CaptureOptions, slots, sizes: np.ndarray, K: np.ndarray, stills: bool):
    """--fov auto: (K, the report line). One field of view for the clip from every hand's detected frames
    (`core.solve.camera.self_calibrate`); K keeps the default field of view where the clip does not determine
    one. Refused with given intrinsics or on stills (each photo may come from another camera)."""
    from .solve import camera

    _self_calibrate_allowed(opts, stills)
    w, h = (int(x) for x in sizes[0])
    shape = np.concatenate([tr.world[tr.detected] for tr in slots])
    px = np.concatenate([tr.landmarks_px[tr.detected] - 0.5 for tr in slots])
    sc = camera.self_calibrate(shape, px, w, h)
    if sc.fov_deg is None:
        line = f"--fov auto: {sc.reason}; the default {camera.DEFAULT_FOV_DEG:g} deg kept"
        log.warning(line)
        return K, line
    line = f"--fov auto: {sc.reason}"
    log.warning(line)
    K = np.stack([camera.intrinsics(int(a), int(b), None, None, opts.cx, opts.cy, sc.fov_deg) for a, b in sizes])
    return K, line


def person_pair(detected: list[np.ndarray], sides: tuple, min_shared: float = 0.5, min_frames: int = 5):
    """The slots (right, left) of hands that belong to one person, or None: exactly one right and one left
    slot, both detected together on at least ``min_frames`` frames and on at least ``min_shared`` of the
    frames of the one seen less. ``detected``: (T,) bool per slot; ``sides``: the slots' sides."""
    if sorted(sides) != ["left", "right"]:
        return None
    r, l = sides.index("right"), sides.index("left")
    both = int((detected[r] & detected[l]).sum())
    fewer = int(min(detected[r].sum(), detected[l].sum()))
    return (r, l) if both >= min_frames and both >= min_shared * fewer else None


# torch's intra-op threads in the fit (the fit's tensors are small: 256 frames x a few joints). Measured on the
# loaded 2-core machine (BENCHMARKS.md "End-to-end capture vs MediaPipe alone"): torch's default of one thread
# per core made the fit of single_hand.mp4 cost 16-17 CPU seconds against 2.5 with one thread, the same result
# bit for bit (its waiting threads spin while the other core is busy). On a machine that nothing else used while
# the clip was detected, `IDLE_FIT_THREADS` (`fit_threads`): ~20 % less wall time for the fit, the same result.
FIT_THREADS = 1
IDLE_FIT_THREADS = 2
OTHERS_IDLE = 0.25  # cores: the most other processes may use on average during the detection on an idle machine


def cpu_clock() -> tuple[float, float, float] | None:
    """(wall s, CPU s the whole machine was busy, CPU s of this process and its ended children) now, to compare
    two readings; None where the machine's busy time cannot be read (no /proc/stat: not Linux)."""
    import resource

    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        tick = float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None
    busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick  # user nice system irq softirq steal
    ours = sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))
    return time.monotonic(), busy, ours


def fit_threads(since: tuple | None, cores: int | None = None) -> int:
    """torch threads for the fit: `IDLE_FIT_THREADS` where this machine has the cores and other processes used
    less than `OTHERS_IDLE` cores on average since ``since`` (a `cpu_clock` reading at the detection's start: our
    own detection, workers included, is left out), else `FIT_THREADS` (a busy machine: threads that wait for a
    core spin; no reading: not Linux)."""
    from .detect.segments import available_cores

    now = cpu_clock()
    if since is None or now is None or (available_cores() if cores is None else cores) < IDLE_FIT_THREADS:
        return FIT_THREADS
    wall = now[0] - since[0]
    others = (now[1] - since[1]) - (now[2] - since[2])
    return IDLE_FIT_THREADS if wall > 0 and others / wall < OTHERS_IDLE else FIT_THREADS


def run_capture(opts: CaptureOptions) -> Generator[Progress, None, tuple]:
    """The capture job as a step generator: yields Progress, returns (ClipResult, VideoSource).

    Imports are ordered for a light start: what reads and detects the frames first; torch and the fit's modules
    on a thread beside the detection once the first frame is out (one pass, `_preload_fit`), or while the segment
    workers detect (`core.detect.segments`). The fit runs on `fit_threads` torch threads (one; two where nothing
    else used the machine while the clip was detected); torch's setting is restored when the job ends (or stops)."""
    saved = []  # torch's thread count before the job set its own (`_load_fit`)
    try:
        return (yield from _capture_steps(opts, saved))
    finally:
        if saved:
            import torch

            torch.set_num_threads(saved[0])


def _capture_steps(opts: CaptureOptions, saved: list) -> Generator[Progress, None, tuple]:
    from .detect import check_device, create_detector, decode_ahead, resolve_backend
    from .hand.load import load_model
    from .solve.cuts import Shots, find_cuts
    from .solve.track import Tracker
    from .io.video import open_video, read_ahead

    if opts.stride < 1:
        raise CaptureError(f"--stride must be at least 1; got {opts.stride}")
    if opts.side is not None and opts.side not in ("right", "left"):
        raise CaptureError(f"--side must be 'right' or 'left'; got {opts.side!r}")
    if opts.side is not None and opts.hands != 1:
        raise CaptureError("--side keeps one hand; use it with --hands 1 (or leave --hands out)")
    if opts.workers is not None and (isinstance(opts.workers, bool) or not isinstance(opts.workers, int)
                                     or opts.workers < 1):
        raise CaptureError(f"--workers must be 'auto' or a whole number >= 1; got {opts.workers!r}")
    if opts.model not in ("pipeline", "paper"):
        raise CaptureError(f"--model must be 'pipeline' or 'paper'; got {opts.model!r}")
    check_device(opts.device)  # a bad name, or a GPU where torch sees none: one line, before minutes of detection
    if opts.model == "paper":  # a missing weights file fails before minutes of detection
        from .net.paper.infer import default_weights

        weights = Path(opts.paper_weights) if opts.paper_weights else default_weights()
        if not weights.is_file():
            raise CaptureError(f"--model paper: network weights not found: {weights} (train them with "
                               f"`python -m core.net.paper.train`, docs/paper_net.md)")
    # Load the hand models first (numpy only): a bad model file fails before minutes of detection.
    if opts.model_right is None or opts.model_left is None:
        from .hand.gen import ensure_open_model

        ensure_open_model()  # a source checkout generates the open model into the user cache once
    models = {"right": load_model("right", opts.model_right), "left": load_model("left", opts.model_left)}
    src = open_video(opts.input, start=opts.start, end=opts.end, stride=opts.stride)
    static = src.is_folder if opts.static is None else opts.static
    if opts.fov_auto:  # refused before minutes of detection (`_self_calibrate` checks the same)
        _self_calibrate_allowed(opts, static or src.is_folder)
    n = src.frame_count
    backend = resolve_backend(opts.detector, opts.device)
    rate = Rate()
    clock = cpu_clock()  # what else the machine runs while we detect decides the fit's threads (`fit_threads`)
    yield Progress("detect", 0, n)
    # Identity: spurious tracklets (fewer than 3 frames) are dropped in tracking mode (in static mode every
    # image is its own frame, and one image is enough to tell two right hands); a video's scene cuts end every
    # tracklet. With --hands 1 the detector still looks for two hands, so that the hand kept is told apart
    # from the other one (MediaPipe, asked for one hand, hops onto the other hand when they come close) and
    # the asked --side is found; one is kept below (`TrackResult.pick`).
    tracker = Tracker(min_frames=1, same_side_frames=1) if static else Tracker()
    from .detect.segments import SegmentDetection, plan_workers

    workers = plan_workers(opts.workers, n, backend, opts.device)
    if workers > 1:  # the clip in segments, one process each; this process loads the fit meanwhile
        seg = SegmentDetection(input=str(src.path), start=src.start, stride=src.stride, n_frames=n,
                               workers=workers, static=static, backend=backend, device=opts.device,
                               min_confidence=opts.min_confidence)
        try:
            seg.start()
            refiner = _load_fit(opts, saved)
            stitched = yield from _segment_events(seg.collect(), rate, n)
        finally:
            seg.close()
        frame_index, per_frame, sizes = stitched.frame_index, stitched.hands, stitched.sizes
        cuts = set() if static else set(find_cuts(stitched.diffs))
        if stitched.read < n:
            src.mark_truncated(stitched.read)
        log.info("detection in %d segments, joined at frames %s", workers,
                 [frame_index[p] for p in stitched.joins if p < len(frame_index)])
    else:
        shots = None if static else Shots()
        frame_index, per_frame, sizes = [], [], []
        preload = None
        try:
            with create_detector(backend, static=static, max_hands=2, min_detection_confidence=opts.min_confidence,
                                 **({"device": opts.device} if backend == "torch" else {})) as det:
                for k, (idx, frame) in enumerate(read_ahead(src, decode_ahead(backend, opts.device))):
                    per_frame.append(det.detect(frame, idx / src.fps))
                    if shots is not None:
                        shots.add(frame)
                    frame_index.append(idx)
                    sizes.append((frame.shape[1], frame.shape[0]))  # a folder's images may differ in size
                    yield rate.event("detect", k + 1, n)
                    if k == 0:  # the first frame is out: the fit's modules load beside the detection from here
                        preload = _preload_fit()
        finally:
            if preload is not None:
                preload.join()  # an import half done by a thread would be left for the next one to find
        cuts = set(shots.cuts()) if shots is not None else set()
        refiner = _load_fit(opts, saved)
    from .solve.fit import FitConfig
    from .hand.mano import ManoLayer
    from .solve.pose import fit_hand
    import torch

    n_threads = fit_threads(clock)
    torch.set_num_threads(n_threads)
    device = fit_device(opts.device)  # the VAE (`_load_fit`), IK, refinement, limits, penetration fix, smoothing

    frame_index = np.asarray(frame_index, np.int64)
    t = len(frame_index)
    if t == 0:
        raise CaptureError(f"no frames could be read from {src.path.name}")
    for k, hands in enumerate(per_frame):
        if k in cuts:
            tracker.cut()
        tracker.update(hands, int(frame_index[k]))
    tracks = tracker.finish()
    if opts.hands == 1 and tracks:
        tracks = tracks.pick(opts.side)
    if not tracks or not any(tr.detected.any() for tr in tracks.values()):
        raise NoHandError(f"no hand found in any of the {t} frames of {src.path.name}: "
                          "film the hand larger, better lit, or palm towards the camera")
    sizes = np.asarray(sizes, np.int64).reshape(t, 2)
    exif_fov = None
    if src.is_folder:  # photos: their EXIF focal length, where they have one, before the default field of view
        from .io.exif import fov_from_exif, read_exif

        exif_fov = [fov_from_exif(read_exif(src.image_path(int(i))), int(w), int(h))
                    for i, (w, h) in zip(frame_index, sizes)]
    K, guessed, from_exif = _intrinsics_for(opts, sizes, frame_index, exif_fov)
    slots = [h for h in tracks.hands if h.detected.any()]  # right slots first; two only for same-side hands
    calibration = ""
    if opts.fov_auto:
        K, calibration = _self_calibrate(opts, slots, sizes, K, static or src.is_folder)
    sides = tuple(h.side for h in slots)
    # Without the 2D-aware fit: no relative depth (no back-projected target) and no refinement, so the
    # pose is the twist-swing IK of the detector's 3D landmarks; the other settings stay the defaults.
    config = FitConfig() if opts.fit else dataclasses.replace(FitConfig(), refine=None)
    if not opts.collide:
        config = dataclasses.replace(config, penetration=None)
    if opts.fit and opts.landmark_offsets:
        from .net.landmarks import LANDMARK_OFFSETS, load_offsets
        from .solve.fit import with_landmark_offsets

        config = with_landmark_offsets(config, load_offsets(LANDMARK_OFFSETS), shape=True, refine=False)
    layers = [ManoLayer(models[tr.side]).to(device) for tr in slots]
    # MediaPipe's relative depth is in units of each frame's own width: scaled to the first frame's.
    zs = [tr.landmarks_z * (sizes[:, :1] / float(sizes[0, 0])) if opts.fit else None for tr in slots]
    # Detector pixels have their origin at the pixel corner; K uses OpenCV's pixel centres.
    common = dict(image_width=int(sizes[0, 0]), config=config, refiner=refiner)
    worlds = [tr.world for tr in slots]
    model_ran = "pipeline"
    if opts.model == "paper":  # the network's MANO-branch joints (camera axes) replace the detector's 3D
        from .net.paper.infer import PaperModel, network_world

        paper = PaperModel(opts.paper_weights)
        pos = {int(i): k for k, i in enumerate(frame_index)}
        again = open_video(opts.input, start=opts.start, end=opts.end, stride=opts.stride)
        worlds = network_world(paper, ((pos[int(i)], f) for i, f in again if int(i) in pos), slots, K)
        zs = [None] * len(slots)  # no MediaPipe depth: the network's 3D is the target
        common.update(refiner=None, perspective=False)  # the VAE ran inside the network; joints in camera axes
        model_ran = paper.describe()
    lengths = [None] * len(slots)
    pair = None if (static or not opts.shared_size) else person_pair([tr.detected for tr in slots], sides)
    if pair is not None:  # one person's two hands: one size from both hands' evidence
        from .solve.pose import shared_lengths, size_evidence

        ev = [size_evidence(layers[h], slots[h].landmarks_px - 0.5, worlds[h], slots[h].detected, K,
                            landmarks_z=zs[h], confidence=slots[h].score, **common) for h in pair]
        for h in pair:
            lengths[h] = shared_lengths(ev)
    def fit_slot(h: int, depth_prior=None):
        # Neither gap filling nor smoothing crosses a scene cut (`fit_shots`).
        return fit_shots(lambda *a, _l=layers[h], **kw: fit_hand(_l, *a, **kw), sorted(cuts),
                         None if src.is_folder else float(src.fps) / opts.stride,
                         slots[h].landmarks_px - 0.5, worlds[h], slots[h].detected, K,
                         landmarks_z=zs[h], with_vertices=opts.with_vertices, lengths=lengths[h],
                         depth_prior=depth_prior, **common)

    if len(slots) > 1 and n_threads > 1:
        # An idle machine and several hands: one hand a thread, each on one torch thread (the same result as one
        # after the other; torch releases the interpreter's lock in its operators): two_hands.mp4's fit 1.7-1.9 s
        # against 2.0-2.4 s on two torch threads in turn (BENCHMARKS.md).
        from concurrent.futures import ThreadPoolExecutor

        yield Progress("fit", 0, len(slots))
        torch.set_num_threads(1)
        with ThreadPoolExecutor(min(len(slots), n_threads), thread_name_prefix="handcap-fit") as pool:
            fits = list(pool.map(fit_slot, range(len(slots))))
        torch.set_num_threads(n_threads)
    else:
        fits = []
        for h in range(len(slots)):
            yield Progress("fit", h, len(slots))
            fits.append(fit_slot(h))
    if pair is not None and opts.pair_depth:  # one person's two hands: each aligned again with the pair's depth
        from .solve.pose import pair_depths

        priors = pair_depths([fits[h] for h in pair], [slots[h].landmarks_px - 0.5 for h in pair], K,
                             [slots[h].detected for h in pair])
        for h, prior in zip(pair, priors):
            fits[h] = fit_slot(h, prior)
    yield Progress("fit", len(slots), len(slots))
    st = lambda key: np.stack([getattr(f, key) for f in fits])  # noqa: E731
    tt = lambda key: np.stack([getattr(tr, key) for tr in slots])  # noqa: E731
    faces = models[sides[0]].faces if opts.with_vertices else None
    if opts.with_vertices and len(set(sides)) == 2 and models["right"].n_verts != models["left"].n_verts:
        raise CaptureError("--with-vertices needs right and left models with the same vertex count")
    return ClipResult(
        source=str(opts.input),
        fps=float(src.fps) / opts.stride,
        image_size=sizes[0].copy(),
        frame_index=frame_index,
        time=frame_index / float(src.fps),
        K=K,
        K_guessed=guessed,
        sides=sides,
        model_names=tuple(models[s].name for s in sides),
        model_paths=tuple(str((opts.model_right if s == "right" else opts.model_left) or "") for s in sides),
        valid=st("valid"),
        detected=tt("detected"),
        confidence=tt("score"),
        betas=st("betas"),
        global_orient=st("global_orient"),
        hand_pose=st("hand_pose"),
        transl=st("transl"),
        joints=st("joints"),
        landmarks_px=tt("landmarks_px") - 0.5,
        landmarks_world=tt("world"),
        vertices=st("vertices") if opts.with_vertices else None,
        faces=faces,
        cuts=tuple(sorted(cuts)),
        image_sizes=sizes if src.is_folder else None,
        K_exif=from_exif if from_exif.any() else None,
        shared_size=pair is not None,
        detector=backend,
        fit_device=device.type,
        self_calibration=calibration,
        model=model_ran,
    ), src


def _preload_fit():
    """Start importing the fit's modules (torch: ~1.4 CPU s) on a daemon thread and return it: in one pass the
    detector keeps about one core busy (MediaPipe's graph, the decoder), so the import runs beside it on another
    instead of after the last frame; `_load_fit` finds the modules loaded. The detector releases the interpreter's
    lock while its graph runs. Errors are left to `_load_fit`'s own import, which reports them."""
    import threading

    def load():
        try:
            _import_fit_modules()
        except BaseException:  # noqa: BLE001 - the same import in `_load_fit` raises it where it is handled
            pass

    t = threading.Thread(target=load, name="handcap-preload-fit", daemon=True)
    t.start()
    return t


def _import_fit_modules():
    """Import torch and the fit's modules (at a known point of the job); returns torch."""
    import torch

    from .solve import fit, pose  # noqa: F401
    from .hand import mano  # noqa: F401
    from .net import vae  # noqa: F401

    return torch


def _load_fit(opts: CaptureOptions, saved: list):
    """Import the fit's modules (torch), set torch's threads to `FIT_THREADS` (the old count appended to
    ``saved``) and load the VAE refiner (None with ``vae`` off)."""
    torch = _import_fit_modules()
    if not saved:
        saved.append(torch.get_num_threads())
    torch.set_num_threads(FIT_THREADS)

    if not opts.vae:
        return None
    from .net import load_refiner

    return load_refiner(fit_device(opts.device))


def fit_device(name: str):
    """The torch device of the fit (`core.detect.torch_device`: --device; "auto" a GPU where torch sees one)."""
    from .detect import torch_device

    return torch_device(name)


def _segment_events(collect, rate: Rate, n: int):
    """Progress events of `core.detect.segments.SegmentDetection.collect`; returns its `Stitched`."""
    while True:
        try:
            owned = next(collect)
        except StopIteration as stop:
            return stop.value
        yield rate.event("detect", owned, n)


def capture(opts: CaptureOptions, reporter=None) -> tuple:
    """Run the capture job to its end (progress to ``reporter``, a `core.progress.Reporter`, if given);
    returns (ClipResult, VideoSource)."""
    gen = run_capture(opts)
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if reporter is not None:
            reporter.progress(event)


def capture_to_file(opts: CaptureOptions, out: str | Path, reporter) -> Path:
    """Run the capture job, reporting progress, and write the clip file; returns its path."""
    clip, src = capture(opts, reporter)
    if getattr(src, "warning", None):
        reporter.warning(src.warning)
    if clip.K_exif is not None:
        n_exif = int(clip.K_exif.sum())
        reporter.warning(f"intrinsics: {n_exif} of {clip.n_frames} photos from EXIF focal length"
                         + (", the others guessed" if n_exif < clip.n_frames else ""))
    n_missing = int((~clip.valid.any(0)).sum())
    if n_missing:
        reporter.warning(f"{n_missing} of {clip.n_frames} frames had no hand")
    return save_clip(clip, out)
