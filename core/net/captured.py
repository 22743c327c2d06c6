"""Hand poses captured from permissively licensed video, for the refiner's corpus (`core.net.corpus`).

    python -m core.net.captured VIDEO [--out core/net/data/captured_poses.npz] [--every 3]

The video is captured without the VAE refinement (so the corpus never depends on the weights it
trains): MediaPipe, twist-swing IK, the 2D-aware fit, temporal clean-up and the joint limits; every
``every``-th frame where the detector saw the hand becomes one pose, as corpus angles (FINGER_ORDER x
PARAMS, degrees; a left hand's angles already read as a right hand's, see `core.solve.limits`). The file
records the video's name and SHA-256 and the MediaPipe version, so a training run can say what it used.
The shipped file comes from `single_hand.mp4` (MIT licence; `../shared/data/video`).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from ..hand.model import FINGERS
from ..solve.ik import FINGER_ORDER

CAPTURED_POSES = Path(__file__).resolve().parent / "data" / "captured_poses.npz"


def corpus_angles(layer, rotmats: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Corpus angles (B, 5, 5) degrees (FINGER_ORDER x flex, abd, twist, pip, dip) of local rotations
    (B, 16, 3, 3) of ``layer``'s hand: the first joint's twist-swing angles (`core.solve.limits.joint_angles`),
    the second and third joints' flexion."""
    from ..solve.limits import joint_angles

    ang = torch.rad2deg(joint_angles(layer, rotmats, betas))  # (B, 15, 3) flex, abd, twist
    out = torch.zeros(rotmats.shape[0], 5, 5, dtype=ang.dtype)
    for f, name in enumerate(FINGER_ORDER):
        (j1, j2, j3), _ = FINGERS[name]
        out[:, f, :3] = ang[:, j1 - 1]
        out[:, f, 3] = ang[:, j2 - 1, 0]
        out[:, f, 4] = ang[:, j3 - 1, 0]
    return out


def poses_from_clip(clip, every: int = 3) -> np.ndarray:
    """Corpus angles (K, 5, 5) float32 degrees of every ``every``-th detected frame of each hand of a clip."""
    from ..hand.load import load_model
    from ..hand.mano import ManoLayer
    from ..rot import aa_to_rotmat

    out = []
    for h, side in enumerate(clip.sides):
        keep = np.nonzero(clip.detected[h] & clip.valid[h])[0][::every]
        if keep.size == 0:
            continue
        layer = ManoLayer(load_model(side, clip.model_path(h)))
        aa = np.concatenate([clip.global_orient[h][:, None], clip.hand_pose[h]], 1)[keep]
        rot = aa_to_rotmat(torch.as_tensor(aa, dtype=torch.float32))
        betas = torch.as_tensor(clip.betas[h], dtype=torch.float32)[None].expand(len(keep), -1)
        with torch.no_grad():
            out.append(corpus_angles(layer, rot, betas).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 5, 5), np.float32)


def capture_poses(video: Path, every: int = 3) -> dict:
    """Capture ``video`` (no VAE, up to one hand) and return the arrays of a captured-poses file."""
    import mediapipe

    from ..capture import CaptureOptions, capture

    clip, _ = capture(CaptureOptions(input=str(video), hands=1, vae=False))

    return {"angles": poses_from_clip(clip, every), "source": np.array(video.name),
            "source_sha256": np.array(hashlib.sha256(video.read_bytes()).hexdigest()),
            "detector": np.array(f"mediapipe {mediapipe.__version__}"), "every": np.array(every)}


def load_captured(path: Path = CAPTURED_POSES) -> tuple[np.ndarray, str]:
    """(angles (K, 5, 5) float64 degrees, a one-line description) of a captured-poses file."""
    with np.load(path, allow_pickle=False) as z:
        ang = np.asarray(z["angles"], np.float64)
        desc = (f"{len(ang)} poses captured from {z['source']} (sha256 {str(z['source_sha256'])[:12]}, "
                f"{z['detector']}, 1 in {int(z['every'])} detected frames)")
    return ang, desc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.net.captured", description=__doc__.split("\n")[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--out", type=Path, default=CAPTURED_POSES)
    ap.add_argument("--every", type=int, default=3, help="keep every N-th detected frame")
    a = ap.parse_args(argv)
    from ..errors import CaptureError

    try:
        arrays = capture_poses(a.video, a.every)
    except CaptureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, **arrays)
    print(f"{a.out}: {len(arrays['angles'])} poses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
