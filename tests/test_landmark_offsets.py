"""The detector's landmark convention in the 2D term (issue 15): `core.net.renders.solve_offsets` measures where
the detector puts each joint's landmark on our hand (an offset in the joint's bone frame), and
`core.solve.fit.refine` with ``RefineConfig.offsets`` compares the 2D with those points instead of the joints.
Figures on the hard views and the shared videos: BENCHMARKS.md."""
import numpy as np
import torch

from core.hand.load import load_model
from core.hand.mano import ManoLayer
from core.net.renders import LANDMARK_OFFSETS, bone_of, load_offsets, solve_offsets
from core.solve import fit, limits
from core.solve.fit import BONE_OF, RefineConfig, fk_rigid, landmark_points, palm_facing, side_offsets

K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])


def _poses(layer, n, seed):
    g = torch.Generator().manual_seed(seed)
    betas = torch.zeros(n, layer.n_betas)
    ang = torch.zeros(n, 15, 3)
    ang[:, :12, 2] = torch.rand(n, 12, generator=g) * 0.8  # finger flexion
    rot = limits.angles_to_rotmats(layer, ang, betas)
    root = torch.linalg.matrix_exp(_skew(torch.randn(n, 3, generator=g) * 0.5))
    rot = torch.cat([(root @ torch.diag(torch.tensor([1.0, -1.0, -1.0])))[:, None], rot], 1)  # palm to the camera
    transl = torch.tensor([0.0, 0.0, 0.45]).expand(n, 3) - layer.rest_joints(betas)[:, 0]
    return betas, rot, transl


def _skew(w):
    z = torch.zeros_like(w[:, 0])
    return torch.stack([torch.stack([z, -w[:, 2], w[:, 1]], -1), torch.stack([w[:, 2], z, -w[:, 0]], -1),
                        torch.stack([-w[:, 1], w[:, 0], z], -1)], 1)


def _landmarks(layer, betas, rot, transl, offsets):
    rest21 = torch.cat([layer.rest_joints(betas), layer.rest_tips(betas)], 1)
    j, g = fk_rigid(rot, rest21, transl)
    lm = landmark_points(j, g, side_offsets(offsets, layer.side), layer.side)
    return j, g, lm


def _project(p):
    return p[..., :2] / p[..., 2:] * torch.tensor([K[0, 0], K[1, 1]]) + torch.tensor(K[:2, 2])


def test_solve_offsets_recovers_a_known_convention():
    layer = ManoLayer(load_model("right"))
    betas, rot, transl = _poses(layer, 60, 0)
    rng = np.random.default_rng(0)
    true = np.concatenate([rng.normal(0, 0.006, (21, 3)), rng.normal(0, 0.003, (21, 3))], 1)
    with torch.no_grad():
        j, g, lm = _landmarks(layer, betas, rot, transl, true)
        facing = palm_facing(j, "right").numpy()
    assert facing.min() > -1 and facing.max() < 1 and np.ptp(facing) > 0.2
    bone_rot = np.stack([g[:, bone_of(k)].numpy() for k in range(21)], 1).astype(np.float64)
    px = _project(lm).numpy().astype(np.float64) + rng.normal(0, 0.3, (60, 21, 2))
    got, rms = solve_offsets(j.numpy().astype(np.float64), bone_rot, px, K, facing.astype(np.float64))
    assert np.abs(got[:, :2] - true[:, :2]).max() < 1.5e-3  # in the image plane, to 1.5 mm
    assert rms.max() < 1.0  # pixels: what is left is the noise


def test_refine_with_the_convention_lands_the_joints_on_their_places():
    layer = ManoLayer(load_model("right"))
    betas, rot, transl = _poses(layer, 6, 1)
    off = load_offsets(LANDMARK_OFFSETS)
    assert off.shape == (21, 6) and np.linalg.norm(off[:, :3], axis=1).max() < 0.02
    with torch.no_grad():
        j, _, lm = _landmarks(layer, betas, rot, transl, off)
        kp = _project(lm).float()  # what the detector would mark: the landmark points, not the joints
        kk = torch.as_tensor(K, dtype=torch.float32).expand(6, 3, 3)
        start_t = transl + torch.tensor([0.004, -0.003, 0.01])
        errs = {}
        for name, o in (("joints", None), ("landmarks", tuple(map(tuple, off)))):
            cfg = RefineConfig(iters=8, w_3d=0.0, w_prior=0.01, offsets=o)
            r, t = fit.refine(layer, betas, rot, start_t, kp, kk, j, cfg)
            jj = layer(betas, None, None, t, rotmats=r, with_vertices=False).joints21
            errs[name] = float((_project(jj) - _project(j)).norm(dim=-1).median())
    assert errs["landmarks"] < 0.5 * errs["joints"], errs


def test_left_hand_offsets_are_mirrored_and_none_is_the_joints():
    off = np.arange(126, dtype=np.float64).reshape(21, 6) / 1000
    r, l = side_offsets(off, "right", torch.float64), side_offsets(off, "left", torch.float64)
    assert torch.equal(l[:, 1:3], r[:, 1:3]) and torch.equal(l[:, 0], -r[:, 0]) and torch.equal(l[:, 3], -r[:, 3])
    j = torch.randn(2, 21, 3)
    assert landmark_points(j, torch.eye(3).expand(2, 16, 3, 3), None) is j
    assert BONE_OF[0] == 0 and all(BONE_OF[k] == bone_of(k) for k in range(21))
