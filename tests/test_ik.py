"""Twist-swing IK round trip: pose -> FK joints -> IK -> FK, on the open hand model, both sides."""
import numpy as np
import pytest
import torch

from core.solve import ik, limits
from core.hand.load import load_model
from core.hand.mano import ManoLayer
from core.rot import aa_to_rotmat, rotmat_to_aa, rotmat_to_quat, quat_to_aa


@pytest.fixture(scope="module", params=["right", "left"])
def layer(request):
    return ManoLayer(load_model(request.param))


@pytest.fixture(scope="module", params=["right", "left"])
def layer64(request):
    """Float64: the round trip checks the algorithm, not float32 rounding in the palm's SVD."""
    return ManoLayer(load_model(request.param), dtype=torch.float64)


def _angle_deg(ra, rb):
    d = ra.transpose(-1, -2) @ rb
    return torch.rad2deg(torch.acos(((d.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)))


def test_round_trip_float32_joints(layer):
    g = torch.Generator().manual_seed(8)
    n = 1000
    betas = torch.randn(n, layer.n_betas, generator=g)
    rot = limits.sample_poses(layer, n, g, betas)
    src = layer(betas, None, None, torch.randn(n, 3, generator=g) * 0.2, with_vertices=False, rotmats=rot)
    res = ik.solve(layer, src.joints21, betas)
    back = layer(betas, res.global_orient, res.hand_pose, res.transl, with_vertices=False)
    err_mm = (back.joints21 - src.joints21).norm(dim=-1) * 1000
    assert err_mm.max() < 0.1, f"max joint error {err_mm.max():.4f} mm"


def test_round_trip_1000_poses(layer64):
    layer = layer64
    g = torch.Generator().manual_seed(7)
    n = 1500
    betas = torch.randn(n, layer.n_betas, generator=g, dtype=torch.float64)
    rot = limits.sample_poses(layer, n, g, betas)
    transl = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.2
    src = layer(betas, None, None, transl, with_vertices=False, rotmats=rot)
    res = ik.solve(layer, src.joints21, betas)
    back = layer(betas, res.global_orient, res.hand_pose, res.transl, with_vertices=False)
    err_mm = (back.joints21 - src.joints21).norm(dim=-1) * 1000
    assert err_mm.max() < 0.1, f"max joint error {err_mm.max():.4f} mm"
    # Rotations: exact where the finger is bent enough to show its hinge plane.
    ang = _angle_deg(res.rotmats, rot)  # (n, 16)
    assert ang[:, 0].max() < 0.01
    bent = res.bend == 1.0  # (n, 5): the bend plane fully trusted
    for f, name in enumerate(ik.FINGER_ORDER):
        (j1, j2, j3), _ = ik.FINGERS[name]
        a = ang[bent[:, f]][:, [j1, j2, j3]]
        assert a.max() < 0.01, f"{name}: {a.max():.4f} deg"
        assert bent[:, f].float().mean() > 0.8
    # Straight fingers: only the twist about the first bone is free, so the first joint's bone
    # direction (checked by the joints above) and the later joints' hinge angles still agree.


def test_ik_is_differentiable(layer):
    g = torch.Generator().manual_seed(1)
    betas = torch.zeros(4, layer.n_betas)
    rot = limits.sample_poses(layer, 4, g, betas)
    j = layer(betas, None, None, None, with_vertices=False, rotmats=rot).joints21.clone().requires_grad_(True)
    res = ik.solve(layer, j, betas)
    res.hand_pose.square().sum().backward()
    assert torch.isfinite(j.grad).all() and j.grad.abs().sum() > 0


def test_shapes_batch_one(layer):
    betas = torch.zeros(1, layer.n_betas)
    out = layer(betas, torch.zeros(1, 3), torch.zeros(1, 15, 3), torch.zeros(1, 3))
    assert out.vertices.shape == (1, layer.v_template.shape[0], 3)
    assert out.joints.shape == (1, 16, 3) and out.joints21.shape == (1, 21, 3)
    res = ik.solve(layer, out.joints21, betas)
    assert res.global_orient.shape == (1, 3) and res.hand_pose.shape == (1, 15, 3)
    assert res.rotmats.shape == (1, 16, 3, 3) and res.transl.shape == (1, 3)
    # The flat hand is the rest pose.
    assert res.hand_pose.abs().max() < 1e-3


def test_rotation_conversions_round_trip():
    g = torch.Generator().manual_seed(3)
    aa = torch.randn(1000, 3, generator=g) * 1.5
    aa = aa[aa.norm(dim=-1) < np.pi - 1e-3]
    r = aa_to_rotmat(aa)
    torch.testing.assert_close(rotmat_to_aa(r), aa, atol=1e-4, rtol=0)
    torch.testing.assert_close(aa_to_rotmat(quat_to_aa(rotmat_to_quat(r))), r, atol=1e-5, rtol=0)
    # Near pi and near zero.
    for v in ([np.pi - 1e-4, 0, 0], [0, 1e-9, 0], [0, 0, 0]):
        a = torch.tensor([v])
        torch.testing.assert_close(aa_to_rotmat(rotmat_to_aa(aa_to_rotmat(a))), aa_to_rotmat(a), atol=1e-5, rtol=0)


def test_matches_smplx(layer, tmp_path):
    """Our FK equals smplx.MANO's on the generated MANO-format pickle."""
    smplx = pytest.importorskip("smplx")
    from core.hand.gen import ensure_open_model

    side = layer.side
    pkl = ensure_open_model() / f"handcap_MANO_{side.upper()}.pkl"
    m = smplx.MANO(model_path=str(pkl), is_rhand=side == "right", use_pca=False, flat_hand_mean=True)
    g = torch.Generator().manual_seed(5)
    betas = torch.randn(3, 10, generator=g)
    rot = limits.sample_poses(layer, 3, g, betas)
    aa = rotmat_to_aa(rot)
    ours = layer(betas, aa[:, 0], aa[:, 1:], torch.ones(3, 3) * 0.1)
    ref = m(betas=betas, global_orient=aa[:, 0], hand_pose=aa[:, 1:].reshape(3, 45), transl=torch.ones(3, 3) * 0.1)
    torch.testing.assert_close(ours.vertices, ref.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.joints, ref.joints, atol=1e-5, rtol=0)
