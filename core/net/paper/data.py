"""Training data of the paper's network: the project's own renders (`core.net.synth`) -> cached crop features.

Only folders written by ``python -m core.net.synth`` are read (`check_synth_chunk`: its ``meta.json`` must name
the project's generator and the labels the synth keys; a research set's folder is refused with one line).

Per image (slot 0, the hand the render is framed on), `chunk_features` cuts the crops the landmark network
sees, runs the FROZEN trunk of MediaPipe's landmark network (the torch port, `core.detect.torch_hands`) once
and keeps its pooled 1152-d feature, so training never touches an image again:

* training chunks: ``jitters`` crops from the label ROI (the tracker's ROI of the true landmarks,
  `core.net.synth.labels.landmark_roi`) shifted, scaled and turned a little, as a tracker's ROI would be;
  every second one also recoloured (`photometric`);
* held-out chunks: one such crop per image (fixed seed), the same for every method compared: MediaPipe's
  own heads on that crop (kept: ``net_world``, ``net_screen``) are the "raw MediaPipe" row of the benchmark.
  (MediaPipe's palm detector finds few of these hands in the 224 px windows - 4 of 16 in chunk 0 - so the
  benchmark compares the methods on the tracker's crop, as in a video after the first frame.)

The network's frame (`view_rotation`): the camera turned so that the ray through the ROI's centre is +z and
the crop's x axis is +x (a "virtual camera" per crop: the same 3D seen from any place in the image looks the
same to the network); a left hand's crop is flipped left-right and its 3D mirrored in x, so the network only
ever sees right hands. Targets are wrist-relative joints (MANO-21 order) in that frame, metres.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from ...errors import CaptureError

CROP = 224
FEATURE_DIM = 1152
FEATURE_VERSION = 3
SYNTH_KEYS = ("K", "side", "present", "joints3d", "joints2d", "joints2d_mp", "roi", "rotmats", "betas", "transl",
              "mirrored", "files")
SYNTH_META = ("chunk_seed", "settings", "hand_model", "blender", "code")
MIRROR = np.diag([-1.0, 1.0, 1.0])


# ----------------------------------------------------------------------------------------------- sources

def check_synth_chunk(d: Path) -> dict:
    """The meta.json of a chunk folder written by the project's renderer; CaptureError (one line) otherwise:
    training reads nothing else (no research-set image or label)."""
    d = Path(d)
    meta_p, lab_p = d / "meta.json", d / "labels.npz"
    if not meta_p.is_file() or not lab_p.is_file():
        raise CaptureError(f"{d}: not a chunk of `python -m core.net.synth` (needs meta.json and labels.npz)")
    try:
        meta = json.loads(meta_p.read_text())
    except (OSError, ValueError) as exc:
        raise CaptureError(f"{meta_p}: unreadable ({exc})") from None
    if not isinstance(meta, dict) or not all(k in meta for k in SYNTH_META):
        raise CaptureError(f"{meta_p}: not written by core.net.synth (needs {', '.join(SYNTH_META)})")
    with np.load(lab_p) as z:
        missing = [k for k in SYNTH_KEYS if k not in z.files]
    if missing:
        raise CaptureError(f"{lab_p}: not core.net.synth labels (missing {', '.join(missing)})")
    return meta


def synth_chunks(root: Path) -> list[Path]:
    """Complete chunk folders under a `core.net.synth` output folder, in order; each checked."""
    root = Path(root)
    if not root.is_dir():
        raise CaptureError(f"{root}: no such folder (render it with `python -m core.net.synth --out {root}`)")
    out = sorted(p for p in root.glob("chunk_[0-9][0-9][0-9][0-9]") if p.is_dir())
    for p in out:
        check_synth_chunk(p)
    return out


def chunk_number(d: Path) -> int:
    return int(Path(d).name.split("_")[1])


# ------------------------------------------------------------------------------------------- geometry

def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    if c < -1 + 1e-9:
        return np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def view_rotation(roi: np.ndarray, K: np.ndarray, left: bool) -> np.ndarray:
    """(3, 3) rotation (a reflection for a left hand) from the camera frame to the network's frame of a crop:
    the ROI centre's ray onto +z, then the crop's x axis onto +x; mirrored in x for a left hand."""
    ray = np.linalg.solve(np.asarray(K, np.float64), np.array([roi[0], roi[1], 1.0]))
    r1 = _rotation_between(ray, np.array([0.0, 0.0, 1.0]))
    a = float(roi[3])
    rz = np.array([[math.cos(a), math.sin(a), 0.0], [-math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
    r = rz @ r1
    return MIRROR @ r if left else r


def roi5(roi: np.ndarray) -> np.ndarray:
    """(cx, cy, size, angle) -> the torch port's pixel roi (cx, cy, w, h, rot)."""
    return np.array([roi[0], roi[1], roi[2], roi[2], roi[3]], np.float32)


def crop_points(points: np.ndarray, roi: np.ndarray, left: bool) -> np.ndarray:
    """Image pixels (..., 2) -> the crop's normalised coordinates (-1..1 across the crop; flipped for a left
    hand), as the network sees them."""
    from ...detect.torch_hands.pipeline import crop_matrix

    m = crop_matrix(roi5(roi), CROP)
    p = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], -1) @ m.T
    c = p[..., :2] / p[..., 2:3]
    c = (c - (CROP - 1) / 2) / (CROP / 2)
    if left:
        c[..., 0] = -c[..., 0]
    return c


def crop_image(bgr: np.ndarray, roi: np.ndarray, left: bool) -> np.ndarray:
    """(224, 224, 3) float32 RGB 0..1 crop the landmark network sees (edge pixels replicated, as MediaPipe);
    flipped left-right for a left hand."""
    from ...detect.torch_hands.pipeline import crop_cv2

    c = crop_cv2(bgr, roi5(roi), CROP, border_zero=False)[:, :, ::-1]
    if left:
        c = c[:, ::-1]
    return np.ascontiguousarray(c, dtype=np.float32) * np.float32(1.0 / 255.0)


def jitter_roi(roi: np.ndarray, rng: np.random.Generator, shift: float = 0.06, scale: float = 0.1,
               turn_deg: float = 10.0) -> np.ndarray:
    """A tracker-like ROI near ``roi``: centre moved up to ``shift`` of the side, side times exp(+-scale),
    angle +- ``turn_deg``."""
    out = np.array(roi, np.float64)
    out[:2] += rng.uniform(-shift, shift, 2) * roi[2]
    out[2] *= math.exp(rng.uniform(-scale, scale))
    out[3] += math.radians(rng.uniform(-turn_deg, turn_deg))
    return out


def photometric(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A crop (224, 224, 3) RGB 0..1 with random colour, gamma, contrast, grey and blur (real cameras differ
    from the renderer more than the renders differ from each other)."""
    x = crop * rng.uniform(0.75, 1.25, 3).astype(np.float32)  # white balance / exposure
    x = np.clip(x, 0.0, 1.0) ** np.float32(rng.uniform(0.7, 1.4))
    m = x.mean()
    x = (x - m) * np.float32(rng.uniform(0.7, 1.3)) + m + np.float32(rng.uniform(-0.08, 0.08))
    if rng.random() < 0.1:
        x = np.repeat(x.mean(-1, keepdims=True), 3, -1)
    if rng.random() < 0.2:
        import cv2

        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.5, 1.5)))
    return np.ascontiguousarray(np.clip(x, 0.0, 1.0), dtype=np.float32)


def crop_roi(landmarks_px: np.ndarray) -> np.ndarray:
    """The ROI (cx, cy, size, angle) the network's crop is cut from, of 2D landmarks (21, 2) in MediaPipe order
    (pixel centres): the tracker's ROI (`core.net.synth.labels.landmark_roi`)."""
    from ..synth.labels import landmark_roi

    return landmark_roi(np.asarray(landmarks_px, np.float64))


# ------------------------------------------------------------------------------------------- trunk

class Trunk:
    """The frozen trunk of MediaPipe's landmark network (torch port): crops (N, 224, 224, 3) RGB 0..1 ->
    pooled features (N, 1152) and the network's own heads (screen landmarks (N, 63), world (N, 63))."""

    def __init__(self, threads: int = 1):
        import torch

        from ...detect.torch_hands.net import TFLiteNet, cached_spec

        spec = dict(cached_spec("landmark"))
        mean = [s for s in spec["steps"] if s["kind"] == "MEAN"]
        if len(mean) != 1:
            raise CaptureError("unexpected landmark graph: expected one global pooling before the heads")
        self.feature_index = mean[0]["out"]
        names = spec["output_names"]
        self.outputs = list(spec["outputs"])
        spec["outputs"] = [self.feature_index] + self.outputs
        self.net = TFLiteNet(spec).eval().to(memory_format=torch.channels_last)
        self.threads = threads
        self.sha = spec.get("sha256", "")
        self._names = names

    def __call__(self, crops: np.ndarray) -> dict:
        import torch

        old = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(crops, np.float32)).permute(0, 3, 1, 2)
                feat, lm, _presence, _handed, world = self.net(x)
        finally:
            torch.set_num_threads(old)
        return {"feature": feat.reshape(len(crops), -1).numpy(), "screen": lm.reshape(len(crops), 63).numpy(),
                "world": world.reshape(len(crops), 63).numpy()}


# ------------------------------------------------------------------------------------------- features

def _read_bgr(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise CaptureError(f"cannot read {path}")
    return img


def chunk_features(d: Path, held_out: bool, jitters: int = 4, seed: int = 0, trunk: Trunk | None = None) -> dict:
    """Features and targets of one synth chunk (slot 0 of every image); see the module docstring."""
    meta = check_synth_chunk(d)
    trunk = trunk or Trunk()
    z = dict(np.load(Path(d) / "labels.npz"))
    n = len(z["files"])
    rng = np.random.default_rng([seed, chunk_number(d)])
    rows = {k: [] for k in ("image", "roi", "view", "left", "target", "crop2d")}
    crops, plain = [], []
    for i in range(n):
        if not z["present"][i, 0]:
            continue
        left = bool(z["side"][i, 0] == 1)
        K = z["K"][i]
        j3 = z["joints3d"][i, 0]
        bgr = _read_bgr(Path(d) / str(z["files"][i]))
        for rep in range(1 if held_out else jitters):
            roi = jitter_roi(z["roi"][i, 0], rng)
            view = view_rotation(roi, K, left)
            rows["image"].append(i)
            rows["roi"].append(roi)
            rows["view"].append(view)
            rows["left"].append(left)
            rows["target"].append((j3 - j3[0]) @ view.T)
            rows["crop2d"].append(crop_points(z["joints2d"][i, 0], roi, left))
            crop = crop_image(bgr, roi, left)
            crops.append(photometric(crop, rng) if rep % 2 == 1 else crop)
            if held_out:  # MediaPipe's own reading of the crop as the product cuts it (not flipped)
                plain.append(crop_image(bgr, roi, False) if left else None)
    feats = {"feature": np.zeros((0, FEATURE_DIM), np.float32), "screen": np.zeros((0, 63), np.float32),
             "world": np.zeros((0, 63), np.float32)}
    if crops:
        parts = [trunk(np.stack(crops[k:k + 16])) for k in range(0, len(crops), 16)]
        feats = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out = {k: np.asarray(v) for k, v in rows.items()}
    if held_out:  # mp_world / mp_screen: MediaPipe's heads on the unflipped crop (21, 3) each, crop frame
        mw, ms = feats["world"].copy(), feats["screen"].copy()
        left_rows = [k for k, c in enumerate(plain) if c is not None]
        if left_rows:
            o = trunk(np.stack([plain[k] for k in left_rows]))
            mw[left_rows], ms[left_rows] = o["world"], o["screen"]
        out.update(mp_world=mw.reshape(-1, 21, 3), mp_screen=ms.reshape(-1, 21, 3))
    out.update(feature=feats["feature"].astype(np.float16), net_world=feats["world"].astype(np.float32),
               net_screen=feats["screen"].astype(np.float32),
               chunk=np.full(len(out["image"]), chunk_number(d), np.int64), held_out=np.bool_(held_out),
               trunk_sha256=np.str_(trunk.sha), labels_sha256=np.str_(file_sha(Path(d) / "labels.npz")),
               feature_version=np.int64(FEATURE_VERSION), synth_commit=np.str_(str(meta.get("code", ""))))
    return out


def file_sha(p: Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()[:16]


def cache_features(synth: Path, cache: Path, held_out: set[int], jitters: int = 4, seed: int = 0, log=print) -> list[Path]:
    """`chunk_features` of every complete chunk of ``synth`` into ``cache/feat_NNNN.npz`` (resumable: a file whose
    labels' hash still matches is kept); returns the files."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    trunk = None
    files = []
    for d in synth_chunks(synth):
        c = chunk_number(d)
        f = cache / f"feat_{c:04d}.npz"
        files.append(f)
        if f.is_file():
            try:
                with np.load(f) as z:
                    if str(z["labels_sha256"]) == file_sha(d / "labels.npz") and \
                            int(z["feature_version"]) == FEATURE_VERSION and bool(z["held_out"]) == (c in held_out):
                        continue
            except Exception:  # noqa: BLE001 - a torn file is made again
                pass
        trunk = trunk or Trunk()
        import time

        t0 = time.time()
        out = chunk_features(d, c in held_out, jitters, seed, trunk)
        tmp = cache / f".feat_{c:04d}.tmp.npz"
        np.savez(tmp, **out)
        tmp.replace(f)
        log(f"features: chunk {c} ({'held out' if c in held_out else 'train'}): {len(out['image'])} crops in "
            f"{time.time() - t0:.1f} s")
    return files


def load_features(files: list[Path], held_out: bool | None = None) -> dict:
    """The cached chunks concatenated (only those with held_out as asked, None: all)."""
    parts = []
    for f in files:
        with np.load(f) as z:
            if held_out is not None and bool(z["held_out"]) != held_out:
                continue
            parts.append({k: z[k] for k in z.files if z[k].ndim > 0})
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
