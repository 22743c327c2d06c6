"""Hand identity over a clip: per-frame detections (0-2 hands) -> hand slots ("right", "left"; two
slots may share a side when two people's same-side hands are seen together).

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
   A scene cut (`Tracker.cut`) ends every tracklet: no identity reaches across it.
2. At the end, tracklets shorter than ``min_frames`` are dropped (a one-frame spurious hand during a
   fast blurred turn), then tracklets get sides from their accumulated votes (sum over frames of
   2*p_right - 1): tracklets seen at the same time are different hands and, normally, of different
   sides, so each group of overlapping tracklets is coloured right/left as a whole, choosing the
   colouring the votes favour most. Two overlapping tracklets whose detections both say the same side
   with confidence (``same_side_score``) on most of their shared frames, and share enough of them
   (``same_side_frames``: crossing hands' labels can both be wrong for a few frames), are two people's
   same-side hands: each
   keeps its own side instead of one being mirrored. A tracklet never seen beside another hand takes its
   own majority when the evidence is clear, else the majority of all such single-hand frames of its shot
   (so one hand seen alone keeps one side over the shot).
3. Tracklets of one side fill slots: the first slot of a side takes every tracklet that does not overlap
   one already in it, a second slot the rest (only same-side hands seen together need one).
   `TrackResult.pick` keeps one hand (``--hands 1``): the slot of the asked side, or the most confident
   and largest over the clip; the other hands' frames become undetected, never relabelled.

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
    """One hand slot's keypoints over the clip (T frames; zeros where ``detected`` is False).

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
    """Hands of a clip, one `HandTrack` per slot ("right" slots first; normally one per side ever seen).

    Also a read-only mapping side -> `HandTrack` (the side's first slot): ``"left" in result``,
    ``result["right"]``, ``result.items()``, ``len(result)`` (slots; 0 is falsy).

    Fields:
        frame_index: (T,) int64, source frame index of each added frame.
        hands: tuple of `HandTrack`, sides in `SIDES` order, only sides that were detected; a side has two
            slots only where two hands of that side were seen at the same time.
        cuts: frame positions (1..T-1) where a new shot starts (`Tracker.cut`); identity never crosses one.
    """

    frame_index: np.ndarray
    hands: tuple[HandTrack, ...]
    cuts: tuple[int, ...] = ()

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
        """The track of ``side`` (its first slot); raises CaptureError when that hand was never detected."""
        if side in self.sides:
            return self[side]
        raise CaptureError(f"no {side} hand was detected in this clip (hands: {', '.join(self.sides) or 'none'})")

    def pick(self, side: str | None = None) -> "TrackResult":
        """One hand over the whole clip (``--hands 1``): the slot of ``side`` with the most detected frames,
        or, without ``side``, the slot with the largest sum over frames of confidence x hand size (the most
        confident and largest hand). The other slots are left out, so their frames are simply undetected
        here. Raises CaptureError when ``side`` was never detected."""
        if side is not None:
            self.hand(side)  # one clear line when the asked side is absent
        cands = [h for h in self.hands if side is None or h.side == side]
        if len(cands) <= 1 and len(self.hands) <= 1:
            return self
        def weight(h: HandTrack) -> float:
            size = np.linalg.norm(h.landmarks_px.max(1) - h.landmarks_px.min(1), axis=-1)
            return float((h.score * size * h.detected).sum())
        best = max(cands, key=(lambda h: int(h.detected.sum())) if side is not None else weight)
        return dataclasses.replace(self, hands=(best,))


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
    shot: int = 0  # index of the shot (between scene cuts) it lies in


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
        min_frames: tracklets seen on fewer frames are dropped as spurious (1 keeps all: unrelated
            images, where each image is its own frame).
        same_side_score: two hands seen together both labelled one side with at least this confidence, on
            most of their shared frames, keep that side (two slots of one side) instead of one being
            coloured the other side...
        same_side_frames: ... when they share at least this many frames (labels of two crossing hands can
            both be wrong for a few frames; 1 for unrelated images, where one image is all there is).
    """

    def __init__(self, max_gap: int = 15, gate: float = 1.0, label_weight: float = 0.1,
                 duplicate_dist: float = 0.25, min_frames: int = 3, same_side_score: float = 0.8,
                 same_side_frames: int = 10):
        self.max_gap = int(max_gap)
        self.gate = float(gate)
        self.label_weight = float(label_weight)
        self.duplicate_dist = float(duplicate_dist)
        self.min_frames = max(1, int(min_frames))
        self.same_side_score = float(same_side_score)
        self.same_side_frames = max(1, int(same_side_frames))
        self._cuts: list[int] = []
        self._frame_index: list[int] = []
        self._assigned: list[list[tuple[int, HandDet]]] = []  # per frame: (tracklet id, detection)
        self._active: list[_Tracklet] = []
        self._done: list[_Tracklet] = []
        self._next_id = 0

    # -- online part -------------------------------------------------------------------------------
    def cut(self) -> None:
        """A scene cut before the next frame: every tracklet ends here, and nothing after it continues one
        from before (identity, side votes and the single-hand majority stay within a shot)."""
        t = len(self._frame_index)
        if t == 0 or (self._cuts and self._cuts[-1] == t):
            return
        self._done.extend(self._active)
        self._active = []
        self._cuts.append(t)

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
                              _hand_size(det.landmarks_px), shot=len(self._cuts))
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
    def _kept(self) -> list[_Tracklet]:
        """Tracklets seen on at least ``min_frames`` frames, in order of their first frame (a shot of at most
        2 x ``min_frames`` frames keeps all of its tracklets: too short to tell a spurious hand)."""
        bounds = [0, *self._cuts, len(self._frame_index)]
        shot_len = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
        return sorted((k for k in self._done + self._active
                       if k.n >= self.min_frames or shot_len[k.shot] <= 2 * self.min_frames), key=lambda k: (k.first, k.id))

    def _same_side(self, a: int, b: int, labels: dict) -> bool:
        """Tracklets ``a`` and ``b`` (seen together) are two hands of one side: detected together on at least
        ``same_side_frames`` frames, and on at least 80 % of them both labels name the same side with
        ``same_side_score`` or more."""
        la, lb = labels[a], labels[b]
        both = [t for t in la if t in lb]
        if len(both) < self.same_side_frames:
            return False
        agree = sum(la[t][0] == lb[t][0] and min(la[t][1], lb[t][1]) >= self.same_side_score for t in both)
        return agree >= 0.8 * len(both)

    def _sides(self, tracklets: list[_Tracklet]) -> dict[int, str]:
        """Side of every kept tracklet (see module docstring, step 2)."""
        n = len(tracklets)
        labels: dict[int, dict[int, tuple[str, float]]] = {k.id: {} for k in tracklets}
        for t, frame in enumerate(self._assigned):
            for tid, det in frame:
                if tid in labels:
                    labels[tid][t] = (det.side, float(det.score))
        seen_together = [False] * n
        adj: list[set[int]] = [set() for _ in range(n)]  # must be different sides
        for a, b in itertools.combinations(range(n), 2):
            ta, tb = tracklets[a], tracklets[b]
            if ta.first <= tb.last and tb.first <= ta.last:
                seen_together[a] = seen_together[b] = True
                if not self._same_side(ta.id, tb.id, labels):
                    adj[a].add(b)
                    adj[b].add(a)
        colour = [0] * n  # +1 right, -1 left
        isolated_votes: dict[int, float] = {}  # per shot
        for i, k in enumerate(tracklets):
            if not seen_together[i]:
                isolated_votes[k.shot] = isolated_votes.get(k.shot, 0.0) + k.votes
        for root in range(n):
            if colour[root]:
                continue
            if not adj[root]:
                k = tracklets[root]
                clear = seen_together[root] or (k.n >= 15 and abs(k.votes) / k.n >= 0.6)
                v = k.votes if clear else (isolated_votes.get(k.shot) or k.votes)
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

    @staticmethod
    def _slots(tracklets: list[_Tracklet], side_of: dict[int, str]) -> list[tuple[str, set[int]]]:
        """(side, tracklet ids) per slot: per side, each tracklet (by first frame) joins the first slot of its
        side where it overlaps no tracklet yet, else opens another slot of that side."""
        slots: dict[str, list[tuple[int, set[int]]]] = {s: [] for s in SIDES}  # (last frame, ids)
        for k in tracklets:
            rows = slots[side_of[k.id]]
            for j, (last, ids) in enumerate(rows):
                if last < k.first:
                    rows[j] = (k.last, ids | {k.id})
                    break
            else:
                rows.append((k.last, {k.id}))
        return [(s, ids) for s in SIDES for _, ids in slots[s]]

    def finish(self) -> TrackResult:
        """The tracks of every frame added so far, one `HandTrack` per slot (normally one per side detected)."""
        tracklets = self._kept()
        side_of = self._sides(tracklets)
        T = len(self._frame_index)
        hands = []
        for side, ids in self._slots(tracklets, side_of):
            rows = [(t, det) for t, frame in enumerate(self._assigned) for tid, det in frame if tid in ids]
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
        return TrackResult(np.asarray(self._frame_index, np.int64), tuple(hands), tuple(self._cuts))


def track_hands(frames: Iterable[Detections | Sequence[HandDet]], cuts: Iterable[int] = (), **options) -> TrackResult:
    """Hand tracks of a whole clip: `Tracker` (``options`` are its arguments) over ``frames`` in order.

    Args:
        frames: per frame a `Detections` or a sequence of 0-2 `HandDet`.
        cuts: frame positions (0-based, in ``frames``) where a new shot starts (`core.solve.cuts.find_cuts`).
    Returns:
        TrackResult with (T,) / (T, 21, ...) arrays per slot.
    """
    tracker = Tracker(**options)
    cuts = set(int(c) for c in cuts)
    for t, frame in enumerate(frames):
        if t in cuts:
            tracker.cut()
        tracker.update(frame)
    return tracker.finish()
