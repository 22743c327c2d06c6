"""Image-space augmentation of a rendered image (numpy + OpenCV): motion blur, sensor noise, JPEG.

Applied once, when a chunk is written (the JPEG step is the saved file itself); labels are unchanged by
all three. Each image's draws are recorded in the chunk's labels (blur_px, blur_angle, noise_sd,
jpeg_quality), so an image can be reproduced from its chunk's seed.
"""
from __future__ import annotations

import numpy as np


def draw(rng: np.random.Generator, n: int, settings) -> dict:
    """Per-image augmentation parameters (n,) from ``settings`` (`sample.SynthSettings`)."""
    s = settings
    blur = np.where(rng.random(n) < s.blur_prob, rng.uniform(*s.blur_px, n), 0.0)
    return {
        "blur_px": blur,
        "blur_angle": rng.uniform(0, np.pi, n),
        "noise_sd": np.where(rng.random(n) < s.noise_prob, rng.uniform(*s.noise_sd, n), 0.0),
        "noise_seed": rng.integers(0, 2 ** 31 - 1, n),
        "jpeg_quality": rng.integers(s.jpeg_quality[0], s.jpeg_quality[1] + 1, n) if s.fmt == "jpg" else np.zeros(n, np.int64),
    }


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised line kernel (k, k) float32 of ``length`` pixels at ``angle`` radians (anti-aliased ends)."""
    k = int(np.ceil(length)) | 1
    k = max(k, 3)
    c = (k - 1) / 2
    yy, xx = np.mgrid[0:k, 0:k] - c
    d = np.array([np.cos(angle), np.sin(angle)])
    along = xx * d[0] + yy * d[1]
    across = -xx * d[1] + yy * d[0]
    w = np.clip(1 - np.abs(across), 0, 1) * np.clip(length / 2 + 0.5 - np.abs(along), 0, 1)
    return (w / w.sum()).astype(np.float32)


def apply(img: np.ndarray, p: dict, i: int) -> np.ndarray:
    """Image i (H, W, 3) uint8 blurred and noised by parameter set p (`draw`); JPEG is left to the writer."""
    import cv2

    out = img.astype(np.float32)
    if p["blur_px"][i] > 0:
        out = cv2.filter2D(out, -1, motion_kernel(float(p["blur_px"][i]), float(p["blur_angle"][i])),
                           borderType=cv2.BORDER_REFLECT)
    if p["noise_sd"][i] > 0:
        g = np.random.default_rng(int(p["noise_seed"][i]))
        sd = float(p["noise_sd"][i])
        # signal-dependent (shot-like) plus constant (read) noise, sd in 8-bit levels at mid grey
        out = out + g.normal(0, 1, out.shape).astype(np.float32) * sd * np.sqrt(0.3 + 0.7 * out / 128.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def write(path, img: np.ndarray, quality: int) -> None:
    """Write an RGB image: JPEG at ``quality`` for .jpg, else lossless PNG."""
    import cv2

    bgr = np.ascontiguousarray(img[..., ::-1])
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if str(path).endswith(".jpg") else []
    if not cv2.imwrite(str(path), bgr, params):
        raise OSError(f"cannot write {path}")
