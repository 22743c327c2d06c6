"""The paper's network on cached trunk features: non-parametric mesh decoder + the MANO branch, and its losses.

``PaperNet(features) -> Output`` (all in the network's frame of a crop, `core.net.paper.data.view_rotation`,
wrist-relative, metres, MANO-21 joint order, a right hand):

1. **non-parametric branch**: an MLP head maps the frozen trunk's 1152-d feature (standardised) to ``C`` coarse
   vertices; a FIXED up-sampling matrix (`upsampling`: each vertex of the open model a normalised
   inverse-distance blend of its 4 nearest coarse vertices on the template) gives all V vertices; the model's
   J-regressor and fingertip vertices give 21 joints;
2. **MANO branch**: those joints -> the shipped VAE refinement (`core.net.vae`, frozen, with gradients) ->
   twist-swing IK (`core.solve.ik.solve`, differentiable) with the shape the head predicts (betas) -> each joint
   projected into its anatomical range (`core.solve.limits.project_to_limits`, differentiable) -> MANO forward
   kinematics -> vertices and joints; as delivered (`separated`, not in training) also the pipeline's
   penetration fix, so the branch is inside the limits and free of finger overlap on every frame;
3. a weak-perspective camera (scale, offset) from the head for the 2D loss on the crop.

**Anchored decoder** (``anchor=True``, the default of `core.net.paper.train` since the second version): the
head also reads what MediaPipe's own landmark head makes of the same crop (its 21 world landmarks, wrist-relative,
and its 21 screen landmarks), and the non-parametric mesh is an *anchor mesh* plus the head's free per-vertex
offsets (``up @ coarse offsets``, zero at initialisation): the anchor is the open model posed by the VAE and
the IK from MediaPipe's world landmarks (`anchor_mesh`, no gradient). The decoder then learns what the
renders' labels say about MediaPipe's hand instead of a whole hand from a pooled feature; an untrained head gives
the anchor itself. ``anchor=False`` is the first version (the template's coarse vertices as the start).

`losses`: 3D joint L1 on both branches (the only 3D label), 2D reprojection of the non-parametric joints on
the crop, self-distillation (the MANO mesh, stop-gradient, as the target of the non-parametric mesh), edge
length and face normal consistency of the non-parametric mesh against the (stop-gradient) MANO mesh of the
same topology, a small prior on betas.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ...hand.mano import ManoLayer
from ...solve import collide, ik, limits
from ..vae import JointVAE, canonical_frame

COARSE = 384
HIDDEN = 512
ANCHOR_DIM = 126  # MediaPipe's world (63) and screen (63) landmarks of the crop


def farthest_points(points: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """Indices (n,) of a farthest-point sampling of points (V, 3), from ``start`` (deterministic)."""
    idx = [start]
    d = np.linalg.norm(points - points[start], axis=1)
    for _ in range(n - 1):
        k = int(np.argmax(d))
        idx.append(k)
        d = np.minimum(d, np.linalg.norm(points - points[k], axis=1))
    return np.asarray(idx, np.int64)


def upsampling(template: np.ndarray, coarse_ids: np.ndarray, k: int = 4) -> np.ndarray:
    """(V, C) fixed up-sampling matrix: each template vertex as a normalised inverse-distance blend of its ``k``
    nearest coarse vertices (a coarse vertex is exactly itself)."""
    c = template[coarse_ids]
    d = np.linalg.norm(template[:, None] - c[None], axis=-1)  # (V, C)
    nn = np.argsort(d, axis=1)[:, :k]
    dn = np.take_along_axis(d, nn, 1)
    w = 1.0 / np.maximum(dn, 1e-6) ** 2
    exact = dn[:, 0] < 1e-9
    w[exact] = 0.0
    w[exact, 0] = 1.0
    w /= w.sum(1, keepdims=True)
    up = np.zeros_like(d)
    np.put_along_axis(up, nn, w, 1)
    return up.astype(np.float32)


def mesh_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) unique undirected edges of triangles (F, 3)."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.sort(e, 1)
    return np.unique(e, axis=0)


@dataclasses.dataclass
class Output:
    """B = batch. Joints (B, 21, 3) and vertices (B, V, 3), wrist-relative, the network's frame, metres."""

    joints_np: torch.Tensor
    verts_np: torch.Tensor
    joints_mano: torch.Tensor
    verts_mano: torch.Tensor
    refined: torch.Tensor      # the VAE's joints (the IK's input)
    betas: torch.Tensor        # (B, NB)
    rotmats: torch.Tensor      # (B, 16, 3, 3) MANO local rotations (joint 0 in the network's frame)
    cam: torch.Tensor          # (B, 3) weak perspective: scale, offset x, y (crop units)


class PaperNet(torch.nn.Module):
    """Head over trunk features + the fixed decoder + the MANO branch (right hand model)."""

    def __init__(self, layer: ManoLayer, vae: JointVAE, coarse: int = COARSE, hidden: int = HIDDEN,
                 feature_dim: int = 1152, dropout: float = 0.1, feature_noise: float = 0.0, anchor: bool = False,
                 image: bool = True):
        """``dropout`` after the first hidden layer; ``feature_noise``: Gaussian noise (in standard deviations of
        each standardised feature) added in training (a regulariser: the renders are few); ``anchor``: the
        anchored decoder (module docstring): the input is the feature, MediaPipe's world (63) and screen (63)
        landmarks, and the mesh is offsets from the anchor mesh; ``image`` False (anchored only): the head
        reads the landmarks alone (the trunk's feature zeroed: an ablation)."""
        super().__init__()
        self.anchor = bool(anchor)
        self.image = bool(image) or not self.anchor
        in_dim = feature_dim + (ANCHOR_DIM if self.anchor else 0)
        self.feature_noise = float(feature_noise)
        if layer.side != "right":
            raise ValueError("the network is built on the right hand model (left hands are mirrored)")
        self.layer = layer
        self.vae = vae.eval()
        for p in self.vae.parameters():
            p.requires_grad_(False)
        tmpl = layer.v_template.detach().cpu().numpy().astype(np.float64)
        root = (layer.J_regressor.detach().cpu().numpy() @ tmpl)[0]
        ids = farthest_points(tmpl, coarse)
        self.register_buffer("coarse_ids", torch.as_tensor(ids))
        self.register_buffer("up", torch.as_tensor(upsampling(tmpl, ids)))
        self.register_buffer("edges", torch.as_tensor(mesh_edges(layer.faces.cpu().numpy())))
        self.register_buffer("feat_mean", torch.zeros(in_dim))
        self.register_buffer("feat_std", torch.ones(in_dim))
        n_b = layer.n_betas
        self.n_betas = n_b
        self.head = torch.nn.Sequential(
            torch.nn.Linear(in_dim, hidden), torch.nn.SiLU(), torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
            torch.nn.Linear(hidden, coarse * 3 + 3 + n_b))
        # start from the template's coarse vertices (wrist-relative), looking down +z
        last = self.head[-1]
        if self.anchor:  # zero offsets at the start: an untrained anchored head gives the anchor itself
            torch.nn.init.zeros_(last.weight)
        else:
            torch.nn.init.normal_(last.weight, std=1e-3)
        with torch.no_grad():
            b = torch.zeros(coarse * 3 + 3 + n_b)
            if not self.anchor:  # offsets from the anchor start at zero; the first version starts at the template
                b[: coarse * 3] = torch.as_tensor((tmpl[ids] - root).reshape(-1), dtype=torch.float32)
            last.bias.copy_(b)

    def set_normalisation(self, inputs: np.ndarray) -> None:
        """Standardisation of the head's inputs (N, F) (`inputs`' rows)."""
        f = torch.as_tensor(np.asarray(inputs, np.float32))
        self.feat_mean.copy_(f.mean(0))
        self.feat_std.copy_(f.std(0).clamp_min(1e-3))

    def inputs(self, feature, world=None, screen=None) -> torch.Tensor:
        """The head's input (B, F'): the trunk's feature (B, 1152), and for the anchored decoder MediaPipe's
        world landmarks (B, 21, 3) or (B, 63), MediaPipe order, any origin (made wrist-relative here) and screen
        landmarks (B, 63) (the landmark head's raw outputs on the same crop)."""
        x = torch.as_tensor(feature).float()
        if not self.anchor:
            return x
        if world is None or screen is None:
            raise ValueError("the anchored network needs MediaPipe's world and screen landmarks of the crop")
        w = torch.as_tensor(world).float().reshape(len(x), 21, 3)
        w = (w - w[:, :1]).reshape(len(x), 63)
        return torch.cat([x, w, torch.as_tensor(screen).float().reshape(len(x), 63)], 1)

    @torch.no_grad()
    def anchor_mesh(self, world: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(vertices (B, V, 3), joints (B, 21, 3)) wrist-relative, MANO-21 order: the open model (mean shape) posed
        by the VAE and the IK from MediaPipe's world landmarks (B, 21, 3) or (B, 63), MediaPipe order."""
        from ...hand.model import MANO21_FROM_MP

        w = torch.as_tensor(world).float().reshape(-1, 21, 3)
        w = (w - w[:, :1])[:, torch.as_tensor(MANO21_FROM_MP)]
        ref = self.refine(w)
        ref = ref - ref[:, :1]
        jm, vm, _ = self.mano(ref, torch.zeros(len(w), self.n_betas))
        return vm, jm

    def decode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """head inputs (B, F') (`inputs`) -> (coarse vertices or, anchored, coarse offsets (B, C, 3), cam (B, 3),
        betas (B, NB)); all vertices (offsets) = up @ coarse."""
        x = (x.float() - self.feat_mean) / self.feat_std
        n = x.shape[1] - (ANCHOR_DIM if self.anchor else 0)
        if not self.image:
            x = torch.cat([torch.zeros_like(x[:, :n]), x[:, n:]], 1)
        elif self.training and self.feature_noise > 0:  # on the trunk's feature only (not on the landmarks)
            x = torch.cat([x[:, :n] + torch.randn_like(x[:, :n]) * self.feature_noise, x[:, n:]], 1)
        h = self.head(x)
        c = len(self.coarse_ids)
        coarse = h[:, : 3 * c].reshape(-1, c, 3)
        cam = h[:, 3 * c: 3 * c + 3]
        cam = torch.cat([torch.exp(cam[:, :1] + 2.5), cam[:, 1:]], 1)  # scale ~ 12 crop units per metre
        betas = 3.0 * torch.tanh(h[:, 3 * c + 3:] / 3.0)
        return coarse, cam, betas

    def regress(self, verts: torch.Tensor) -> torch.Tensor:
        """Vertices (B, V, 3) -> MANO-21 joints (B, 21, 3) (the model's J-regressor and fingertip vertices)."""
        j16 = torch.einsum("jv,bvc->bjc", self.layer.J_regressor, verts)
        return torch.cat([j16, verts[:, self.layer.tip_ids]], 1)

    def joint_matrix(self) -> torch.Tensor:
        """(21, C): `regress` of ``up @ coarse`` as one matrix (joints without all the vertices)."""
        if getattr(self, "_jup", None) is None or self._jup.device != self.up.device:
            self._jup = torch.cat([self.layer.J_regressor @ self.up, self.up[self.layer.tip_ids]], 0)
        return self._jup

    def refine(self, joints21: torch.Tensor) -> torch.Tensor:
        """The VAE refinement with gradients (weights frozen): `core.net.vae.JointRefiner.refine` for right hands."""
        frame = canonical_frame(joints21, self.vae.palm_template)
        y, _, _ = self.vae(frame.to_canonical(joints21))
        return frame.from_canonical(y)

    def mano(self, joints21: torch.Tensor, betas: torch.Tensor):
        """Twist-swing IK of joints (B, 21, 3) with betas, every joint projected into its anatomical range
        (`core.solve.limits.project_to_limits`), then MANO: (joints (B, 21, 3), vertices, rotmats), wrist-relative."""
        res = ik.solve(self.layer, joints21, betas)
        rot = limits.project_to_limits(self.layer, res.rotmats, betas)  # differentiable (clamped angles: zero)
        out = self.layer(betas, None, None, None, with_vertices=True, rotmats=rot)
        root = out.joints21[:, :1]
        return out.joints21 - root, out.vertices - root, rot

    def forward(self, x: torch.Tensor, mano: bool = True, vertices: bool = True,
                anchor: tuple[torch.Tensor, torch.Tensor] | None = None) -> Output:
        """x: the head's inputs (`inputs`); ``mano`` False: the non-parametric branch only (and its vertices
        only with ``vertices``); ``anchor``: the anchored decoder's (vertices, joints) of `anchor_mesh` (computed
        here from x's world landmarks when None)."""
        coarse, cam, betas = self.decode(x)
        joints = self.joint_matrix() @ coarse
        z = torch.zeros(0)
        base = 0.0  # the anchored decoder's offsets are added to the anchor mesh
        if self.anchor:
            if anchor is None:
                n = self.feat_mean.shape[0] - ANCHOR_DIM
                anchor = self.anchor_mesh(x[:, n: n + 63])
            base, aj = anchor
            joints = joints + aj
        root = joints[:, :1]
        joints = joints - root
        verts = base + self.up @ coarse - root if (mano or vertices) else z
        if not mano:
            return Output(joints, verts, z, z, z, betas, z, cam)
        refined = self.refine(joints)
        refined = refined - refined[:, :1]
        jm, vm, rot = self.mano(refined, betas)
        return Output(joints, verts, jm, vm, refined, betas, rot, cam)


@torch.no_grad()
def separated(net: PaperNet, out: Output) -> Output:
    """``out`` with its MANO branch's fingers pushed apart where they overlap (`core.solve.collide.resolve`, the
    pipeline's penetration fix: frames deeper than 2 mm only, every angle kept in its range): the branch as it is
    delivered (inference and benchmarks; training uses the branch as it is)."""
    if not out.rotmats.numel():
        return out
    rot, threshold = out.rotmats, 0.002
    for _ in range(3):  # a frame left deeper than the threshold after one solve gets another (as the capture's
        res = collide.resolve(net.layer, rot, out.betas, threshold=threshold)  # fit solves after the per-frame
        rot = res.rotmats  # fit and again after the clean-up)
        if not bool((res.depth_after > threshold).any()):
            break
    o = net.layer(out.betas, None, None, None, with_vertices=True, rotmats=rot)
    root = o.joints21[:, :1]
    return dataclasses.replace(out, joints_mano=o.joints21 - root, verts_mano=o.vertices - root, rotmats=rot)


@dataclasses.dataclass(frozen=True)
class LossWeights:
    joints_np: float = 1.0
    joints_mano: float = 1.0
    reproj: float = 0.05
    distill: float = 0.5
    edge: float = 1.0
    normal: float = 0.02
    betas: float = 1e-4


def face_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    a, b, c = verts[:, faces[:, 0]], verts[:, faces[:, 1]], verts[:, faces[:, 2]]
    n = torch.cross(b - a, c - a, dim=-1)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def losses(net: PaperNet, out: Output, target: torch.Tensor, crop2d: torch.Tensor | None,
           w: LossWeights = LossWeights(), distill_scale: float = 1.0) -> dict:
    """Loss terms (mm for 3D terms; crop units x 100 for 2D) and their weighted ``total``.

    target (B, 21, 3) wrist-relative joints (the only 3D label); crop2d (B, 21, 2) the true 2D joints in the
    crop's normalised coordinates, or None; ``distill_scale`` ramps the self-distillation in."""
    mm = 1000.0
    t = {"joints_np": (out.joints_np - target).abs().sum(-1).mean() * mm}
    if crop2d is not None:
        # weak perspective on the crop: the joints' x, y scaled, offset; the wrist's 3D is at the origin
        p = out.joints_np[..., :2] * out.cam[:, None, :1] + out.cam[:, None, 1:]
        t["reproj"] = (p - crop2d).abs().sum(-1).mean() * 100.0
    if out.joints_mano.numel():
        t["joints_mano"] = (out.joints_mano - target).abs().sum(-1).mean() * mm
        ref = out.verts_mano.detach()
        t["distill"] = (out.verts_np - ref).abs().sum(-1).mean() * mm
        e = net.edges
        len_np = (out.verts_np[:, e[:, 0]] - out.verts_np[:, e[:, 1]]).norm(dim=-1)
        len_ref = (ref[:, e[:, 0]] - ref[:, e[:, 1]]).norm(dim=-1)
        t["edge"] = (len_np - len_ref).abs().mean() * mm
        n_np, n_ref = face_normals(out.verts_np, net.layer.faces), face_normals(ref, net.layer.faces)
        t["normal"] = (1.0 - (n_np * n_ref).sum(-1)).mean() * 100.0
    t["betas"] = out.betas.square().sum(-1).mean()
    total = sum(getattr(w, k) * v * (distill_scale if k in ("distill", "edge", "normal") else 1.0) for k, v in t.items())
    t["total"] = total
    return t


def edge_error_mm(verts: np.ndarray, ref_verts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean |edge length - reference edge length| per mesh (N,) mm (the reference: the same hand's true mesh)."""
    a = np.linalg.norm(verts[:, edges[:, 0]] - verts[:, edges[:, 1]], axis=-1)
    b = np.linalg.norm(ref_verts[:, edges[:, 0]] - ref_verts[:, edges[:, 1]], axis=-1)
    return np.abs(a - b).mean(-1) * 1000.0
