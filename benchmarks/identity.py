"""Hand identity over the WHOLE of two_hands.mp4 (500 frames, tracking mode, 2 hands).

The capture's identity step (`core.solve.track.Tracker` over MediaPipe's per-frame detections, the same
detector settings as `core.capture.run_capture`) is run here in-process so that every frame's raw
detections and their handedness labels are at hand; then the clip written by the CLI
(``python -m core capture two_hands.mp4``) is checked to hold the very same tracks. Measured on
every frame:

* jumps: per track, the frame-to-frame move of the landmark centroid in hand sizes per frame of gap.
  A swap moves a track onto the other hand, about the inter-hand distance in one frame;
* swap test: at every step where both tracks are seen on this and their previous frame, the mean
  landmark distance of the tracks' own assignment vs the crossed one (each track to the other's
  previous landmarks). Crossed cheaper than own = a suspected swap (own assignment discontinuous,
  swapped continuous);
* labels: frames where MediaPipe's own per-frame label disagrees with the track's side (one track,
  or both at once = MediaPipe swapped both labels);
* same hand: frames where both tracks sit on one hand (landmark centroids < 0.15 hand sizes apart;
  two distinct hands side by side or palm to palm are >= 0.4 apart here);
* lost: runs of frames where a track has no detection; frames where MediaPipe returned more than two
  hands, and detections that no track holds.

Contact sheets (look at them): every 25th frame with the two tracks' landmarks drawn (right red,
left blue; per track the side, with MediaPipe's own label in brackets), and a sheet of the frames
around every flagged event (largest jumps, label disagreements, returns after a loss).

Usage: python -m benchmarks.identity [--video PATH] [--every 25] [--no-capture] [--out out/identity]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, need_data

JUMP = 0.6  # hand sizes per frame: larger is flagged (a swap jumps by about the inter-hand distance)
SAME_HAND = 0.15  # hand sizes between the two tracks' landmark centroids: closer = one hand
COLOURS = {"right": (40, 40, 230), "left": (230, 120, 20)}  # BGR
BONES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
         (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20)]


def detect_and_track(path, hands: int = 2, min_confidence: float = 0.5, start: int = 0, end: int | None = None):
    """MediaPipe in tracking mode + `Tracker`, as `core.capture.run_capture` runs them.

    Returns (list of `Detections`, `TrackResult`, image size (W, H), fps).
    """
    from core.detect import Detections, create_detector
    from core.solve.track import Tracker
    from core.io.video import open_video

    src = open_video(path, start=start, end=end)
    tracker = Tracker()
    dets = []
    with create_detector("mediapipe", static=False, max_hands=hands, min_detection_confidence=min_confidence) as det:
        for idx, frame in src:
            found = det.detect(frame, idx / src.fps)
            tracker.update(found, idx)
            dets.append(Detections(int(idx), idx / src.fps, (src.width, src.height), tuple(found)))
    return dets, tracker.finish(), (src.width, src.height), float(src.fps)


def own_labels(dets, tracks) -> dict[str, np.ndarray]:
    """Per side (T,) str: MediaPipe's own label of the detection the track holds on each frame ("" where none)."""
    out = {}
    for side, tr in tracks.items():
        lab = np.full(len(dets), "", dtype="<U5")
        for t, d in enumerate(dets):
            if tr.detected[t]:
                hit = [h.side for h in d.hands if np.array_equal(h.landmarks_px, tr.landmarks_px[t])]
                lab[t] = hit[0] if hit else "?"
        out[side] = lab
    return out


def _size(lms: np.ndarray) -> np.ndarray:
    return np.linalg.norm(lms.max(-2) - lms.min(-2), axis=-1)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of True."""
    m = np.r_[False, np.asarray(mask, bool), False].astype(int)
    d = np.diff(m)
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0] - 1))


def measure(dets, tracks) -> dict:
    """Every identity figure of the module docstring; frame positions are clip positions (= source frames here)."""
    T = tracks.n_frames
    out = {"frames": T, "sides": tracks.sides, "n_dets": np.array([len(d.hands) for d in dets])}
    labels = own_labels(dets, tracks)
    held = [sum(any(tr.detected[t] and np.array_equal(h.landmarks_px, tr.landmarks_px[t]) for tr in tracks.values())
                for h in d.hands) for t, d in enumerate(dets)]
    out["unheld"] = np.nonzero(out["n_dets"] > np.asarray(held))[0]
    per = {}
    for side, tr in tracks.items():
        t = np.nonzero(tr.detected)[0]
        c = tr.landmarks_px[t].mean(1)
        size = _size(tr.landmarks_px[t])
        jumps = np.linalg.norm(np.diff(c, axis=0), axis=1) / size[1:] / np.diff(t)
        lab = labels[side]
        per[side] = {
            "detected": int(tr.detected.sum()),
            "label_agreement": tr.label_agreement,
            "jump_frames": t[1:],
            "jumps": jumps,
            "flagged": t[1:][jumps > JUMP],
            "disagree": np.nonzero(tr.detected & (lab != side))[0],
            "unmatched_label": int((lab == "?").sum()),
            "lost_runs": _runs(~tr.detected),
        }
    out["per"] = per
    out["labels"] = labels
    if len(tracks) == 2:
        r, l_ = tracks["right"], tracks["left"]
        both = r.detected & l_.detected
        size = np.maximum(_size(r.landmarks_px), _size(l_.landmarks_px))
        dist = np.linalg.norm(r.landmarks_px.mean(1) - l_.landmarks_px.mean(1), axis=-1) / np.maximum(size, 1.0)
        out["both"] = int(both.sum())
        out["same_hand"] = np.nonzero(both & (dist < SAME_HAND))[0]
        out["min_sep"] = (float(dist[both].min()), int(np.nonzero(both)[0][dist[both].argmin()])) if both.any() else None
        # swap test: own vs crossed assignment between consecutive frames where both are seen
        steps = np.nonzero(both[1:] & both[:-1])[0] + 1
        d = lambda a, b: np.linalg.norm(a - b, axis=-1).mean(-1)  # noqa: E731
        own = (d(r.landmarks_px[steps], r.landmarks_px[steps - 1]) + d(l_.landmarks_px[steps], l_.landmarks_px[steps - 1]))
        crossed = (d(r.landmarks_px[steps], l_.landmarks_px[steps - 1]) + d(l_.landmarks_px[steps], r.landmarks_px[steps - 1]))
        ratio = own / np.maximum(crossed, 1e-9)  # < 1: own assignment is the continuous one
        out["swap_steps"] = steps
        out["swap_ratio"] = ratio
        out["swaps"] = steps[ratio >= 1.0]
        out["both_disagree"] = np.nonzero(both & (labels["right"] == "left") & (labels["left"] == "right"))[0]
    return out


def _draw(frame, tracks, labels, t: int, width: int):
    import cv2

    scale = width / frame.shape[1]
    img = cv2.resize(frame, (width, int(round(frame.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    lines = []
    for side, tr in tracks.items():
        if not tr.detected[t]:
            lines.append((f"{side[0].upper()}: -", COLOURS[side]))
            continue
        p = tr.landmarks_px[t] * scale
        for a, b in BONES:
            cv2.line(img, tuple(np.round(p[a]).astype(int)), tuple(np.round(p[b]).astype(int)), COLOURS[side], 2, cv2.LINE_AA)
        for q in p:
            cv2.circle(img, tuple(np.round(q).astype(int)), 2, (255, 255, 255), -1, cv2.LINE_AA)
        tag = side[0].upper()
        cv2.putText(img, tag, tuple(np.round(p[0] + (4, 14)).astype(int)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 3)
        cv2.putText(img, tag, tuple(np.round(p[0] + (4, 14)).astype(int)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, COLOURS[side], 2)
        lines.append((f"{tag}: {side} (mp {labels[side][t] or '-'})", COLOURS[side]))
    head = np.full((20 + 18 * len(lines), img.shape[1], 3), 255, np.uint8)
    cv2.putText(head, f"frame {t}", (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for k, (text, col) in enumerate(lines):
        cv2.putText(head, text, (4, 33 + 18 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5, col, 1, cv2.LINE_AA)
    img = np.concatenate([head, img])
    return img


def contact_sheet(path, frames, tracks, labels, out: Path, cols: int = 5, width: int = 400) -> Path:
    """PNG grid of ``frames`` (clip positions) of video ``path`` with both tracks drawn."""
    import cv2

    from core.io.video import open_video

    want = sorted(set(int(f) for f in frames))
    tiles = {}
    src = open_video(path, start=0, end=max(want) + 1)
    pos = {int(i): k for k, i in enumerate(tracks.frame_index)}
    for idx, frame in src:
        t = pos.get(int(idx))
        if t in want:
            tiles[t] = _draw(frame, tracks, labels, t, width)
    imgs = [tiles[t] for t in want if t in tiles]
    h, w = max(i.shape[0] for i in imgs), imgs[0].shape[1]
    rows = -(-len(imgs) // cols)
    sheet = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for k, img in enumerate(imgs):
        r, c = divmod(k, cols)
        sheet[r * h:r * h + img.shape[0], c * w:(c + 1) * w] = img
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet)
    return out


def check_clip(clip_path: Path, tracks) -> str:
    """Does the CLI's clip file hold the same tracks (sides, detected frames, landmarks)?"""
    from core.io.clip import load_clip

    c = load_clip(clip_path)
    if tuple(c.sides) != tracks.sides:
        return f"DIFFERENT sides: clip {c.sides}, tracker {tracks.sides}"
    det = np.stack([tracks[s].detected for s in c.sides])
    if not np.array_equal(c.detected, det):
        return f"DIFFERENT detected frames ({int((c.detected != det).sum())} differ)"
    px = np.stack([tracks[s].landmarks_px for s in c.sides]) - 0.5
    diff = float(np.abs(np.where(det[..., None, None], c.landmarks_px - px, 0)).max())
    return f"same sides, detected frames and 2D landmarks (max difference {diff:.2g} px)"


def _list(a, n: int = 30) -> str:
    a = [int(x) for x in a]
    return ", ".join(map(str, a[:n])) + (f", ... ({len(a)} in all)" if len(a) > n else "") if a else "none"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", help="video (default: shared data video/two_hands.mp4)")
    ap.add_argument("--every", type=int, default=25, help="contact sheet: every N-th frame (default 25)")
    ap.add_argument("--out", default=str(ROOT / "out" / "identity"), help="output folder")
    ap.add_argument("--no-capture", action="store_true", help="skip the CLI capture and its check")
    a = ap.parse_args(argv)
    video = Path(a.video) if a.video else need_data("video/two_hands.mp4")
    out = Path(a.out)
    t0 = time.perf_counter()
    dets, tracks, (w, h), fps = detect_and_track(video)
    det_s = time.perf_counter() - t0
    m = measure(dets, tracks)
    T = m["frames"]
    n_dets = m["n_dets"]
    print(f"{video.name}: {T} frames {w}x{h}, detection + tracking {det_s:.0f} s; detections per frame: "
          f"0: {int((n_dets == 0).sum())}, 1: {int((n_dets == 1).sum())}, 2: {int((n_dets == 2).sum())}, "
          f"3+: {int((n_dets > 2).sum())} ({_list(np.nonzero(n_dets > 2)[0])})")
    print(f"  frames with a detection no track holds (duplicates, extra hands): {_list(m['unheld'])}")
    for side, p in m["per"].items():
        print(f"  {side:5s} track: detected {p['detected']}/{T} frames, MediaPipe label agrees on "
              f"{p['label_agreement'] * 100:.1f} %; largest jump {p['jumps'].max():.2f} hand sizes/frame "
              f"(frame {int(p['jump_frames'][p['jumps'].argmax()])}), jumps > {JUMP}: {_list(p['flagged'])}")
        print(f"        lost runs (first-last): {', '.join(f'{a_}-{b_}' for a_, b_ in p['lost_runs']) or 'none'};"
              f"  frames whose own label says otherwise: {_list(p['disagree'])}")
    if "both" in m:
        print(f"  both hands seen on {m['both']} frames; centroids closest {m['min_sep'][0]:.2f} hand sizes apart (frame "
              f"{m['min_sep'][1]}); both tracks on one hand (< {SAME_HAND}): {_list(m['same_hand'])}")
        r = m["swap_ratio"]
        print(f"  swap test over {len(m['swap_steps'])} consecutive two-hand steps: own / crossed assignment distance "
              f"max {r.max():.2f} (frame {int(m['swap_steps'][r.argmax()])}), median {np.median(r):.3f};"
              f" steps where crossed is cheaper (swaps): {_list(m['swaps'])}")
        print(f"  frames where MediaPipe labels both hands the other way round: {_list(m['both_disagree'])}")
    swaps = set(m.get("swaps", [])) | {int(f) for p in m["per"].values() for f in p["flagged"]}
    print(f"  identity swaps found: {len(m.get('swaps', []))} (swap test), {sum(len(p['flagged']) for p in m['per'].values())}"
          f" jumps > {JUMP} hand sizes/frame")
    sheet = contact_sheet(video, range(0, T, a.every), tracks, m["labels"], out / "contact_sheet.png")
    print(f"  contact sheet (every {a.every}th frame): {sheet}")
    events = set(swaps)
    for side, p in m["per"].items():
        events |= {int(p["jump_frames"][p["jumps"].argmax()])}
        events |= {int(b_) + 1 for _, b_ in p["lost_runs"] if b_ + 1 < T}
        events |= {int(f) for f in p["disagree"]}
    events |= {int(f) for f in m.get("same_hand", [])} | {int(f) for f in np.nonzero(n_dets > 2)[0]}
    if events:
        ev = sorted(events)
        if len(ev) > 20:  # keep the sheet readable: an even spread
            ev = [ev[int(k)] for k in np.linspace(0, len(ev) - 1, 20).round()]
        sheet2 = contact_sheet(video, ev, tracks, m["labels"], out / "events.png")
        print(f"  event frames {_list(ev)}: {sheet2}")
    if not a.no_capture:
        clip = out / f"{video.stem}.npz"
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "core", "capture", str(video), "--out", str(clip), "--quiet"],
                           cwd=ROOT, capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"capture failed: {r.stderr[-2000:]}")
        print(f"  CLI capture ({time.perf_counter() - t0:.0f} s) {clip}: {check_clip(clip, tracks)}")


if __name__ == "__main__":
    main()
