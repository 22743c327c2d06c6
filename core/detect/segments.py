"""Detection of a long clip as parallel segments: one process per segment, stitched into one pass's detections.

The clip's selected frames (positions 0..n-1) are cut into ``workers`` contiguous segments. Each runs in
its own process (multiprocessing "spawn": nothing of the caller's state is shared) with its own decoder and
detector: it seeks to its segment, and its tracking-mode detector starts fresh there (MediaPipe runs its
palm detector on the first frame, as at a clip's start).

A fresh tracker is not yet where one that has run since the clip's start is: it may not have found every
hand (the palm detector misses hands a tracker keeps), and its first landmarks come from the palm
detector's box. So every segment but the first starts ``OVERLAP`` frames early, and every segment but the
last may read on past its end (up to ``EXTEND`` frames) until the two agree: the caller compares them
frame by frame as their detections arrive (`disagreement`: the same hands, landmarks within ``AGREE`` of
the hand's size), picks the frame where they agree best (`Joins`) and stops the earlier worker. From that
frame on the later segment's detections are used, so a join adds to the frame-to-frame step only the two
trackers' disagreement there. Only detections travel back (a few hundred bytes per hand and frame), so
memory stays flat in clip length, as in one pass.

What happens after detection -- identity (`core.solve.track.Tracker`), scene cuts (each worker sends the
frame-difference statistic of its frames, `core.solve.cuts`), the fit and its temporal clean-up -- runs once
on the stitched detections in the caller, so a segment-parallel capture has the form of a single pass and
its identity and smoothing run across the joins as anywhere else.

Each worker gets ``threads`` compute threads (OpenMP / BLAS / OpenCV / torch), cores divided among the
workers, so that they do not oversubscribe the machine. MediaPipe's legacy graph runs its networks on one
XNNPACK thread on desktop CPUs, so one worker per core keeps the cores busy.

Processes are spawned: a script that calls the capture in-process needs the usual
``if __name__ == "__main__":`` guard (``python -m core`` and ``python -m pytest`` need nothing).
"""
from __future__ import annotations

import dataclasses
import math
import os
import queue as queue_mod
import time
import traceback
from typing import Generator

from ..errors import CaptureError

MIN_FRAMES_PER_WORKER = 100  # auto: a clip shorter than 2 x this runs as one pass
OVERLAP = 12  # frames a segment starts before its own first frame
WARM = 2  # of those, frames the fresh tracker needs before its detections may be used
EXTEND = 90  # frames a segment may read past its end while the next one has not caught up with it
AGREE = 0.01  # two segments agree where their hands' landmarks are apart by at most this part of the hand's size
CHUNK = 8  # frames per message from a worker
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS")


def available_cores() -> int:
    """CPU cores this process may use: its affinity mask, capped by ``OMP_NUM_THREADS`` where a scheduler (Ray,
    SLURM, a farm's task) set it for the job."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        n = min(n, int(omp))
    return max(1, n)


def plan_workers(requested: int | None, n_frames: int, backend: str, device: str = "auto",
                 cores: int | None = None) -> int:
    """How many segment workers a capture uses.

    Args:
        requested: ``--workers``: None for auto, else a whole number >= 1.
        n_frames: frames the capture will read.
        backend, device: the resolved detector backend and its device option.
        cores: available cores (default `available_cores`).
    Returns:
        auto: one worker per core where every worker gets at least ``MIN_FRAMES_PER_WORKER`` frames, and 1 for
        the torch detector on a GPU (it batches on the device; processes would share it; device "auto" counts
        as a GPU only where torch sees one). An explicit count is
        kept, but never above one worker per ``OVERLAP`` frames (a segment shorter than its own lead-in).
    """
    if requested is not None:
        if requested < 1:
            raise CaptureError(f"--workers must be 'auto' or a whole number >= 1; got {requested}")
        return max(1, min(int(requested), n_frames // OVERLAP))
    if backend == "torch":
        from . import on_a_gpu

        if on_a_gpu(device):
            return 1
    cores = available_cores() if cores is None else cores
    return max(1, min(cores, n_frames // MIN_FRAMES_PER_WORKER))


@dataclasses.dataclass(frozen=True)
class Segment:
    """Positions (in the selected frames) of one worker: it reads from ``lead``, owns ``own..end-1`` and may read
    on up to ``reach`` (exclusive) until the next segment agrees with it."""

    lead: int
    own: int
    end: int
    reach: int


def plan_segments(n_frames: int, workers: int, overlap: int = OVERLAP, extend: int = EXTEND) -> list[Segment]:
    """``workers`` contiguous segments of ``n_frames`` positions, as even as whole frames allow; every segment
    but the first starts ``overlap`` frames early, every one but the last may read ``extend`` frames on."""
    bounds = [round(i * n_frames / workers) for i in range(workers + 1)]
    return [Segment(max(0, bounds[i] - overlap), bounds[i], bounds[i + 1],
                    bounds[i + 1] if i == workers - 1 else min(n_frames, bounds[i + 1] + extend))
            for i in range(workers)]


def disagreement(a, b) -> float:
    """How far two trackers' hands of one frame are apart, as a part of the hand's size: the largest, over the
    hands paired nearest first, mean landmark distance / landmark box diagonal. 0 for two empty frames; inf where
    the hand counts or a pair's sides differ."""
    import numpy as np

    if len(a) != len(b):
        return math.inf
    if not a:
        return 0.0

    def cost(x, y):
        if x.side != y.side:
            return math.inf
        size = max(float(np.linalg.norm(x.landmarks_px.max(0) - x.landmarks_px.min(0))), 1e-6)
        return float(np.linalg.norm(x.landmarks_px - y.landmarks_px, axis=1).mean()) / size

    d = {(i, j): cost(x, y) for i, x in enumerate(a) for j, y in enumerate(b)}
    worst, free_a, free_b = 0.0, set(range(len(a))), set(range(len(b)))
    while free_a:
        i, j = min(((i, j) for i in free_a for j in free_b), key=lambda ij: d[ij])
        worst = max(worst, d[i, j])
        free_a.discard(i)
        free_b.discard(j)
    return worst


class Joins:
    """Where each later segment takes over, decided while the detections arrive.

    For the join of segments w and w+1 every position p >= ``lead(w+1) + warm`` that both have read is scored
    (`disagreement`). The join is decided once the earlier segment has read up to the later one's own start and
    some position agreed (score <= ``agree``), or once no further position can be scored (the earlier segment
    reached its ``reach`` or the clip's end, or the later one stopped early on a truncated file and the earlier one
    has finished or caught up). The join is the best-scored position (the latest of equals: the later tracker has
    run longest there) or, where no position had the same hands, the position after the earlier segment's last
    frame. `update` returns the joins it decided, whose earlier workers the caller then stops.
    """

    def __init__(self, segments: list[Segment], warm: int = WARM, agree: float = AGREE):
        self.segments = segments
        self.warm = warm
        self.agree = agree
        self.at: list[int | None] = [None] * (len(segments) - 1)
        self.scores: list[dict] = [dict() for _ in segments[1:]]

    def update(self, results: list[dict], finished: list[bool]) -> list[int]:
        """Score new positions; returns the joins (indices w) decided by this call."""
        new = []
        for w, seg in enumerate(self.segments[1:]):
            if self.at[w] is not None:
                continue
            earlier, later, scores = results[w], results[w + 1], self.scores[w]
            p = seg.lead + self.warm + len(scores)
            while p in earlier and p in later:
                scores[p] = disagreement(earlier[p][1], later[p][1])
                p += 1
            best = min(scores.values(), default=math.inf)
            caught_up = max(earlier, default=-1) >= seg.own - 1
            # The later segment stopped short of p (a truncated file): the positions after it can only come from the
            # earlier one, so the join waits until that one has finished or caught up (deciding on what it had sent
            # so far would drop the frames it was still decoding).
            no_more = (finished[w] and p not in earlier) or (finished[w + 1] and p not in later
                                                             and (finished[w] or caught_up))
            if (caught_up and best <= self.agree) or no_more:
                if best < math.inf:
                    self.at[w] = max(q for q, v in scores.items() if v == best)
                else:
                    self.at[w] = max(earlier, default=seg.lead - 1) + 1
                new.append(w)
        return new


@dataclasses.dataclass
class Stitched:
    """One pass's worth of detections: per position the source index, hands, frame size and the difference to
    the previous frame (`core.solve.cuts.difference`; 0 for the first); the joins (first position taken from
    each later segment) and the positions read (n_frames, or fewer where the file stopped decoding)."""

    frame_index: list
    hands: list
    sizes: list
    diffs: list
    joins: list
    read: int


def stitch(results: list[dict], joins: list[int], n_frames: int) -> Stitched:
    """Join the workers' results (per worker: position -> (source index, hands, (W, H), diff)) at ``joins`` into
    one pass, stopping at the first position no worker decoded (a truncated file: one pass stops there too)."""
    out = Stitched([], [], [], [], list(joins), n_frames)
    w = 0
    for p in range(n_frames):
        while w < len(joins) and p >= joins[w]:
            w += 1
        if p not in results[w]:
            out.read = p
            break
        idx, hands, size, diff = results[w][p]
        out.frame_index.append(idx)
        out.hands.append(list(hands))
        out.sizes.append(size)
        out.diffs.append(diff)
    return out


def _limit_threads_env(threads: int) -> dict:
    """Set the variables that give a spawned worker ``threads`` compute threads; returns the old values."""
    old = {k: os.environ.get(k) for k in _THREAD_VARS}
    for k in _THREAD_VARS:
        os.environ[k] = str(threads)
    return old


def _restore_env(old: dict) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _worker(job: dict, out, stop) -> None:
    """A segment worker (in its own process): decode ``lead..reach``, detect, send chunks of results; past its
    segment's end it stops as soon as ``stop`` is set (the caller has joined it to the next segment)."""
    w = job["worker"]
    try:
        from ..io.video import _cv2, open_video, read_ahead
        from . import create_detector, decode_ahead

        cv2 = _cv2()
        cv2.setNumThreads(job["threads"])
        if job["backend"] == "torch":
            import torch

            torch.set_num_threads(job["threads"])
        stride, start = job["stride"], job["start"]
        lead, reach = job["lead"], job["reach"]
        try:
            src = open_video(job["input"], start=start + lead * stride, end=start + (reach - 1) * stride + 1,
                             stride=stride)
        except CaptureError:
            if lead == 0:
                raise
            out.put(("done", w, 0))  # a truncated file ends before this segment: one pass stops earlier too
            return
        signature = difference = None
        if not job["static"]:
            from ..solve.cuts import difference, signature
        prev, chunk, pos = None, [], lead
        with create_detector(job["backend"], static=job["static"], max_hands=2,
                             min_detection_confidence=job["min_confidence"],
                             **({"device": job["device"]} if job["backend"] == "torch" else {})) as det:
            for idx, frame in read_ahead(src, decode_ahead(job["backend"], job["device"])):
                if pos >= job["end"] and stop.is_set():
                    break
                if os.getppid() != job["parent"]:  # the capture process is gone (killed): no one reads on
                    return
                hands = det.detect(frame, idx / src.fps)
                diff = 0.0
                if signature is not None:
                    sig = signature(frame)
                    diff = 0.0 if prev is None else difference(prev, sig)
                    prev = sig
                chunk.append((pos, (int(idx), hands, (int(frame.shape[1]), int(frame.shape[0])), diff)))
                pos += 1
                if len(chunk) >= CHUNK or pos >= job["end"] - 1:
                    out.put(("frames", w, chunk))
                    chunk = []
        if chunk:
            out.put(("frames", w, chunk))
        out.put(("done", w, pos - lead))
        out.close()
        out.join_thread()  # every message is in the pipe: the worker may end now
        os._exit(0)  # without tearing torch / MediaPipe down (~0.35 s the capture would wait for in its join)
    except CaptureError as exc:
        out.put(("error", w, "user", str(exc)))
    except KeyboardInterrupt:  # Ctrl+C reaches the whole process group: the caller reports it
        pass
    except BaseException:  # noqa: BLE001 - sent to the caller, which reports it as a bug
        out.put(("error", w, "bug", traceback.format_exc()))


class SegmentDetection:
    """The segment workers of one capture. `start` spawns them (they detect while the caller loads its models);
    `collect` is a generator of the count of owned frames received, returning the `Stitched` detections; `close`
    (also on errors and when the caller stops early) ends the workers still running."""

    def __init__(self, *, input: str, start: int, stride: int, n_frames: int, workers: int, static: bool,
                 backend: str, device: str, min_confidence: float, cores: int | None = None):
        self.n_frames = n_frames
        self.static = static
        self.segments = plan_segments(n_frames, workers, *((0, 0) if static else (OVERLAP, EXTEND)))
        threads = max(1, (available_cores() if cores is None else cores) // workers)
        self.jobs = [dict(worker=w, parent=os.getpid(), input=str(input), start=start, stride=stride, lead=s.lead,
                          end=s.end, reach=s.reach, static=static, backend=backend, device=device,
                          min_confidence=min_confidence, threads=threads) for w, s in enumerate(self.segments)]
        self.threads = threads
        self.joins = Joins(self.segments, 0 if static else WARM)
        self._procs: list = []
        self._stops: list = []
        self._queue = None

    def start(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._queue = ctx.Queue()
        old = _limit_threads_env(self.threads)  # read by the children's OpenMP / BLAS when they load
        try:
            for job in self.jobs:
                stop = ctx.Event()
                p = ctx.Process(target=_worker, args=(job, self._queue, stop),
                                name=f"handcap-segment-{job['worker']}", daemon=True)
                p.start()
                self._procs.append(p)
                self._stops.append(stop)
        finally:
            _restore_env(old)

    def collect(self) -> Generator[int, None, Stitched]:
        results = [dict() for _ in self.segments]
        finished = [False] * len(self.segments)
        owned = 0
        while not all(finished):
            try:
                msg = self._queue.get(timeout=0.2)
            except queue_mod.Empty:
                for w, p in enumerate(self._procs):
                    if not finished[w] and p.exitcode is not None:
                        time.sleep(0.5)  # its last messages may still be in the pipe
                        if self._queue.empty():
                            raise RuntimeError(f"detection worker {w} ended (exit code {p.exitcode}) before "
                                               f"sending its results")
                continue
            kind, w = msg[0], msg[1]
            if kind == "frames":
                seg = self.segments[w]
                for pos, value in msg[2]:
                    results[w][pos] = value
                    owned += seg.own <= pos < seg.end
            elif kind == "done":
                finished[w] = True
            elif kind == "error":
                if msg[2] == "user":
                    raise CaptureError(msg[3])
                raise RuntimeError(f"detection worker {w} failed:\n{msg[3]}")
            for j in self.joins.update(results, finished):
                self._stops[j].set()
            if kind == "frames":
                yield owned
        for p in self._procs:
            p.join(timeout=10)
        self.joins.update(results, finished)
        assert None not in self.joins.at, self.joins.at
        return stitch(results, self.joins.at, self.n_frames)

    def close(self) -> None:
        for p in self._procs:
            if p.is_alive():
                p.terminate()
        for p in self._procs:
            p.join(timeout=5)
        if self._queue is not None:
            self._queue.close()
            self._queue.cancel_join_thread()
        self._procs = []
