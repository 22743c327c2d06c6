"""The prior on the depths of one person's two hands (issue 15 item 2): `core.solve.pose.pair_depths` pulls two
hands' depths together where they are seen together, the less certain hand moving more, and
`core.solve.fit.refine`'s depth row moves a hand towards a given depth. Figures: BENCHMARKS.md."""
import numpy as np
import torch

from core.hand.load import load_model
from core.hand.mano import ManoLayer
from core.solve import fit
from core.solve.pose import HandFit, PairDepthConfig, pair_depths

K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])


def _hand(depths, wobble_px=0.0, seed=0):
    """A flat hand of 21 points (a 9 cm grid) at each frame's depth, its exact 2D (plus ``wobble_px`` noise:
    a worse fit), as a HandFit and the 2D."""
    t = len(depths)
    g = np.stack(np.meshgrid(np.linspace(-0.045, 0.045, 7), np.linspace(-0.045, 0.045, 3)), -1).reshape(21, 2)
    j = np.zeros((t, 21, 3))
    j[..., :2] = g
    j[..., 2] = np.asarray(depths)[:, None]
    px = j[..., :2] / j[..., 2:] * 500.0 + K[:2, 2]
    px = px + np.random.default_rng(seed).normal(0.0, wobble_px, px.shape)
    z = np.zeros
    f = HandFit(z(10), z((t, 3)), z((t, 15, 3)), z((t, 3)), j.astype(np.float32), np.ones(t, bool))
    return f, px


def test_pair_depths_shrink_the_gap_and_the_less_certain_hand_moves_more():
    t = 5
    a, pa = _hand([0.40] * t)
    b, pb = _hand([0.70] * t, wobble_px=4.0)
    det_b = np.ones(t, bool)
    det_b[-1] = False  # not seen together on the last frame
    cfg = PairDepthConfig(gap_sigma=0.15)
    (da, wa), (db, wb) = pair_depths([a, b], [pa, pb], np.repeat(K[None], t, 0), [np.ones(t, bool), det_b], cfg)
    assert np.isnan(da[-1]) and np.isnan(db[-1]) and wa[-1] == 0 and wb[-1] == 0
    both = slice(0, t - 1)
    moved_a, moved_b = da[both] - 0.40, 0.70 - db[both]
    assert (moved_a > 0).all() and (moved_b > 0).all()  # towards each other
    assert (moved_b > moved_a).all()  # the worse-fitting (less certain) hand moves more
    assert ((db - da)[both] < 0.30).all() and ((db - da)[both] > 0.0).all()  # the gap shrinks, never flips
    assert (wa[both] > wb[both]).all()  # the certain hand's prior row weighs more
    # A wide prior leaves the depths nearly as they were.
    (da2, _), (db2, _) = pair_depths([a, b], [pa, pb], np.repeat(K[None], t, 0), [np.ones(t, bool)] * 2,
                                     PairDepthConfig(gap_sigma=10.0))
    assert np.abs(da2 - 0.40).max() < 1e-3 and np.abs(db2 - 0.70).max() < 1e-3


def test_refine_depth_row_moves_the_hand_towards_the_given_depth():
    layer = ManoLayer(load_model("right"))
    n = 3
    betas = torch.zeros(n, layer.n_betas)
    rot = torch.eye(3).expand(n, 16, 3, 3).clone()
    transl = torch.tensor([0.0, 0.0, 0.5]).expand(n, 3).clone()
    with torch.no_grad():
        j = layer(betas, None, None, transl, rotmats=rot, with_vertices=False).joints21
        kk = torch.as_tensor(K, dtype=torch.float32).expand(n, 3, 3)
        px = j[..., :2] / j[..., 2:] * 500.0 + torch.as_tensor(K[:2, 2], dtype=torch.float32)
        cfg = fit.RefineConfig(iters=6, w_2d=0.0, w_3d=0.0, w_prior=1.0, w_limit=0.0)
        z0 = float(j[..., 2].mean())
        target = torch.full((n,), z0 + 0.05)
        _, t_on = fit.refine(layer, betas, rot, transl, px, kk, j, cfg, depth=target, depth_w=torch.ones(n))
        _, t_off = fit.refine(layer, betas, rot, transl, px, kk, j, cfg, depth=target, depth_w=torch.zeros(n))
    assert torch.allclose(t_off, transl, atol=1e-5)
    moved = t_on[:, 2] - transl[:, 2]
    assert ((moved > 0.02) & (moved < 0.06)).all(), moved  # towards the 5 cm deeper target, not past it
