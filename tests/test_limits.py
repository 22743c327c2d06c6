"""Joint ranges: the twist-swing decomposition, projection into the ranges, the soft penalty."""
import numpy as np
import pytest
import torch

from core.solve import limits
from core.hand.load import load_model
from core.hand.mano import ManoLayer
from core.rot import aa_to_rotmat

MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))


@pytest.fixture(scope="module", params=["right", "left"])
def layer(request):
    return ManoLayer(load_model(request.param), dtype=torch.float64)


def _wild(n, seed, scale=2.0):
    """Random local rotations (n, 16, 3, 3) far outside the ranges."""
    g = torch.Generator().manual_seed(seed)
    return aa_to_rotmat(torch.randn(n, 16, 3, generator=g, dtype=torch.float64) * scale), g


def test_shapes_and_batch_one(layer):
    for n in (1, 3):
        rot, g = _wild(n, 0)
        betas = torch.randn(n, layer.n_betas, generator=g, dtype=torch.float64)
        ang = limits.joint_angles(layer, rot, betas)
        assert ang.shape == (n, 15, 3) and ang.dtype == torch.float64
        assert limits.angles_to_rotmats(layer, ang, betas).shape == (n, 15, 3, 3)
        assert limits.project_to_limits(layer, rot, betas).shape == (n, 16, 3, 3)
        assert limits.clamp_angles(ang).shape == (n, 15, 3)
        assert limits.soft_limit_loss(ang).shape == (n,)
        assert limits.violations_deg(ang).shape == (n, 15, 3)
    assert limits.ranges_deg().shape == (15, 6)


def test_angles_compose_back(layer):
    rot, g = _wild(300, 1, scale=1.0)
    betas = torch.randn(300, layer.n_betas, generator=g, dtype=torch.float64)
    ang = limits.joint_angles(layer, rot, betas)
    torch.testing.assert_close(limits.angles_to_rotmats(layer, ang, betas), rot[:, 1:], atol=1e-9, rtol=0)


def test_sampled_poses_inside_ranges(layer):
    g = torch.Generator().manual_seed(2)
    betas = torch.randn(400, layer.n_betas, generator=g, dtype=torch.float64)
    rot = limits.sample_poses(layer, 400, g, betas)
    viol = limits.violations_deg(limits.joint_angles(layer, rot, betas))
    assert viol.max() < 1e-3, f"joint {np.unravel_index(viol.argmax(), viol.shape)}: {viol.max():.3f} deg"


def test_inside_poses_unchanged(layer):
    g = torch.Generator().manual_seed(3)
    betas = torch.randn(200, layer.n_betas, generator=g, dtype=torch.float64)
    rot = limits.sample_poses(layer, 200, g, betas, scale=0.9)
    out = limits.project_to_limits(layer, rot, betas)
    assert (out - rot).abs().max() < 1e-5
    layer32 = ManoLayer(load_model(layer.side))  # float32 too
    out = limits.project_to_limits(layer32, rot.float(), betas.float())
    assert (out - rot.float()).abs().max() < 1e-5


def test_wild_poses_projected_inside(layer):
    rot, g = _wild(500, 4)
    betas = torch.randn(500, layer.n_betas, generator=g, dtype=torch.float64)
    ang = limits.joint_angles(layer, rot, betas)
    assert limits.violations_deg(ang).max() > 90  # the test poses are wild
    out = limits.project_to_limits(layer, rot, betas)
    torch.testing.assert_close(out[:, 0], rot[:, 0], atol=0, rtol=0)  # global orient untouched
    back = limits.joint_angles(layer, out, betas)
    assert limits.violations_deg(back).max() < 0.01
    torch.testing.assert_close(back, limits.clamp_angles(ang), atol=1e-7, rtol=0)
    # Still rotations.
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(out @ out.transpose(-1, -2), eye.expand_as(out), atol=1e-9, rtol=0)


def test_margin_pulls_inside(layer):
    rot, g = _wild(200, 5)
    betas = torch.zeros(200, layer.n_betas, dtype=torch.float64)
    out = limits.project_to_limits(layer, rot, betas, margin_deg=2.0)
    ang = np.degrees(limits.joint_angles(layer, out, betas).numpy())
    r = limits.ranges_deg()
    assert (ang >= r[:, 0::2] + 2.0 - 1e-6).all() and (ang <= r[:, 1::2] - 2.0 + 1e-6).all()
    with pytest.raises(ValueError, match="margin_deg"):
        limits.project_to_limits(layer, rot, betas, margin_deg=50.0)


def test_half_turn_swing_is_finite(layer):
    """A swing of 180 degrees leaves the twist undefined: angles, projection and gradients stay finite."""
    betas = torch.zeros(2, layer.n_betas, dtype=torch.float64)
    a, b, c = limits._joint_frames(layer, betas)
    aa = torch.zeros(2, 16, 3, dtype=torch.float64)
    aa[0, 1:] = a[0] * np.pi  # half turn about each flexion axis
    aa[1, 1:] = (a[1] + c[1]) / np.sqrt(2) * np.pi
    rot = aa_to_rotmat(aa).requires_grad_(True)
    ang = limits.joint_angles(layer, rot, betas)
    assert torch.isfinite(ang).all()
    np.testing.assert_allclose(ang.detach().norm(dim=-1).numpy(), np.pi, atol=1e-6)  # the whole angle is swing
    out = limits.project_to_limits(layer, rot, betas)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(rot.grad).all()
    assert limits.violations_deg(limits.joint_angles(layer, out.detach(), betas)).max() < 0.01


def test_identity_gradient_is_finite(layer):
    betas = torch.zeros(1, layer.n_betas, dtype=torch.float64)
    aa = torch.zeros(1, 16, 3, dtype=torch.float64, requires_grad=True)
    ang = limits.joint_angles(layer, aa_to_rotmat(aa), betas)
    ang[..., 0].sum().backward()  # d(flex)/d(aa) at rest: the flexion axis of each joint
    assert torch.isfinite(aa.grad).all()
    a, _, _ = limits._joint_frames(layer, betas)
    torch.testing.assert_close(aa.grad[0, 1:], a[0], atol=1e-9, rtol=0)


def test_soft_limit_loss():
    r = np.radians(limits.ranges_deg())
    inside = torch.as_tensor((r[:, 0::2] + r[:, 1::2]) / 2)[None]  # mid-range (1, 15, 3)
    assert limits.soft_limit_loss(inside).item() == 0.0
    out = inside.clone()
    out[0, 1, 0] = r[1, 1] + 0.1  # index PIP flexed 0.1 rad past its limit
    out[0, 0, 2] = r[0, 4] - 0.2  # index MCP twisted 0.2 rad below its limit
    np.testing.assert_allclose(limits.soft_limit_loss(out).item(), 0.1**2 + 0.2**2, rtol=1e-9)
    x = out.clone().requires_grad_(True)
    limits.soft_limit_loss(x).sum().backward()
    assert x.grad[0, 1, 0] > 0 and x.grad[0, 0, 2] < 0 and (x.grad != 0).sum() == 2


def test_left_hand_angles_mirror_right():
    """A mirrored right-hand pose on the (mirrored) left model has the same angles: one table fits both."""
    right = ManoLayer(load_model("right"), dtype=torch.float64)
    left = ManoLayer(load_model("left"), dtype=torch.float64)
    g = torch.Generator().manual_seed(6)
    betas = torch.randn(50, 10, generator=g, dtype=torch.float64)
    rot = limits.sample_poses(right, 50, g, betas)
    mirrored = MIRROR @ rot @ MIRROR
    torch.testing.assert_close(limits.joint_angles(left, mirrored, betas), limits.joint_angles(right, rot, betas),
                               atol=1e-9, rtol=0)


def test_one_shape_row_serves_the_batch(layer):
    """joint_angles with betas (1, NB) equals the same shape repeated (B, NB) (a clip's one shape)."""
    g = torch.Generator().manual_seed(11)
    betas = torch.randn(1, layer.n_betas, generator=g, dtype=layer.v_template.dtype)
    rot = limits.sample_poses(layer, 6, g, betas.expand(6, -1))
    torch.testing.assert_close(limits.joint_angles(layer, rot, betas),
                               limits.joint_angles(layer, rot, betas.expand(6, -1)), rtol=0, atol=1e-6)
