"""Finger capsules: segment distance, penetration depth and loss, and the pose fix `resolve`."""
import numpy as np
import pytest
import torch

from core.solve import collide, limits

from core import demo
from core.hand.load import load_model
from core.hand.mano import ManoLayer


@pytest.fixture(scope="module", params=["right", "left"])
def layer(request):
    return ManoLayer(load_model(request.param), dtype=torch.float64)


def _pose(layer, angles):
    """Local rotations (B, 16, 3, 3): identity global orient, finger joints from angles (B, 15, 3) rad."""
    betas = torch.zeros(angles.shape[0], layer.n_betas, dtype=angles.dtype)
    eye = torch.eye(3, dtype=angles.dtype).expand(angles.shape[0], 1, 3, 3)
    return torch.cat([eye, limits.angles_to_rotmats(layer, angles, betas)], 1), betas


def _crossed(layer, n=1):
    """Index adducted 30 degrees and middle abducted 30 degrees towards it: the fingers cross."""
    ang = torch.zeros(n, 15, 3, dtype=torch.float64)
    ang[:, 0, 1] = -np.radians(30)  # index MCP (joint 1), abduction < 0: towards the middle finger
    ang[:, 3, 1] = np.radians(30)  # middle MCP (joint 4), abduction > 0: towards the index
    return _pose(layer, ang)


def test_segment_distance_matches_sampling():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(400, 4, 3, generator=g, dtype=torch.float64)
    p[:60, 3] = p[:60, 2] + 0.7 * (p[:60, 1] - p[:60, 0])  # parallel
    p[60:90, 1] = p[60:90, 0]  # first segment a point
    p[90:120, 3] = p[90:120, 2]  # second segment a point
    p[120:150, 2] = p[120:150, 0] + 0.3 * (p[120:150, 1] - p[120:150, 0])  # touching
    d = collide.segment_distance(p[:, 0], p[:, 1], p[:, 2], p[:, 3])
    s = torch.linspace(0, 1, 401, dtype=torch.float64)[None, :, None]
    a = p[:, 0, None] + s * (p[:, 1] - p[:, 0])[:, None]
    b = p[:, 2, None] + s * (p[:, 3] - p[:, 2])[:, None]
    brute = torch.cdist(a, b).amin((1, 2))
    assert (d - brute).max() < 2e-6  # never above a sampled distance (1e-6 is the sqrt floor)
    assert (brute - d).max() < 1e-2  # and within the sampling step of it
    np.testing.assert_allclose(d[120:150].numpy(), 1e-6, atol=1e-9)


def test_shapes_and_batch_one(layer):
    for n in (1, 3):
        betas = torch.zeros(n, layer.n_betas, dtype=torch.float64)
        caps = collide.hand_capsules(layer, betas)
        assert caps.radii.shape == (n, 20) and caps.span.shape == (n, 20, 2)
        rest = torch.eye(3, dtype=torch.float64).repeat(n, 16, 1, 1)
        j = layer(betas, None, None, None, with_vertices=False, rotmats=rest).joints21
        assert collide.pair_penetration(j, caps).shape == (n, len(collide.FINGER_PAIRS))
        assert collide.penetration_depth(j, caps).shape == (n,)
        assert collide.penetration_loss(j, caps).shape == (n,)
        one = collide.hand_capsules(layer, betas[:1])  # one shape for a whole clip broadcasts
        assert collide.penetration_depth(j, one).shape == (n,)
    assert collide.FINGER_PAIRS.shape == (90, 2)


def test_capsules_measured_on_the_mesh(layer):
    g = torch.Generator().manual_seed(1)
    betas = torch.randn(4, layer.n_betas, generator=g, dtype=torch.float64)
    caps = collide.hand_capsules(layer, betas)
    finger = collide.BONE_FINGER >= 0
    r_mm = caps.radii.numpy() * 1000
    assert (r_mm[:, finger] > 4).all() and (r_mm[:, finger] < 16).all(), r_mm
    assert (r_mm[:, ~finger] == 0).all()
    span = caps.span.numpy()
    assert (span >= 0).all() and (span <= 1).all() and (span[..., 0] <= span[..., 1]).all()
    # Fingertip bones end one radius before the tip vertex, the others at their child joint.
    assert (span[:, collide.TIP_BONE, 1] < 1).all() and (span[:, ~collide.TIP_BONE, 1] == 1).all()


def test_rest_and_demo_motion_do_not_penetrate(layer):
    g = torch.Generator().manual_seed(2)
    betas = torch.randn(8, layer.n_betas, generator=g, dtype=torch.float64)
    rest = torch.eye(3, dtype=torch.float64).repeat(8, 16, 1, 1)
    j = layer(betas, None, None, None, with_vertices=False, rotmats=rest).joints21
    assert collide.penetration_depth(j, collide.hand_capsules(layer, betas)).max() < 1e-4
    if layer.side == "right":  # the demo motion (fist, spread, opposition) is checked free of mesh intersections
        m = demo.author_motion(ManoLayer(load_model("right")), 48)
        betas = m.betas.double()
        j = layer(betas.expand(48, -1), None, None, None, with_vertices=False, rotmats=m.rotmats.double()).joints21
        assert collide.penetration_depth(j, collide.hand_capsules(layer, betas)).max() < 1e-3


def test_penetration_depth_by_hand():
    """Two bones crossing at right angles, every other finger far away: depth = r1 + r2 - gap."""
    j = torch.zeros(1, 21, 3, dtype=torch.float64)
    for f, name in enumerate(("thumb", "index", "middle", "ring", "pinky")):
        (j1, j2, j3), tip = collide.FINGERS[name]
        for k, jj in enumerate((j1, j2, j3, tip)):
            j[0, jj] = torch.tensor([f * 1.0, 0.0, 0.1 * (k + 1)])  # fingers a metre apart, along z
    j[0, 1], j[0, 2] = torch.tensor([0.0, -0.05, 0.0]), torch.tensor([0.0, 0.05, 0.0])  # index1 -> index2 along y
    j[0, 4], j[0, 5] = torch.tensor([-0.05, 0.0, 0.004]), torch.tensor([0.05, 0.0, 0.004])  # middle1 -> middle2 along x
    radii = torch.full((1, 20), 0.003, dtype=torch.float64)
    span = torch.tensor([0.0, 1.0], dtype=torch.float64).expand(1, 20, 2)
    caps = collide.Capsules(radii, span)
    np.testing.assert_allclose(collide.penetration_depth(j, caps).numpy(), [0.002], atol=1e-9)
    np.testing.assert_allclose(collide.penetration_loss(j, caps).numpy(), [4.0], atol=1e-6)  # (2 mm)^2
    np.testing.assert_allclose(collide.penetration_loss(j, caps, threshold=0.001).numpy(), [1.0], atol=1e-6)
    j[0, 4:6, 2] = 0.007  # 7 mm apart: no contact
    assert collide.penetration_depth(j, caps).item() == 0.0


def test_crossed_fingers_detected_and_loss_pushes_apart(layer):
    rot, betas = _crossed(layer)
    caps = collide.hand_capsules(layer, betas)
    j = layer(betas, None, None, None, with_vertices=False, rotmats=rot).joints21.clone().requires_grad_(True)
    depth = collide.penetration_depth(j, caps)
    assert depth.item() > 0.008
    loss = collide.penetration_loss(j, caps)
    loss.sum().backward()
    assert torch.isfinite(j.grad).all()
    moved = (j - 1e-6 * j.grad).detach()  # a small gradient step separates them
    assert collide.penetration_depth(moved, caps).item() < depth.item()


def test_resolve_fixes_only_penetrating_frames(layer):
    crossed, betas1 = _crossed(layer)
    g = torch.Generator().manual_seed(3)
    ok = limits.sample_poses(layer, 1, g, betas1, scale=0.3)
    rot = torch.cat([crossed, ok])
    betas = torch.zeros(2, layer.n_betas, dtype=torch.float64)
    j_ok = layer(betas[1:], None, None, None, with_vertices=False, rotmats=ok).joints21
    caps = collide.hand_capsules(layer, betas[:1])
    assert collide.penetration_depth(j_ok, caps).item() <= 0.002, "the sampled pose must not penetrate"
    res = collide.resolve(layer, rot, betas, iters=60)
    assert res.rotmats.shape == (2, 16, 3, 3) and res.depth_before.shape == (2,)
    assert res.changed.tolist() == [True, False]
    assert torch.equal(res.rotmats[1], rot[1]) and torch.equal(res.rotmats[:, 0], rot[:, 0])
    assert res.depth_before[0] > 0.008 and res.depth_after[0] < 0.002
    j = layer(betas, None, None, None, with_vertices=False, rotmats=res.rotmats).joints21
    torch.testing.assert_close(collide.penetration_depth(j, caps), res.depth_after, atol=1e-9, rtol=0)
    assert limits.violations_deg(limits.joint_angles(layer, res.rotmats, betas)).max() < 1e-6
    # Only the two crossed fingers moved.
    j0 = layer(betas, None, None, None, with_vertices=False, rotmats=rot).joints21
    moved = ((j - j0).norm(dim=-1)[0] > 1e-9).nonzero()[:, 0].tolist()
    assert set(moved) <= {1, 2, 3, 17, 4, 5, 6, 18}, moved


def test_resolve_without_penetration_is_identity(layer):
    betas = torch.zeros(1, layer.n_betas, dtype=torch.float64)
    rot = torch.eye(3, dtype=torch.float64).repeat(1, 16, 1, 1)
    res = collide.resolve(layer, rot, betas)
    assert torch.equal(res.rotmats, rot) and not res.changed.any() and res.depth_after.item() == 0.0
