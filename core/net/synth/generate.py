"""Chunks of synthetic training images on disk: sample, render in headless Blender, augment, label.

``generate(out, chunks, per_chunk, settings)`` writes ``out/chunk_{c:04d}/`` for each chunk c:
``{i:04d}.jpg`` (or .png) images, ``{i:04d}_mask.png`` (uint8 classes: 0 background, 1 right hand,
2 left hand, 3 right forearm, 4 left forearm, 5 occluder), ``labels.npz`` (`sample.sample_chunk`'s labels
plus ``files``, ``visible`` (n, 2, 21): the mask under each 2D joint is its own hand or forearm, and the
augmentation draws) and ``meta.json`` (seed, settings, timings, Blender version, YCB files used).
A chunk is built in a hidden ``.chunk_{c:04d}.partial-<pid>`` folder and renamed into place when
complete, so an interrupted run leaves no half chunk and a re-run skips every complete one.
Chunk c's seed is `sample.chunk_seed(seed, c)`: any chunk can be (re)made alone, in any order.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ...errors import CaptureError
from . import augment, sample
from .sample import (MASK_LEFT_ARM, MASK_LEFT_HAND, MASK_OCCLUDER, MASK_RIGHT_ARM, MASK_RIGHT_HAND,
                     SynthSettings, chunk_seed)

RENDER_SCRIPT = Path(__file__).resolve().parents[3] / "blender_addon" / "synth_render.py"
YCB_LICENCE = "YCB Object and Model Set (Calli et al. 2015), CC BY 4.0; read at generation time, not shipped"
# Renderer mask colour bits (R=1, G=2, B=4) -> class.
_MASK_LUT = np.zeros(8, np.uint8)
_MASK_LUT[[1, 2, 4, 3, 6]] = [MASK_RIGHT_HAND, MASK_LEFT_HAND, MASK_RIGHT_ARM, MASK_LEFT_ARM, MASK_OCCLUDER]


def chunk_dir(out: Path, c: int) -> Path:
    return Path(out) / f"chunk_{c:04d}"


def is_complete(d: Path) -> bool:
    """A chunk folder is complete when its meta.json is there (written last, renamed into place)."""
    return (d / "meta.json").is_file() and (d / "labels.npz").is_file()


def decode_mask(rgb: np.ndarray) -> np.ndarray:
    """Classes (H, W) uint8 from the renderer's flat-colour mask (H, W, 3) uint8 RGB."""
    bits = (rgb[..., 0] > 127).astype(np.int64) + 2 * (rgb[..., 1] > 127) + 4 * (rgb[..., 2] > 127)
    return _MASK_LUT[bits]


def _alive(pid: str) -> bool:
    """Whether process ``pid`` (text) runs on this machine (a partial chunk's owner)."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _git_commit() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                           cwd=Path(__file__).resolve().parent)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def render(scene: dict, out_dir: Path, python: str | None = None, threads: int = 0, progress=None,
           device: str = "cpu") -> dict:
    """Render a scene dict with ``blender_addon/synth_render.py`` in a subprocess (``python``: an interpreter
    with bpy, default this one); the done event ({"images", "seconds", "blender"})."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="handcap-synth-") as tmp:
        path = Path(tmp) / "scene.npz"
        np.savez(path, **scene)
        env = dict(os.environ)
        env.setdefault("BLENDER_USER_RESOURCES", str(Path(tmp) / "blender"))
        cmd = [python or sys.executable, str(RENDER_SCRIPT), "--in", str(path), "--out", str(out_dir),
               "--threads", str(int(threads)), "--device", device]
        done = None
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
            for line in proc.stdout:
                if not line.startswith("{"):
                    continue
                event = json.loads(line)
                if event.get("event") == "progress" and progress:
                    progress(int(event["done"]), int(event["total"]))
                elif event.get("event") == "done":
                    done = event
            rc = proc.wait()
            if rc != 0 or done is None:
                err.seek(0)
                tail = [ln for ln in err.read().decode("utf-8", "replace").splitlines() if ln.strip()][-3:]
                raise CaptureError(f"rendering synthetic images with headless Blender failed (exit {rc}): "
                                   f"{' | '.join(tail) or 'no message'}; check that the bpy module runs "
                                   f"(python -c 'import bpy')")
    return done


def make_chunk(out: Path, c: int, per_chunk: int, settings: SynthSettings, seed: int = 0, python: str | None = None,
               threads: int = 0, ycb: list | None = None, hands=None, log=None, device: str = "cpu") -> Path:
    """Write chunk ``c`` (see the module docstring); returns its folder. Replaces an incomplete one."""
    import cv2

    final = chunk_dir(out, c)
    for stale in Path(out).glob(f".chunk_{c:04d}.partial-*"):  # left by a run that was stopped
        if not _alive(stale.name.rpartition("-")[2]):
            shutil.rmtree(stale, ignore_errors=True)
    partial = Path(out) / f".chunk_{c:04d}.partial-{os.getpid()}"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        cseed = chunk_seed(seed, c)
        scene, labels = sample.sample_chunk(cseed, per_chunk, settings, ycb=ycb, hands=hands)
        t1 = time.perf_counter()
        raw = partial / "raw"
        done = render(scene, raw, python, threads,
                      (lambda d, t: log(f"chunk {c}: rendered {d}/{t}")) if log else None, device)
        t2 = time.perf_counter()
        aug = augment.draw(np.random.default_rng(np.random.SeedSequence([cseed, 0xA06])), per_chunk, settings)
        n = per_chunk
        files, visible = [], np.zeros((n, 2, 21), bool)
        for i in range(n):
            rgb = cv2.imread(str(raw / f"{i:04d}.png"), cv2.IMREAD_COLOR)[..., ::-1]
            mask = decode_mask(cv2.imread(str(raw / f"{i:04d}_mask.png"), cv2.IMREAD_COLOR)[..., ::-1])
            for k in range(2):
                if labels["present"][i, k]:
                    own = (MASK_RIGHT_HAND, MASK_RIGHT_ARM) if labels["side"][i, k] == 0 else (MASK_LEFT_HAND, MASK_LEFT_ARM)
                    from .labels import visibility

                    visible[i, k] = visibility(labels["joints2d"][i, k], mask, own)
            name = f"{i:04d}.{settings.fmt}"
            augment.write(partial / name, augment.apply(rgb, aug, i), int(aug["jpeg_quality"][i]))
            if not cv2.imwrite(str(partial / f"{i:04d}_mask.png"), mask):
                raise OSError(f"cannot write the mask of image {i}")
            files.append(name)
        shutil.rmtree(raw)
        np.savez_compressed(partial / "labels.npz", files=np.array(files), visible=visible,
                            **{k: v for k, v in aug.items()}, **labels)
        t3 = time.perf_counter()
        from ...hand.load import generator_id

        meta = {
            "chunk": c, "seed": seed, "chunk_seed": cseed, "images": n, "settings": dataclasses.asdict(settings),
            "seconds": {"sample": round(t1 - t0, 3), "render": round(t2 - t1, 3), "write": round(t3 - t2, 3)},
            "render_seconds_per_image": round((t2 - t1) / n, 4), "render_threads": threads or os.cpu_count(), "render_device": done.get("device", "CPU"),
            "blender": done.get("blender"), "hand_model": generator_id(), "code": _git_commit(),
            "ycb": [name for name, _, _ in (ycb or [])], "ycb_licence": YCB_LICENCE if ycb else None,
            "mask_classes": ["background", "right_hand", "left_hand", "right_arm", "left_arm", "occluder"],
        }
        (partial / "meta.json").write_text(json.dumps(meta, indent=1))
        if final.exists():
            if is_complete(final):  # another run finished it meanwhile
                shutil.rmtree(partial)
                return final
            shutil.rmtree(final)
        os.replace(partial, final)
        return final
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def generate(out: Path, chunks, per_chunk: int, settings: SynthSettings = SynthSettings(), seed: int = 0,
             python: str | None = None, threads: int = 0, data_dir: Path | None = None, log=print,
             device: str = "cpu") -> list:
    """Make every chunk in ``chunks`` not yet complete under ``out``; [(chunk, folder, made: bool)]."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [c for c in chunks if not is_complete(chunk_dir(out, c))]
    result = [(c, chunk_dir(out, c), False) for c in chunks if c not in todo]
    for c, _, _ in result:
        log(f"chunk {c}: complete, skipped")
    if todo:
        ycb = sample.ycb_meshes(data_dir) if data_dir is not None else []
        hands = sample._Hands()
        for c in todo:
            t = time.perf_counter()
            d = make_chunk(out, c, per_chunk, settings, seed, python, threads, ycb, hands, device=device)
            dt = time.perf_counter() - t
            meta = json.loads((d / "meta.json").read_text())
            log(f"chunk {c}: {per_chunk} images in {dt:.1f} s (render {meta['render_seconds_per_image']:.2f} s/image) "
                f"-> {d}")
            result.append((c, d, True))
    return sorted(result)
