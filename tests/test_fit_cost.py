"""What makes the fit cheaper keeps its results: the capture's torch threads, the joint frames kept for one
shape, the penetration fix on the frames gathered from the whole clip, the two-step cut thumbnail."""
import numpy as np
import pytest
import torch

from core.solve import collide, limits, pose
from core.solve.fit import FitConfig
from core.hand.load import load_model
from core.hand.mano import ManoLayer


@pytest.fixture(scope="module")
def layer():
    return ManoLayer(load_model("right"))


def _poses(layer, n, seed=0, spread=0.6):
    """(n, 16, 3, 3) random flexion and abduction (about half the frames above the penetration threshold)."""
    g = torch.Generator().manual_seed(seed)
    ang = (torch.rand(n, 15, 3, generator=g) - 0.5) * spread
    ang[:, :, 2] = 0
    betas = torch.zeros(1, layer.n_betas)
    rot = limits.angles_to_rotmats(layer, ang, betas.expand(n, -1))
    return torch.cat([torch.eye(3).expand(n, 1, 3, 3), rot], 1), betas


def test_joint_frames_kept_for_one_shape(layer):
    """The frames a layer keeps are the ones it would build (bit for bit), rebuilt for another shape, and not
    kept where the shape needs a gradient."""
    b1 = torch.zeros(1, layer.n_betas)
    b2 = b1.clone()
    b2[0, 0] = 1.5
    fresh = limits._frames_of(layer, b1)
    assert all(torch.equal(x, y) for x, y in zip(limits._joint_frames(layer, b1), fresh))
    assert limits._joint_frames(layer, b1)[0] is limits._joint_frames(layer, b1.clone())[0]  # kept
    other = limits._joint_frames(layer, b2)
    assert all(torch.equal(x, y) for x, y in zip(other, limits._frames_of(layer, b2)))
    assert not torch.equal(other[1], fresh[1])  # another shape, other bones
    bg = b2.clone().requires_grad_(True)
    a, _, _ = limits._joint_frames(layer, bg)
    assert a.requires_grad  # built afresh, in the graph
    a.sum().backward()
    assert bg.grad is not None


@pytest.fixture()
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # as the capture fits (`core.capture.FIT_THREADS`)
    yield
    torch.set_num_threads(old)


def test_penetrations_gathered_from_the_clip(layer, one_thread):
    """`pose._resolve_penetrations`: frames under the threshold come back bit for bit; the others are what
    `collide.resolve` makes of the gathered frames, all below the threshold after the second pass."""
    rot, betas = _poses(layer, 48)
    bb = betas.expand(len(rot), -1)
    caps = collide.hand_capsules(layer, betas)
    cfg = FitConfig()
    depth = collide.penetration_depth(layer(bb, None, None, None, with_vertices=False, rotmats=rot).joints21, caps)
    above = depth > cfg.penetration
    assert 5 < int(above.sum()) < 43
    out = pose._resolve_penetrations(layer, rot, bb, caps, cfg)
    assert torch.equal(out[~above], rot[~above])
    direct = collide.resolve(layer, rot[above], bb[above], caps, threshold=cfg.penetration,
                             target=cfg.penetration_target).rotmats
    assert torch.equal(out[above], direct)
    out = pose._resolve_penetrations(layer, out, bb, caps, cfg)
    after = collide.penetration_depth(layer(bb, None, None, None, with_vertices=False, rotmats=out).joints21, caps)
    assert float(after.max()) < 0.002


def test_cut_thumbnail_in_two_steps():
    """The two-step area average is the one-step one to a grey level, and their frame differences agree."""
    import cv2

    from core.solve.cuts import THUMB, difference, signature

    rng = np.random.default_rng(3)
    frames = [cv2.resize(rng.integers(0, 255, (9, 16, 3), dtype=np.uint8), (1280, 720), interpolation=cv2.INTER_CUBIC)
              for _ in range(4)]
    frames.append(np.roll(frames[-1], 40, axis=1))

    def one_step(f):
        g = cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (THUMB, THUMB), interpolation=cv2.INTER_AREA)
        g = g.astype(np.float32)
        return g - g.mean()

    new, old = [signature(f) for f in frames], [one_step(f) for f in frames]
    assert all(n.shape == (THUMB, THUMB) and np.abs(n - o).max() < 1.5 for n, o in zip(new, old))
    for k in range(1, len(frames)):
        assert abs(difference(new[k - 1], new[k]) - difference(old[k - 1], old[k])) < 0.1
    grey = cv2.cvtColor(frames[0], cv2.COLOR_BGR2GRAY)[:701, :999]  # odd sizes, one channel
    assert signature(grey).shape == (THUMB, THUMB) and abs(float(signature(grey).mean())) < 1e-3
    assert signature(grey[:100, :90]).shape == (THUMB, THUMB)  # smaller than 4 thumbnails: one step


@pytest.mark.parametrize("chosen", [1, 2])
def test_capture_fits_on_fit_threads(data_dir, monkeypatch, chosen):
    """The capture's fit runs on the torch threads `core.capture.fit_threads` chooses (one, or two on an idle
    machine), and torch's own setting is back after the job."""
    from core import capture as cap

    seen = []
    real = pose.fit_hand

    def spy(*a, **kw):
        seen.append(torch.get_num_threads())
        return real(*a, **kw)

    monkeypatch.setattr(pose, "fit_hand", spy)
    monkeypatch.setattr(cap, "fit_threads", lambda since, cores=None: chosen)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        cap.capture(cap.CaptureOptions(input=str(data_dir / "video" / "single_hand.mp4"), end=4, workers=1))
        assert seen and set(seen) == {chosen}
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_two_hands_fitted_side_by_side_give_the_same_clip(data_dir, monkeypatch):
    """On an idle machine (`fit_threads` 2) two hands are fitted on two threads, one torch thread each: the clip is
    the one fitted hand after hand, bit for bit."""
    import threading

    from core import capture as cap

    names, real = [], pose.fit_hand

    def spy(*a, **kw):
        names.append(threading.current_thread().name)
        return real(*a, **kw)

    monkeypatch.setattr(pose, "fit_hand", spy)
    opts = cap.CaptureOptions(input=str(data_dir / "video" / "two_hands.mp4"), end=30, workers=1)
    clips = {}
    for n in (1, 2):
        monkeypatch.setattr(cap, "fit_threads", lambda since, cores=None, n=n: n)
        names.clear()
        clips[n], _ = cap.capture(opts)
        assert len(names) == 2 and all(x.startswith("handcap-fit") for x in names) == (n == 2), names
    assert clips[1].sides == clips[2].sides == ("right", "left")
    for f in ("betas", "global_orient", "hand_pose", "transl", "joints", "valid"):
        assert np.array_equal(getattr(clips[1], f), getattr(clips[2], f)), f
