"""Hand identity over a clip: per-frame detections (0-2 hands) -> one "right" and one "left" track.

Per-frame handedness labels flicker (a hand seen edge-on, two hands touching), so a hand's side is
not read from each frame. Instead:

1. Online, each frame's detections are joined to short *tracklets* by spatial continuity: mean landmark
   distance to the tracklet's constant-velocity prediction, in units of hand size, gated, plus a small
   bonus when the detection's label agrees with the tracklet's accumulated label votes. The 2x2
   assignment is solved exactly (every partial matching is scored). Duplicate detections of one hand
   are merged first. When more than two detections remain (MediaPipe's tracking mode can return a
   third, e.g. a second, smaller copy of one hand), the two kept are chosen by the same matching, not by
   label score, so a tracked hand is not dropped for a look-alike on the other hand. A tracklet ends
   after ``max_gap`` frames without a match.
2. At the end, tracklets get sides from their accumulated votes (sum over frames of 2*p_right - 1):
   tracklets seen at the same time must be different hands, so each group of overlapping tracklets
   is coloured right/left as a whole, choosing the colouring the votes favour most. A tracklet never
   seen beside another hand takes its own majority when the evidence is clear, else the majority of
   all such single-hand frames (so one hand seen alone keeps one side over the whole clip).

`Tracker` is the streaming form (``update`` per frame, ``finish`` once); `track_hands` runs it on an
iterable. Frames are counted in the order they are added (a strided clip's neighbours are neighbours).
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Iterable, Sequence

import numpy as np

from ..detect.base import SIDES, Detections, HandDet
from ..errors import CaptureError

MAX_HANDS = 2  # one right and one left hand per frame
_DROP = -1  # `Tracker._match`: the detection is not kept (more detections than hands)


@dataclasses.dataclass(frozen=True)
class HandTrack:
    """One hand's keypoints over the clip (T frames; zeros where ``detected`` is False).

    Fields:
        side: "right" or "left" (ordinary, non-mirrored picture).
        detected: (T,) bool, the hand was found in the frame.
        score: (T,) float32, the detection's label confidence (`HandDet.score`), 0 where absent.
        landmarks_px: (T, 21, 2) float32, pixels, MediaPipe joint order.
        landmarks_z: (T, 21) float32, MediaPipe normalised relative depth.
        world: (T, 21, 3) float32, metres, MediaPipe world landmarks.
        label_agreement: float in [0, 1], share of detected frames whose own label said ``side``.
    """

    side: str
    detected: np.ndarray
    score: np.ndarray
    landmarks_px: np.ndarray
    landmarks_z: np.ndarray
    world: np.ndarray
    label_agreement: float


@dataclasses.dataclass(frozen=True)
class TrackResult:
    """Hands of a clip, one `HandTrack` per side ever seen ("right" first).

    Also a read-only mapping side -> `HandTrack`: ``"left" in result``, ``result["right"]``,
    ``result.items()``, ``len(result)`` (hands found; 0 is falsy).

    Fields:
        frame_index: (T,) int64, source frame index of each added frame.
        hands: tuple of `HandTrack`, sides in `SIDES` order, only sides that were detected.
    """

    frame_index: np.ndarray
    hands: tuple[HandTrack, ...]

    @property
    def sides(self) -> tuple[str, ...]:
        return tuple(h.side for h in self.hands)

    def __len__(self) -> int:
        return len(self.hands)

    def __iter__(self):
        return iter(self.sides)

    def __contains__(self, side) -> bool:
        return side in self.sides

    def __getitem__(self, side: str) -> HandTrack:
        for h in self.hands:
            if h.side == side:
                return h
        raise KeyError(side)

    def keys(self) -> tuple[str, ...]:
        return self.sides

    def values(self) -> tuple[HandTrack, ...]:
        return self.hands

    def items(self) -> tuple[tuple[str, HandTrack], ...]:
        return tuple((h.side, h) for h in self.hands)

    @property
    def n_frames(self) -> int:
        return int(self.frame_index.shape[0])

    def hand(self, side: str) -> HandTrack:
        """The track of ``side``; raises CaptureError when that hand was never detected."""
        if side in self.sides:
            return self[side]
        raise CaptureError(f"no {side} hand was detected in this clip (hands: {', '.join(self.sides) or 'none'})")


@dataclasses.dataclass
class _Tracklet:
    id: int
    first: int  # frame position of the first and last detection
    last: int
    landmarks: np.ndarray  # (21, 2) last landmarks, pixels
    velocity: np.ndarray  # (2,) pixels per frame, smoothed
    size: float  # hand size, pixels (landmark bounding-box diagonal, smoothed)
    votes: float = 0.0  # sum of (2 * p_right - 1)
    n: int = 0


def _hand_size(lms: np.ndarray) -> float:
    return float(np.linalg.norm(lms.max(0) - lms.min(0)))


class Tracker:
    """Streaming hand identity: ``update`` with each frame's detections in order, then ``finish`` once.

    Args:
        max_gap: frames a tracklet survives without a match (then a returning hand starts a new one).
        gate: largest mean landmark distance, in hand sizes, for a detection to continue a tracklet
            one frame later (grows by 25 % per extra frame of gap, up to 3x).
        label_weight: how much label agreement lowers the matching cost (in hand sizes); small, so
            labels only break near-ties of position.
        duplicate_dist: detections closer than this (hand sizes) are one hand seen twice.
    """

    def __init__(self, max_gap: int = 15, gate: float = 1.0, label_weight: float = 0.1,
                 duplicate_dist: float = 0.25):
        self.max_gap = int(max_gap)
        self.gate = float(gate)
        self.label_weight = float(label_weight)
        self.duplicate_dist = float(duplicate_dist)
        self._frame_index: list[int] = []
        self._assigned: list[list[tuple[int, HandDet]]] = []  # per frame: (tracklet id, detection)
        self._active: list[_Tracklet] = []
        self._done: list[_Tracklet] = []
        self._next_id = 0

    # -- online part -------------------------------------------------------------------------------
    def update(self, frame: Detections | Sequence[HandDet], frame_index: int | None = None) -> None:
        """Add the next frame: a `Detections`, or a sequence of `HandDet` (``frame_index`` defaults to a count)."""
        if isinstance(frame, Detections):
            hands, index = list(frame.hands), frame.frame_index
        else:
            hands, index = list(frame), (len(self._frame_index) if frame_index is None else frame_index)
        t = len(self._frame_index)
        self._frame_index.append(int(index))
        for k in [k for k in self._active if t - k.last > self.max_gap]:
            self._active.remove(k)
            self._done.append(k)
        dets = self._dedupe(hands)
        match = self._match(dets, t)
        # unmatched detections start tracklets; make room by ending unmatched ones, stalest first
        used = {m for m in match if m is not None and m != _DROP}
        free = sorted((k for k in self._active if k.id not in used), key=lambda k: k.last)
        new = sum(m is None for m in match)
        while len(self._active) + new > 2 and free:
            k = free.pop(0)
            self._active.remove(k)
            self._done.append(k)
        out = []
        for det, m in zip(dets, match):
            if m == _DROP:
                continue
            if m is None:
                k = _Tracklet(self._next_id, t, t, det.landmarks_px.astype(np.float32), np.zeros(2, np.float32),
                              _hand_size(det.landmarks_px))
                self._next_id += 1
                self._active.append(k)
            else:
                k = next(k for k in self._active if k.id == m)
                gap = t - k.last
                step = (det.landmarks_px.mean(0) - k.landmarks.mean(0)) / gap
                k.velocity = 0.5 * k.velocity + 0.5 * step if k.n > 1 else step
                k.size = 0.7 * k.size + 0.3 * _hand_size(det.landmarks_px)
                k.landmarks = det.landmarks_px.astype(np.float32)
                k.last = t
            k.votes += 2.0 * det.p_right - 1.0
            k.n += 1
            out.append((k.id, det))
        self._assigned.append(out)

    def _dedupe(self, hands: list[HandDet]) -> list[HandDet]:
        hands = sorted(hands, key=lambda h: -h.score)
        keep: list[HandDet] = []
        for h in hands:
            size = max(_hand_size(h.landmarks_px), 1.0)
            if all(np.linalg.norm(h.landmarks_px - o.landmarks_px, axis=1).mean() / size >= self.duplicate_dist
                   for o in keep):
                keep.append(h)
        return keep

    def _match(self, dets: list[HandDet], t: int) -> list[int | None]:
        """Tracklet id, None (starts a tracklet) or ``_DROP`` for each detection: the cheapest partial
        matching that keeps min(len(dets), MAX_HANDS) detections (fewest new tracklets first, then the
        lowest cost, then the highest label scores)."""
        if not dets:
            return []
        tracks = self._active
        cost = np.full((len(dets), len(tracks)), np.inf)
        for j, k in enumerate(tracks):
            gap = t - k.last
            gate = self.gate * min(1.0 + 0.25 * (gap - 1), 3.0)
            pred = k.landmarks + k.velocity * gap
            belief = np.tanh(k.votes / 3.0)
            for i, d in enumerate(dets):
                size = max(k.size, _hand_size(d.landmarks_px), 1.0)
                dist = float(np.linalg.norm(d.landmarks_px - pred, axis=1).mean()) / size
                if dist < gate:
                    cost[i, j] = dist - self.label_weight * belief * (2.0 * d.p_right - 1.0)
        keep = min(len(dets), MAX_HANDS)
        options = range(-2 if len(dets) > keep else -1, len(tracks))  # -2 drop, -1 new, else a tracklet
        best, best_cost = [None] * len(dets), (len(dets) + 1, np.inf, 0.0)
        for choice in itertools.product(options, repeat=len(dets)):
            taken = [c for c in choice if c >= 0]
            if (sum(c >= -1 for c in choice) != keep or len(taken) != len(set(taken))
                    or any(c >= 0 and not np.isfinite(cost[i, c]) for i, c in enumerate(choice))):
                continue
            # fewest new tracklets first, then the lowest cost, then the surest labels
            key = (sum(c == -1 for c in choice), sum(cost[i, c] for i, c in enumerate(choice) if c >= 0),
                   -sum(dets[i].score for i, c in enumerate(choice) if c >= -1))
            if key < best_cost:
                best_cost, best = key, [tracks[c].id if c >= 0 else (None if c == -1 else _DROP) for c in choice]
        return best

    # -- final part --------------------------------------------------------------------------------
    def _sides(self) -> dict[int, str]:
        """Side of every tracklet (see module docstring, step 2)."""
        tracklets = self._done + self._active
        n = len(tracklets)
        adj: list[set[int]] = [set() for _ in range(n)]
        for a, b in itertools.combinations(range(n), 2):
            ta, tb = tracklets[a], tracklets[b]
            if ta.first <= tb.last and tb.first <= ta.last:
                adj[a].add(b)
                adj[b].add(a)
        colour = [0] * n  # +1 right, -1 left
        isolated_votes = sum(k.votes for i, k in enumerate(tracklets) if not adj[i])
        for root in range(n):
            if colour[root]:
                continue
            if not adj[root]:
                k = tracklets[root]
                clear = k.n >= 15 and abs(k.votes) / k.n >= 0.6
                v = k.votes if clear else (isolated_votes if isolated_votes else k.votes)
                colour[root] = 1 if v >= 0 else -1
                continue
            colour[root], stack, comp = 1, [root], [root]
            while stack:  # 2-colour the overlap group (at most two hands at once: a forest)
                a = stack.pop()
                for b in adj[a]:
                    if not colour[b]:
                        colour[b] = -colour[a]
                        stack.append(b)
                        comp.append(b)
            if sum(colour[i] * tracklets[i].votes for i in comp) < 0:
                for i in comp:
                    colour[i] = -colour[i]
        return {k.id: ("right" if c > 0 else "left") for k, c in zip(tracklets, colour)}

    def finish(self) -> TrackResult:
        """The tracks of every frame added so far, one `HandTrack` per side detected."""
        side_of = self._sides()
        T = len(self._frame_index)
        hands = []
        for side in SIDES:
            rows = [(t, det) for t, frame in enumerate(self._assigned) for tid, det in frame if side_of[tid] == side]
            if not rows:
                continue
            ts = np.array([t for t, _ in rows], np.int64)
            detected = np.zeros(T, bool)
            score = np.zeros(T, np.float32)
            px = np.zeros((T, 21, 2), np.float32)
            z = np.zeros((T, 21), np.float32)
            world = np.zeros((T, 21, 3), np.float32)
            detected[ts] = True
            score[ts] = [d.score for _, d in rows]
            px[ts] = np.stack([d.landmarks_px for _, d in rows])
            z[ts] = np.stack([d.landmarks_z for _, d in rows])
            world[ts] = np.stack([d.world for _, d in rows])
            agree = float(np.mean([d.side == side for _, d in rows]))
            hands.append(HandTrack(side, detected, score, px, z, world, agree))
        return TrackResult(np.asarray(self._frame_index, np.int64), tuple(hands))


def track_hands(frames: Iterable[Detections | Sequence[HandDet]], **options) -> TrackResult:
    """Hand tracks of a whole clip: `Tracker` (``options`` are its arguments) over ``frames`` in order.

    Args:
        frames: per frame a `Detections` or a sequence of 0-2 `HandDet`.
    Returns:
        TrackResult with (T,) / (T, 21, ...) arrays per side.
    """
    tracker = Tracker(**options)
    for frame in frames:
        tracker.update(frame)
    return tracker.finish()
