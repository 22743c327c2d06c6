"""The joint-refinement VAE (Yu et al., CVPR 2023): detector joints -> joints the hand model can produce.

Pipeline of `JointRefiner.refine` (batched, torch):
1. canonical frame (`canonical_frame`): the palm points (wrist, the four knuckles, thumb CMC; weights
   `PALM_WEIGHTS`) give a centre (weighted centroid), a size (their weighted RMS distance from it) and
   a rotation (`core.rot.kabsch` of the model's rest palm, `JointVAE.palm_template`, onto them), so the
   network sees an orientation-free, size-free hand: x = R^T (joints - centre) / size;
2. the VAE: encoder MLP x (63) -> mu, logvar (latent); decoder MLP mu (+ x when
   ``decoder_input == "latent+input"``) -> clean canonical joints (63); mu is used at inference, so
   the output is deterministic;
3. back to the input's frame: joints = size * R y + centre.
Steps 1 and 3 make the refiner equivariant: rotating, translating or scaling the input does the same
to the output. Right hands only inside; a left hand is mirrored (x -> -x) in and out.

Weights files are ``torch.save`` of plain data, loaded with ``weights_only=True``:
``{"config": dict (VAEConfig fields), "state_dict": {name: tensor}, "meta": {str: str}}``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ..errors import CaptureError
from ..solve.ik import PALM
from ..rot import kabsch
from ..settings import build

N_JOINTS = 21
# Weights of the palm points PALM = (wrist, index1, middle1, pinky1, ring1, thumb1) for the frame:
# a detector's wrist and thumb CMC sit less consistently on the skeleton than its knuckles do.
PALM_WEIGHTS = (0.5, 1.0, 1.0, 1.0, 1.0, 0.5)
DECODER_INPUTS = ("latent", "latent+input")


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Sizes of the joint VAE (frozen; build with `make_config`, unknown keys are errors).

    Fields:
        hidden: width of every hidden layer (encoder and decoder).
        layers: hidden layers per MLP (>= 1).
        latent: latent dimensions.
        decoder_input: "latent" (the decoder sees only z: outputs stay on the learnt manifold of
            model-made joints) or "latent+input" (it also sees the noisy joints, as a refinement).
    """

    hidden: int = 256
    layers: int = 2
    latent: int = 32
    decoder_input: str = "latent"


def make_config(**options) -> VAEConfig:
    """A validated `VAEConfig` from keyword options; raises CaptureError listing every problem."""
    return build(VAEConfig, "VAE", options, _check)


def _check(cfg: VAEConfig) -> list[str]:
    problems = []
    for key in ("hidden", "layers", "latent"):
        v = getattr(cfg, key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            problems.append(f"{key} must be a positive integer; got {v!r}")
    if cfg.decoder_input not in DECODER_INPUTS:
        problems.append(f"decoder_input must be one of {', '.join(DECODER_INPUTS)}; got {cfg.decoder_input!r}")
    return problems


def _mlp(n_in: int, hidden: int, layers: int, n_out: int) -> torch.nn.Sequential:
    mods, width = [], n_in
    for _ in range(layers):
        mods += [torch.nn.Linear(width, hidden), torch.nn.SiLU()]
        width = hidden
    mods.append(torch.nn.Linear(width, n_out))
    return torch.nn.Sequential(*mods)


@dataclasses.dataclass(frozen=True)
class CanonicalFrame:
    """Per-sample similarity frame of a hand. B = batch.

    rotation (B, 3, 3): canonical -> input axes; centre (B, 3): input units (metres); size (B,): input units.
    """

    rotation: torch.Tensor
    centre: torch.Tensor
    size: torch.Tensor

    def to_canonical(self, joints: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) input frame -> (B, N, 3) canonical: R^T (p - centre) / size."""
        return ((joints - self.centre[:, None]) / self.size[:, None, None]) @ self.rotation

    def from_canonical(self, joints: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) canonical -> (B, N, 3) input frame: size R p + centre."""
        return (joints @ self.rotation.transpose(1, 2)) * self.size[:, None, None] + self.centre[:, None]


def palm_centre_size(palm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted centroid (B, 3) and RMS radius (B,) of palm points (B, 6, 3) (PALM order, PALM_WEIGHTS)."""
    w = torch.as_tensor(PALM_WEIGHTS, dtype=palm.dtype, device=palm.device)
    w = w / w.sum()
    centre = (w[None, :, None] * palm).sum(1)
    size = ((w[None] * (palm - centre[:, None]).square().sum(-1)).sum(1)).sqrt().clamp_min(1e-9)
    return centre, size


def canonical_frame(joints21: torch.Tensor, palm_template: torch.Tensor) -> CanonicalFrame:
    """The canonical frame of joints (B, 21, 3) (MANO-21, right hand, any frame and units).

    palm_template (6, 3): a right hand's rest palm points (PALM order), centred and of RMS radius 1
    (as `palm_centre_size` measures them). Rotation = weighted Kabsch of the template onto the
    centred, size-normalised observed palm (`core.rot.kabsch`, a proper rotation).
    """
    palm = joints21[:, list(PALM)]
    centre, size = palm_centre_size(palm)
    normed = (palm - centre[:, None]) / size[:, None, None]
    w = torch.as_tensor(PALM_WEIGHTS, dtype=joints21.dtype, device=joints21.device).expand(len(joints21), -1)
    tmpl = palm_template.to(joints21.dtype).expand(len(joints21), -1, -1)
    rot, _ = kabsch(tmpl, normed, w)
    return CanonicalFrame(rotation=rot, centre=centre, size=size)


class JointVAE(torch.nn.Module):
    """Encoder and decoder MLPs over canonical joints; ``palm_template`` (6, 3) is a buffer (saved)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        n = N_JOINTS * 3
        self.encoder = _mlp(n, config.hidden, config.layers, 2 * config.latent)
        n_dec = config.latent + (n if config.decoder_input == "latent+input" else 0)
        self.decoder = _mlp(n_dec, config.hidden, config.layers, n)
        self.register_buffer("palm_template", torch.zeros(len(PALM), 3))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 21, 3) canonical -> mu, logvar (B, latent)."""
        h = self.encoder(x.reshape(len(x), -1))
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 6.0)

    def decode(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """z (B, latent), x (B, 21, 3) canonical input -> joints (B, 21, 3) canonical."""
        if self.config.decoder_input == "latent+input":
            y = x + self.decoder(torch.cat([z, x.reshape(len(x), -1)], -1)).reshape(-1, N_JOINTS, 3)
        else:
            y = self.decoder(z).reshape(-1, N_JOINTS, 3)
        return y

    def forward(self, x: torch.Tensor, sample: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, 21, 3) canonical -> (joints (B, 21, 3) canonical, mu, logvar); ``sample`` draws
        z = mu + sigma eps (training), else z = mu."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return self.decode(z, x), mu, logvar


class JointRefiner:
    """A trained `JointVAE` behind the refinement API (no gradients, eval mode)."""

    def __init__(self, model: JointVAE, meta: dict | None = None):
        self.model = model.eval()
        self.meta = dict(meta or {})

    @property
    def device(self) -> torch.device:
        return self.model.palm_template.device

    def refine(self, joints21, side: str = "right") -> torch.Tensor:
        """Joints the hand model can produce, near the given ones.

        Args:
            joints21 (B, 21, 3): detector joints, MANO-21 order, metres, any frame and orientation
                (torch or numpy; numpy becomes float32).
            side: "right" or "left" (a left hand is mirrored x -> -x, refined, mirrored back).
        Returns:
            (B, 21, 3) torch, the dtype of a torch input (float32 for numpy) on the refiner's device,
            in the input's frame and scale; deterministic.
        """
        if side not in ("right", "left"):
            raise CaptureError(f"hand side must be 'right' or 'left'; got {side!r}")
        j = joints21 if torch.is_tensor(joints21) else torch.as_tensor(joints21, dtype=torch.float32)
        if j.ndim != 3 or j.shape[1:] != (N_JOINTS, 3):
            raise CaptureError(f"refine expects joints of shape (B, 21, 3); got {tuple(j.shape)}")
        dtype = j.dtype
        j = j.to(self.device, torch.float32)
        if len(j) == 0:
            return j.to(dtype)
        mirror = torch.tensor([-1.0, 1.0, 1.0], device=self.device) if side == "left" else None
        if mirror is not None:
            j = j * mirror
        with torch.no_grad():
            frame = canonical_frame(j, self.model.palm_template)
            y, _, _ = self.model(frame.to_canonical(j))
            out = frame.from_canonical(y)
        if mirror is not None:
            out = out * mirror
        return out.to(dtype)


def save_weights(path: str | Path, model: JointVAE, meta: dict) -> None:
    """Write ``model`` (config, tensors) and ``meta`` (str -> str) with torch.save (plain data only)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save({"config": dataclasses.asdict(model.config), "state_dict": state,
                "meta": {str(k): str(v) for k, v in meta.items()}}, str(path))


def read_weights(path: str | Path, what: str, hint: str):
    """The plain-data contents of a torch weights file (read with weights_only=True), or CaptureError (one
    line): "<what> not found: <path> (<hint>)" when missing, "cannot read <what> <name>: ..." when unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CaptureError(f"{what} not found: {path} ({hint})")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any read failure is the file's
        raise CaptureError(f"cannot read {what} {path.name}: {exc}") from None


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> JointRefiner:
    """A `JointRefiner` from a weights file written by `save_weights` (read with weights_only=True).

    Raises:
        CaptureError: missing or unreadable file, or contents that do not match a `JointVAE`.
    """
    path = Path(path)
    blob = read_weights(path, "refiner weights", f"train them with `python -m core.net.train --out {path}`")
    if not isinstance(blob, dict) or set(blob) != {"config", "state_dict", "meta"}:
        keys = sorted(blob) if isinstance(blob, dict) else type(blob).__name__
        raise CaptureError(f"{path.name}: expected keys config, meta, state_dict; found {keys}")
    try:
        cfg = make_config(**blob["config"])
    except CaptureError as exc:
        raise CaptureError(f"{path.name}: {exc}") from None
    model = JointVAE(cfg)
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise CaptureError(f"{path.name}: tensors do not match the configured VAE: {exc}") from None
    return JointRefiner(model.to(device), blob["meta"])
