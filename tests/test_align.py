"""The final image alignment of video fits (`core.solve.fit.FitConfig.align`, step 6b of
`core.solve.pose.fit_hand`): after the temporal clean-up and the limit projection, the keyed pose is
pulled back onto the detector's 2D landmarks, with the cleaned pose as a prior. Synthetic clips made
from the hand model itself, known K. Reprojection on real video: BENCHMARKS.md."""
import dataclasses

import numpy as np
import pytest
import torch

from core.hand.load import load_model
from core.hand.mano import ManoLayer
from core.hand.model import MP_FROM_MANO21
from core.solve import fit, limits
from core.solve.camera import ray_rotation
from core.solve.pose import fit_hand

K_TEST = np.array([[600.0, 0.0, 319.5], [0.0, 600.0, 239.5], [0.0, 0.0, 1.0]])
WIDTH = 640
FPS = 30.0


@pytest.fixture(scope="module", params=["right", "left"])
def layer(request):
    return ManoLayer(load_model(request.param))


def _moving_clip(layer, n: int, seed: int):
    """A clip the clean-up cannot follow exactly: the hand travels across the image in a zig-zag (the
    translation changes direction every 3 frames) while the fingers flex and relax quickly. Returns
    MediaPipe-like inputs (2D pixels, normalised relative z, hand-centred world landmarks, K) and the true
    camera-frame joints (MediaPipe order)."""
    g = torch.Generator().manual_seed(seed)
    betas = torch.zeros(n, layer.n_betas)
    ang = torch.zeros(n, 15, 3)
    t = torch.arange(n, dtype=torch.float32)
    flex = 0.6 * (1 + torch.sin(2 * torch.pi * t / 5.0))  # radians, a 6 Hz flex at 30 fps
    for j in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11):  # index .. ring, all three joints
        ang[:, j, 2] = flex
    rot = torch.cat([torch.eye(3).expand(n, 1, 3, 3), limits.angles_to_rotmats(layer, ang, betas)], 1)
    rot = limits.project_to_limits(layer, rot, betas)
    zig = torch.where((t // 3) % 2 == 0, t % 3, 3 - t % 3) * 0.02 - 0.03  # metres
    transl = torch.stack([zig, 0.01 * torch.randn(n, generator=g), torch.full((n,), 0.5)], -1)
    j_mp = layer(betas, None, None, transl, with_vertices=False, rotmats=rot).joints21[:, MP_FROM_MANO21]
    K = torch.as_tensor(K_TEST, dtype=torch.float32).expand(n, 3, 3)
    z = j_mp[..., 2]
    px = j_mp[..., :2] / z[..., None] * torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None] + K[:, None, :2, 2]
    z_px = K[:, 0, 0, None] * (z / z[:, :1] - 1)
    world = (j_mp - j_mp.mean(1, keepdim=True)) @ ray_rotation(px, K)
    return (px.numpy(), (z_px / WIDTH).numpy(), world.numpy(), K.numpy().astype(np.float64), j_mp.numpy())


def _reproj_px(joints: np.ndarray, K: np.ndarray, px: np.ndarray) -> np.ndarray:
    uv = joints[..., :2] / joints[..., 2:3] * K[:, None, [0, 1], [0, 1]] + K[:, None, :2, 2]
    return np.linalg.norm(uv - px, axis=-1)


def test_align_keeps_video_fit_on_the_image(layer):
    n = 30
    px, z, world, K, truth = _moving_clip(layer, n, seed=3)
    det = np.ones(n, bool)
    det[[10, 20]] = False  # gap-filled frames have no 2D: left as the clean-up filled them
    kw = dict(landmarks_z=z, image_width=WIDTH, fps=FPS)
    on = fit_hand(layer, px, world, det, K, **kw)
    off = fit_hand(layer, px, world, det, K, config=dataclasses.replace(fit.FitConfig(), align=None), **kw)
    assert on.valid.all() and off.valid.all()
    e_on, e_off = _reproj_px(on.joints, K, px)[det], _reproj_px(off.joints, K, px)[det]
    # The clean-up alone leaves the hand off its landmarks (it cannot follow the zig-zag) ...
    assert np.median(e_off) > 2.0, np.median(e_off)
    # ... the alignment brings it back: closer on the median and the tail, and within ~1 px on the median.
    assert np.median(e_on) < 0.5 * np.median(e_off), (np.median(e_on), np.median(e_off))
    assert np.percentile(e_on, 95) < np.percentile(e_off, 95)
    assert np.median(e_on) < 1.5, np.median(e_on)
    # Gap-filled frames are untouched by the alignment.
    np.testing.assert_allclose(on.joints[~det], off.joints[~det], atol=1e-6)
    # And the output is still a plausible, exactly keyed pose: inside the limits, its joints from its pose.
    from core.eval import plausibility
    from core.rot import aa_to_rotmat

    rot = aa_to_rotmat(torch.as_tensor(np.concatenate([on.global_orient[:, None], on.hand_pose], 1)))
    lim, pen = plausibility.check_poses(layer, rot, torch.as_tensor(on.betas)[None])
    assert (lim <= 5.0).all() and (pen <= 2.0).all()
    out = layer(torch.as_tensor(on.betas)[None].expand(n, -1), None, None, torch.as_tensor(on.transl),
                with_vertices=False, rotmats=rot)
    np.testing.assert_allclose(out.joints21[:, MP_FROM_MANO21].numpy(), on.joints, atol=1e-4)


def test_align_is_video_only(layer):
    """Unrelated images (no fps) get no temporal clean-up, so nothing to undo: the output is the same with
    the alignment on or off."""
    n = 4
    px, z, world, K, _ = _moving_clip(layer, n, seed=5)
    det = np.ones(n, bool)
    a = fit_hand(layer, px, world, det, K, landmarks_z=z, image_width=WIDTH)
    b = fit_hand(layer, px, world, det, K, landmarks_z=z, image_width=WIDTH,
                 config=dataclasses.replace(fit.FitConfig(), align=None))
    np.testing.assert_array_equal(a.joints, b.joints)


def test_hyperextension_prior_takes_the_flexed_side(layer):
    """Fingers pointing at the camera (the hand turned 70 deg out of the image plane), the index finger
    flexed (MCP and PIP 50-60 deg), while the detector's 3D and relative depth show it bent backwards. The 2D
    shows the flexed side, but the 3D target wins without the prior (`RefineConfig.w_hyper` 0): the PIP comes
    out bent backwards; with it (3, gated as the capture's default, `fit.HYPER_GATE`: the mirrored, flexed
    side fits the 2D better, so the prior acts) the fingers are not bent backwards beyond a few degrees, at
    about the same reprojection."""
    from core.rot import aa_to_rotmat

    n = 2
    b = torch.zeros(n, layer.n_betas)
    turn = -70.0 if layer.side == "right" else 70.0

    def joints(mcp_deg: float, pip_deg: float) -> torch.Tensor:
        ang = torch.zeros(n, 15, 3)
        ang[:, 0, 0] = float(np.radians(mcp_deg))
        ang[:, 1, 0] = float(np.radians(pip_deg))
        ang[:, 2, 0] = float(np.radians(0.6 * pip_deg))
        go = aa_to_rotmat(torch.tensor([0.0, float(np.radians(turn)), 0.0]).expand(n, 3))[:, None]
        rot = torch.cat([go, limits.angles_to_rotmats(layer, ang, b)], 1)
        out = layer(b, None, None, torch.tensor([0.0, 0.0, 0.5]).expand(n, 3), with_vertices=False, rotmats=rot)
        return out.joints21[:, MP_FROM_MANO21]

    true, flipped = joints(55.0, 55.0), joints(-40.0, 0.0)
    K = torch.as_tensor(K_TEST, dtype=torch.float32).expand(n, 3, 3)
    px = true[..., :2] / true[..., 2:3] * 600.0 + torch.tensor([319.5, 239.5])
    z = flipped[..., 2]
    z_px = 600.0 * (z / z[:, :1] - 1)
    world = (flipped - flipped.mean(1, keepdim=True)) @ ray_rotation(px, K)
    flex, err = {}, {}
    for w in (0.0, 3.0):
        c = fit.FitConfig()
        cfg = dataclasses.replace(c, refine=dataclasses.replace(c.refine, w_hyper=w))
        r = fit_hand(layer, px.numpy(), world.numpy(), np.ones(n, bool), K.numpy().astype(np.float64),
                     landmarks_z=(z_px / WIDTH).numpy(), image_width=WIDTH, config=cfg)
        rot = aa_to_rotmat(torch.as_tensor(np.concatenate([r.global_orient[:, None], r.hand_pose], 1)))
        flex[w] = np.degrees(limits.joint_angles(layer, rot, torch.as_tensor(r.betas)[None])[..., :12, 0].numpy())
        err[w] = np.median(_reproj_px(r.joints, K.numpy(), px.numpy()))
    assert flex[0.0][:, 1].min() < -5.0, flex[0.0][:, 1]  # index PIP bent backwards without the prior
    assert flex[3.0].min() > -3.0, flex[3.0].min()  # no finger joint bent backwards with it
    assert err[3.0] < err[0.0] + 1.0, (err[3.0], err[0.0])


def test_hyperextension_the_image_shows_is_kept(layer):
    """Index and middle truly hyperextended (MCP -30 / -20 deg, DIP -20 deg) and seen side-on (every bend
    across the viewing ray), exact 2D and 3D: the gated prior (the default, `fit.HYPER_GATE`) leaves the
    flexions where they are (the mirrored side would fit the 2D far worse), while the prior everywhere
    (``hyper_gate`` None) pulls them towards straight."""
    n = 2
    b = torch.zeros(n, layer.n_betas)
    ang = torch.zeros(n, 15, 3)
    ang[:, 0, 0], ang[:, 2, 0] = float(np.radians(-30.0)), float(np.radians(-20.0))  # index MCP, DIP
    ang[:, 3, 0], ang[:, 5, 0] = float(np.radians(-20.0)), float(np.radians(-20.0))  # middle MCP, DIP
    rot = torch.cat([torch.eye(3).expand(n, 1, 3, 3), limits.angles_to_rotmats(layer, ang, b)], 1)
    true = layer(b, None, None, torch.tensor([0.0, 0.0, 0.5]).expand(n, 3), with_vertices=False,
                 rotmats=rot).joints21[:, MP_FROM_MANO21]
    K = torch.as_tensor(K_TEST, dtype=torch.float32).expand(n, 3, 3)
    px = true[..., :2] / true[..., 2:3] * 600.0 + torch.tensor([319.5, 239.5])
    z = true[..., 2]
    z_px = 600.0 * (z / z[:, :1] - 1)
    world = (true - true.mean(1, keepdim=True)) @ ray_rotation(px, K)
    flex = {}
    for name, gate in (("gated", fit.HYPER_GATE), ("everywhere", None)):
        c = fit.FitConfig()
        cfg = dataclasses.replace(c, refine=dataclasses.replace(c.refine, hyper_gate=gate))
        r = fit_hand(layer, px.numpy(), world.numpy(), np.ones(n, bool), K.numpy().astype(np.float64),
                     landmarks_z=(z_px / WIDTH).numpy(), image_width=WIDTH, config=cfg)
        from core.rot import aa_to_rotmat

        rr = aa_to_rotmat(torch.as_tensor(np.concatenate([r.global_orient[:, None], r.hand_pose], 1)))
        flex[name] = np.degrees(limits.joint_angles(layer, rr, torch.as_tensor(r.betas)[None])[..., :6, 0].numpy())
    want = np.degrees(ang[:, :6, 0].numpy())
    assert np.abs(flex["gated"] - want).max() < 3.0, flex["gated"] - want
    assert (flex["everywhere"] - want).max() > 8.0, flex["everywhere"] - want
