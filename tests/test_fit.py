"""The 2D-aware fit (`core.solve.fit`) and its use in `core.solve.pose.fit_hand`: shape contracts (B=1 and B>1),
exact recovery on synthetic landmarks made from the model itself, the joint-limit term, and the
fallback path without relative depth. Accuracy on real images is `python -m benchmarks.dev_eval`."""
import dataclasses

import numpy as np
import pytest
import torch

from core.solve import fit, limits
from core.hand.model import MANO21_FROM_MP, MP_FROM_MANO21, MP_PARENTS
from core.hand.load import load_model
from core.hand.mano import ManoLayer
from core.solve.pose import fit_hand

K_TEST = np.array([[600.0, 0.0, 319.5], [0.0, 600.0, 239.5], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module", params=["right", "left"])
def layer(request):
    return ManoLayer(load_model(request.param))


def _scene(layer, n: int, seed: int, scale: float = 0.6):
    """n posed hands in front of the camera: (rotmats, transl, betas, joints MANO-21 camera frame)."""
    g = torch.Generator().manual_seed(seed)
    betas = torch.zeros(n, layer.n_betas)
    rot = limits.sample_poses(layer, n, g, betas, scale=scale)
    transl = torch.stack([torch.rand(n, generator=g) * 0.2 - 0.1, torch.rand(n, generator=g) * 0.2 - 0.1,
                          0.45 + torch.rand(n, generator=g) * 0.3], -1)
    out = layer(betas, None, None, transl, with_vertices=False, rotmats=rot)
    return rot, transl, betas, out.joints21


def _landmarks(joints_mp: torch.Tensor, K: torch.Tensor):
    """Exact 2D landmarks (B, 21, 2) and relative depth in pixel units (B, 21) of camera-frame joints."""
    z = joints_mp[..., 2]
    px = joints_mp[..., :2] / z[..., None] * torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None] + K[:, None, :2, 2]
    z_px = K[:, 0, 0, None] * (z / z[:, :1] - 1)  # depth = Z0 (1 + z_px / fx)
    return px, z_px


@pytest.mark.parametrize("n", [1, 6])
def test_backproject_recovers_joints(layer, n):
    *_, j21 = _scene(layer, n, seed=n)
    j_mp = j21[:, MP_FROM_MANO21]
    K = torch.as_tensor(K_TEST, dtype=torch.float32).expand(n, 3, 3)
    px, z_px = _landmarks(j_mp, K)
    bones = (j_mp[:, 1:] - j_mp[:, MP_PARENTS[1:]]).norm(dim=-1)  # (B, 20) exact lengths
    out = fit.backproject(px, z_px, K, bones)
    assert out.shape == (n, 21, 3) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), j_mp.numpy(), atol=1e-4)  # 0.1 mm
    # Clip-wide lengths (20,) broadcast; a wrong scale scales the hand about the camera centre.
    out2 = fit.backproject(px, z_px, K, bones[0] * 1.1)
    assert out2.shape == (n, 21, 3)
    np.testing.assert_allclose(out2[:1].numpy(), 1.1 * j_mp[:1].numpy(), atol=1e-4)


@pytest.mark.parametrize("n", [1, 5])
def test_fuse(layer, n):
    *_, j21 = _scene(layer, n, seed=10 + n)
    bp = j21[:, MP_FROM_MANO21]
    g = torch.Generator().manual_seed(3)
    from core.rot import aa_to_rotmat

    r = aa_to_rotmat(torch.randn(n, 3, generator=g) * 0.3)
    world = (bp - bp.mean(1, keepdim=True)) @ r.transpose(1, 2)  # same shape, other orientation, centred
    for w in (0.0, 0.3, 1.0):
        out = fit.fuse(world, bp, w)
        assert out.shape == (n, 21, 3)
        np.testing.assert_allclose(out.numpy(), bp.numpy(), atol=1e-5)  # equal shapes: the blend is bp
    # rot_weight 1: bp turned about its centroid to world's orientation.
    out = fit.fuse(world, bp, 0.0, rot_weight=1.0)
    c = out.mean(1, keepdim=True)
    np.testing.assert_allclose(c.numpy(), bp.mean(1, keepdim=True).numpy(), atol=1e-6)
    np.testing.assert_allclose((out - c).numpy(), world.numpy(), atol=1e-5)


def test_fk_rigid_matches_layer(layer):
    rot, transl, betas, j21 = _scene(layer, 8, seed=4)
    rest21 = torch.cat([layer.rest_joints(betas), layer.rest_tips(betas)], 1)
    j, grot = fit.fk_rigid(rot, rest21, transl)
    assert j.shape == (8, 21, 3) and grot.shape == (8, 16, 3, 3)
    if not layer.has_posedirs:  # the open model: tips fully weighted to their last joint
        np.testing.assert_allclose(j.numpy(), j21.numpy(), atol=1e-6)


@pytest.mark.parametrize("n", [1, 16])
def test_refine_converges_to_truth(layer, n):
    """Exact 2D and 3D from a known pose; start from a perturbed pose; plain Gauss-Newton (no prior, no
    damping) lands on the truth: the analytic Jacobian is right."""
    rot, transl, betas, j21 = _scene(layer, n, seed=20 + n, scale=0.5)
    K = torch.as_tensor(K_TEST, dtype=torch.float32).expand(n, 3, 3)
    px, _ = _landmarks(j21[:, MP_FROM_MANO21], K)
    px21 = px[:, MANO21_FROM_MP]
    g = torch.Generator().manual_seed(5)
    from core.rot import aa_to_rotmat

    start = rot @ aa_to_rotmat(torch.randn(n, 16, 3, generator=g) * 0.1)
    t0 = transl + torch.randn(n, 3, generator=g) * 0.01
    cfg = fit.RefineConfig(iters=12, w_prior=0.0, w_limit=0.0, damping=0.0)
    r, t = fit.refine(layer, betas, start, t0, px21, K, j21, cfg)
    assert r.shape == (n, 16, 3, 3) and t.shape == (n, 3) and r.dtype == torch.float32
    out = layer(betas, None, None, t, with_vertices=False, rotmats=r).joints21
    before = layer(betas, None, None, t0, with_vertices=False, rotmats=start).joints21
    err = (out - j21).norm(dim=-1) * 1000
    start_mm = ((before - j21).norm(dim=-1) * 1000).max()
    assert err.max() < 0.05, f"max joint error {err.max():.3f} mm (start {start_mm:.1f})"


def test_refine_limit_term_pulls_into_range(layer):
    """With only the limit term (and the prior towards the out-of-range start), the joints end inside
    their ranges (within 1 degree)."""
    n = 8
    rot, transl, betas, j21 = _scene(layer, n, seed=40)
    ang = limits.joint_angles(layer, rot, betas)
    bad = ang.clone()
    bad[:, :, 1] = bad[:, :, 1] + 0.6  # ~35 degrees more abduction everywhere: out of every range
    rot_bad = torch.cat([rot[:, :1], limits.angles_to_rotmats(layer, bad, betas)], 1)
    assert limits.violations_deg(limits.joint_angles(layer, rot_bad, betas)).max() > 10
    cfg = fit.RefineConfig(iters=8, w_2d=0.0, w_3d=0.0, w_limit=1.0)
    K = torch.as_tensor(K_TEST, dtype=torch.float32).expand(n, 3, 3)
    r, _ = fit.refine(layer, betas, rot_bad, transl, torch.zeros(n, 21, 2), K, j21, cfg)
    assert limits.violations_deg(limits.joint_angles(layer, r, betas)).max() < 1.0


def test_refine_non_finite_frame_keeps_start(layer):
    n = 3
    rot, transl, betas, j21 = _scene(layer, n, seed=50)
    K = torch.as_tensor(K_TEST, dtype=torch.float32).expand(n, 3, 3)
    px, _ = _landmarks(j21[:, MP_FROM_MANO21], K)
    px = px.clone()
    px[1] = float("nan")
    r, t = fit.refine(layer, betas, rot, transl, px[:, MANO21_FROM_MP], K, j21)
    assert torch.isfinite(r).all() and torch.isfinite(t).all()
    np.testing.assert_array_equal(r[1].numpy(), rot[1].numpy())


def _synthetic_clip(layer, n: int, seed: int):
    """MediaPipe-like inputs from the model itself: 2D landmarks (pixel centres), normalised relative z,
    metric world landmarks (hand-centred, camera axes), per-frame K; and the true camera-frame joints."""
    *_, j21 = _scene(layer, n, seed=seed)
    j_mp = j21[:, MP_FROM_MANO21]
    K = torch.as_tensor(K_TEST, dtype=torch.float32).expand(n, 3, 3)
    px, z_px = _landmarks(j_mp, K)
    width = 640
    # MediaPipe's world landmarks see the hand as if it were centred: undo the viewing-ray rotation.
    from core.solve.camera import ray_rotation

    world = (j_mp - j_mp.mean(1, keepdim=True)) @ ray_rotation(px, K)
    return px.numpy(), (z_px / width).numpy(), world.numpy(), K.numpy().astype(np.float64), width, j_mp.numpy()


def test_fit_hand_with_relative_depth(layer):
    n = 12
    px, z, world, K, width, truth = _synthetic_clip(layer, n, seed=60)
    det = np.ones(n, bool)
    det[[3, 7]] = False
    res = fit_hand(layer, px, world, det, K, landmarks_z=z, image_width=width, with_vertices=True)
    assert res.joints.shape == (n, 21, 3) and res.hand_pose.shape == (n, 15, 3)
    assert res.global_orient.shape == (n, 3) and res.transl.shape == (n, 3)
    assert res.vertices.shape == (n, layer.v_template.shape[0], 3)
    assert res.betas.shape == (layer.n_betas,)
    assert (res.joints[~det] == 0).all() and (res.vertices[~det] == 0).all()
    err = np.linalg.norm(res.joints[det] - truth[det], axis=-1) * 1000
    # Same model, exact inputs: what remains is the shape prior of `shape.fit_betas` (betas 0 here).
    assert err.mean() < 1.0, f"mean joint error {err.mean():.2f} mm"
    # The output pose is the one that gives those joints.
    out = layer(torch.as_tensor(res.betas)[None].expand(n, -1), torch.as_tensor(res.global_orient),
                torch.as_tensor(res.hand_pose), torch.as_tensor(res.transl), with_vertices=False)
    np.testing.assert_allclose(out.joints21[:, MP_FROM_MANO21].numpy()[det], res.joints[det], atol=1e-4)


def test_fit_hand_one_frame_and_fallback(layer):
    px, z, world, K, width, truth = _synthetic_clip(layer, 1, seed=70)
    det = np.ones(1, bool)
    a = fit_hand(layer, px, world, det, K, landmarks_z=z, image_width=width)
    b = fit_hand(layer, px, world, det, K)  # no relative depth: world landmarks + 2D translation
    c = fit_hand(layer, px, world, det, K, landmarks_z=z, image_width=width,
                 config=dataclasses.replace(fit.FitConfig(), refine=None))  # analytic IK only
    for res in (a, b, c):
        assert res.joints.shape == (1, 21, 3) and np.isfinite(res.joints).all()
        err = np.linalg.norm(res.joints - truth, axis=-1).mean() * 1000
        assert err < 10.0, f"mean joint error {err:.2f} mm"


def test_fit_hand_nothing_detected(layer):
    n = 4
    res = fit_hand(layer, np.zeros((n, 21, 2)), np.zeros((n, 21, 3)), np.zeros(n, bool),
                   np.repeat(K_TEST[None], n, 0), landmarks_z=np.zeros((n, 21)), image_width=640)
    assert not res.valid.any() and (res.joints == 0).all()


def test_fit_hand_pushes_crossed_fingers_apart(layer):
    """Landmarks of index and middle crossed (30 deg of MCP abduction towards each other: inside the
    limits, 4-8 mm deep): the output poses keep every finger pair under 2 mm, and only the penetration
    step does it (with it off the same input comes out crossed)."""
    from core.eval import plausibility

    n = 3
    ang = torch.zeros(n, 15, 3)
    ang[:, 0, 1] = -torch.deg2rad(torch.tensor([24.0, 27.0, 30.0]))  # index MCP towards the middle finger
    ang[:, 3, 1] = torch.deg2rad(torch.tensor([24.0, 27.0, 30.0]))  # middle MCP towards the index
    betas = torch.zeros(n, layer.n_betas)
    rot = torch.cat([torch.eye(3).expand(n, 1, 3, 3), limits.angles_to_rotmats(layer, ang, betas)], 1)
    transl = torch.tensor([0.0, 0.0, 0.5]).expand(n, 3)
    j_mp = layer(betas, None, None, transl, with_vertices=False, rotmats=rot).joints21[:, MP_FROM_MANO21]
    K = torch.as_tensor(K_TEST, dtype=torch.float32).expand(n, 3, 3)
    px, z_px = _landmarks(j_mp, K)
    world = (j_mp - j_mp.mean(1, keepdim=True)).numpy()
    _, pen_in = plausibility.check_poses(layer, rot, betas[:1])
    assert (pen_in > 4.0).all(), pen_in
    args = (px.numpy(), world, np.ones(n, bool), K.numpy().astype(np.float64))
    kw = dict(landmarks_z=(z_px / 640).numpy(), image_width=640)
    pens = {}
    for on in (True, False):
        cfg = fit.FitConfig() if on else dataclasses.replace(fit.FitConfig(), penetration=None)
        res = fit_hand(layer, *args, config=cfg, **kw)
        aa = torch.as_tensor(np.concatenate([res.global_orient[:, None], res.hand_pose], 1))
        from core.rot import aa_to_rotmat

        lim, pens[on] = plausibility.check_poses(layer, aa_to_rotmat(aa), torch.as_tensor(res.betas)[None])
        assert (lim < 1e-3).all()
    assert (pens[True] < 2.0).all(), pens[True]
    assert (pens[False] > 2.0).all(), pens[False]
