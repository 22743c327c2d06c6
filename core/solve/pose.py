"""Landmarks -> MANO for one hand over a clip: shape, 3D target, twist-swing IK, 2D-aware refinement.

Batched over the clip's frames (T). Steps:
0. optionally, the paper's VAE joint refinement of the detector's 3D landmarks (`core.net`);
1. 3D target in the camera frame. With the detector's relative depth (``landmarks_z``): the 2D
   landmarks back-projected along their viewing rays with the true intrinsics, at the depth whose bone
   lengths match the detector's metric hand, blended with the detector's metric 3D landmarks rigidly
   aligned onto it (`core.solve.fit.backproject`, `core.solve.fit.fuse`), then translated to where its projection
   best meets the 2D landmarks (`core.solve.camera.solve_translation`). Without it: the metric landmarks rotated
   by each frame's viewing-ray rotation (the detector sees an off-centre hand as if it were centred);
2. one shape per clip: betas fitted to the median bone lengths of the target, or to distances given by the
   caller (one size for a person's two hands: `size_evidence`, `shared_lengths`; the target then slides along
   its viewing rays to the depth of that size);
3. twist-swing IK of the target (twice: the second pass gives straight fingers the twist of the
   nearest earlier bent frame); without relative depth the translation then comes from the 2D landmarks;
4. Gauss-Newton refinement of pose and translation (`core.solve.fit.refine`): projected joints on the 2D
   landmarks, 3D near the target, pose near the IK result and inside the joint limits;
5. for video (``fps`` given): zero-lag smoothing in rotation space and short gaps filled (`core.solve.smooth`);
6. every joint projected into its anatomical range (`core.solve.limits.project_to_limits`); for video, the
   detected frames then refined once more against the 2D landmarks (`FitConfig.align`: the clean-up and
   the projection had moved them off the image; the cleaned pose is the prior; with ``RefineConfig.offsets``
   the 2D is compared with where the detector puts each joint's landmark, and the shape in step 2 is fitted to
   distances between those points: the capture's default for video) and projected again;
   fingers that penetrate each other pushed apart within those ranges (`core.solve.collide.resolve`), then
   forward kinematics gives the joints (and optionally vertices) in the camera frame.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from . import camera, collide, fit, ik, limits, shape, smooth
from ..hand.model import MANO21_FROM_MP, MP_FROM_MANO21, MP_PARENTS
from ..hand.mano import ManoLayer
from ..rot import aa_to_rotmat, rotmat_to_aa


@dataclasses.dataclass(frozen=True)
class HandFit:
    """One hand over T frames (numpy, float32). Frames with valid False hold zeros.

    betas (NB,); global_orient (T, 3), hand_pose (T, 15, 3) axis-angle camera frame; transl (T, 3) m;
    joints (T, 21, 3) camera frame, metres, MediaPipe order; valid (T,) bool;
    vertices (T, V, 3) or None.
    """

    betas: np.ndarray
    global_orient: np.ndarray
    hand_pose: np.ndarray
    transl: np.ndarray
    joints: np.ndarray
    valid: np.ndarray
    vertices: np.ndarray | None = None


# Landmark weights for the translation fit: the detector's wrist is not the skeleton's wrist joint.
_TRANSL_W = np.ones(21, np.float32)
_TRANSL_W[0] = 0.0


def previous_twist(twist: torch.Tensor, bend: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """For each frame (T, 5): the twist of the latest earlier frame whose bend weight was >= threshold
    (0 before any); used as the straight-finger fallback."""
    t = twist.shape[0]
    good = (bend >= threshold).cpu().numpy()
    idx = np.where(good, np.arange(t)[:, None], -1)
    last = np.maximum.accumulate(idx, axis=0)
    prev = np.concatenate([np.full((1, last.shape[1]), -1), last[:-1]], 0)  # strictly earlier
    out = torch.zeros_like(twist)
    mask = torch.as_tensor(prev >= 0, device=twist.device)
    gathered = torch.gather(twist, 0, torch.as_tensor(np.clip(prev, 0, None), device=twist.device))
    out[mask] = gathered[mask]
    return out


CHUNK = 256  # frames per batch in the per-frame stages (memory stays flat with clip length)


def _chunks(n: int) -> list[slice]:
    return [slice(i, min(i + CHUNK, n)) for i in range(0, n, CHUNK)]


def _solve_ik(layer: ManoLayer, joints21: torch.Tensor, bb: torch.Tensor) -> ik.IKResult:
    """`ik.solve` twice: the second pass gives straight fingers the previous bent frame's twist."""
    first = ik.solve(layer, joints21, bb)
    return ik.solve(layer, joints21, bb, twist_fallback=previous_twist(first.twist, first.bend))


def _resolve_penetrations(layer: ManoLayer, rotmats: torch.Tensor, bb: torch.Tensor, caps: collide.Capsules,
                          cfg: fit.FitConfig) -> torch.Tensor:
    """`collide.resolve` over the clip (rotmats (N, 16, 3, 3), bb (N, NB)): the frames above the threshold are
    gathered from the whole clip first and solved ``CHUNK`` at a time (its 40 gradient steps cost much the same
    for a few frames as for a chunk: on single_hand.mp4 ~120 of 621 frames, most of them in one chunk); every
    other frame is returned as it is, as `collide.resolve` returns it."""
    depth = torch.cat([collide.penetration_depth(layer(bb[c], None, None, None, with_vertices=False,
                                                       rotmats=rotmats[c]).joints21, caps) for c in _chunks(len(bb))])
    idx = torch.nonzero(depth > cfg.penetration)[:, 0]
    if not len(idx):
        return rotmats
    out = rotmats.clone()
    out[idx] = torch.cat([collide.resolve(layer, rotmats[idx[c]], bb[idx[c]], caps, threshold=cfg.penetration,
                                          target=cfg.penetration_target).rotmats for c in _chunks(len(idx))])
    return out


def _reproj_error(layer: ManoLayer, betas: torch.Tensor, rotmats: torch.Tensor, transl: torch.Tensor,
                  kp_px: torch.Tensor, K: torch.Tensor, offsets=None) -> torch.Tensor:
    """Median (B,) over the joints of the distance between the projected joints (their landmark points with
    ``offsets``, `core.solve.fit.landmarks_of`) and the 2D landmarks (pixels, MediaPipe order); inf where a
    joint is behind the camera."""
    j = fit.landmarks_of(layer, betas, rotmats, transl, offsets)[:, MP_FROM_MANO21]
    err = (camera.project(j, K) - kp_px).norm(dim=-1).median(1).values
    behind = (j[..., 2] <= 1e-3).any(1) | ~torch.isfinite(err)
    return torch.where(behind, torch.full_like(err, float("inf")), err)


def _targets(layer: ManoLayer, kp_px, world, det: np.ndarray, K, perspective: bool, landmarks_z, image_width,
             cfg: fit.FitConfig, refiner):
    """Steps 0-1 on the detected frames (N of them): the detector's 3D landmarks (N, 21, 3) after the VAE,
    the same turned by the viewing ray, the camera-frame 3D target (N, 21, 3) or None without relative
    depth (all MediaPipe order), the 2D landmarks (N, 21, 2) and K (N, 3, 3) as tensors."""
    dt, dev = layer.v_template.dtype, layer.v_template.device
    as_t = lambda x: torch.as_tensor(np.asarray(x)[det], dtype=dt, device=dev)  # noqa: E731
    w_mp = as_t(world)  # (N, 21, 3) MediaPipe order
    if refiner is not None:
        # 0. The detector's 3D pulled towards joints the hand model can produce (VAE refinement).
        with torch.no_grad():
            refined = refiner.refine(w_mp[:, MANO21_FROM_MP], side=layer.side)
        w_mp = refined.to(dtype=dt, device=dev)[:, MP_FROM_MANO21]
    px = as_t(kp_px)
    kk = as_t(K)
    n = w_mp.shape[0]
    w_t = torch.as_tensor(_TRANSL_W, dtype=dt, device=dev)[None].expand(n, -1)
    with torch.no_grad():
        # 1. The 3D target, camera frame (MediaPipe order), if the relative depth is known.
        w_cam = (camera.ray_rotation(px, kk)[:, None] @ w_mp[..., None])[..., 0] if perspective else w_mp
        target = None
        if landmarks_z is not None and image_width:
            bones = (w_mp[:, 1:] - w_mp[:, MP_PARENTS[1:]]).norm(dim=-1).median(0).values  # (20,)
            bp = fit.backproject(px, as_t(landmarks_z) * float(image_width), kk, bones, cfg.z_scale)
            target = fit.fuse(w_cam, bp, cfg.blend, cfg.blend_rot)
            # Placed where its projection best meets the 2D landmarks (as the fallback path places the hand).
            c = target.mean(1, keepdim=True)
            target = target - c + camera.solve_translation(target - c, px, kk, w_t)[:, None]
    return w_mp, w_cam, target, px, kk


@dataclasses.dataclass(frozen=True)
class SizeEvidence:
    """What one hand's detections say about its size: ``lengths`` (P,) metres, the median over the detected
    frames of the 3D target's `core.solve.shape.PAIRS` distances (the size `fit_hand` gives the hand alone);
    ``weight``: how much to trust it, the sum over those frames of confidence x (the palm's spread in the
    image, pixels)^2 (a hand far away or seen edge-on is small in the image and counts little);
    ``frames`` (T,) bool: the frames it comes from."""

    lengths: np.ndarray
    weight: float
    frames: np.ndarray


PALM_MP = [0, 1, 5, 9, 13, 17]  # wrist, thumb CMC, the four MCPs (MediaPipe order)


def size_evidence(layer: ManoLayer, kp_px: np.ndarray, world: np.ndarray, detected: np.ndarray, K: np.ndarray,
                  perspective: bool = True, landmarks_z: np.ndarray | None = None, image_width: int | None = None,
                  config: fit.FitConfig | None = None, refiner=None,
                  confidence: np.ndarray | None = None) -> SizeEvidence | None:
    """The size evidence of one hand over a clip (arguments as `fit_hand`'s; ``confidence`` (T,) the
    detector's score per frame, None for ones). Returns None when the hand is never detected."""
    cfg = fit.FitConfig() if config is None else config
    det = np.asarray(detected, bool)
    if not det.any():
        return None
    w_mp, _, target, _, _ = _targets(layer, kp_px, world, det, K, perspective, landmarks_z, image_width, cfg, refiner)
    with torch.no_grad():
        src = (w_mp if target is None else target)[:, MANO21_FROM_MP]
        lengths = shape.pair_lengths(src).median(0).values.cpu().numpy().astype(np.float64)
    palm = np.asarray(kp_px, np.float64)[det][:, PALM_MP]
    spread = np.sqrt(((palm - palm.mean(1, keepdims=True)) ** 2).sum(-1).mean(1))  # (N,) px
    conf = np.ones(int(det.sum())) if confidence is None else np.clip(np.asarray(confidence, np.float64)[det], 0, 1)
    return SizeEvidence(lengths, float((conf * spread**2).sum()), det.copy())


def shared_lengths(evidence: list[SizeEvidence]) -> np.ndarray:
    """One size (P,) metres for hands of one person: their evidence's lengths averaged with its weights."""
    w = np.array([e.weight for e in evidence], np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
    return np.einsum("h,hp->p", w, np.stack([e.lengths for e in evidence]))


def fit_hand(layer: ManoLayer, kp_px: np.ndarray, world: np.ndarray, detected: np.ndarray, K: np.ndarray,
             with_vertices: bool = False, perspective: bool = True, landmarks_z: np.ndarray | None = None,
             image_width: int | None = None, config: fit.FitConfig | None = None,
             fps: float | None = None, refiner=None, lengths: np.ndarray | None = None,
             depth_prior: tuple[np.ndarray, np.ndarray] | None = None) -> HandFit:
    """Fit one hand over a clip.

    Args:
        layer: the hand model of this hand's side.
        kp_px (T, 21, 2): 2D landmarks, pixels (K's convention: OpenCV pixel centres), MediaPipe order.
        world (T, 21, 3): detector 3D landmarks, metres, camera-aligned axes, MediaPipe order.
        detected (T,) bool: frames where the hand was found.
        K (T, 3, 3): intrinsics per frame.
        with_vertices: also skin the mesh for every frame.
        perspective: rotate the metric landmarks by the viewing ray (step 1).
        landmarks_z (T, 21) or None: the detector's normalised relative depth (MediaPipe: wrist-relative,
            in units of the image width); with ``image_width`` it enables the back-projected target.
        image_width: pixels; converts ``landmarks_z`` to pixel units.
        config: fit settings (`core.solve.fit.FitConfig`; None = defaults).
        fps: frames per second of a video clip: smooth over time and fill short gaps (`core.solve.smooth`);
            None for unrelated images (no temporal clean-up).
        refiner: a `core.net.vae.JointRefiner` (the paper's VAE joint refinement) applied to the
            detector's 3D landmarks before anything else, or None to use them as they are.
        lengths (P,) metres or None: the hand's size as `core.solve.shape.PAIRS` distances (e.g. one size
            shared by a person's two hands, `shared_lengths`) instead of this hand's own median distances;
            the 3D target is scaled about the camera centre to match it (same 2D, depth follows the size).
        depth_prior: (depth (T,) metres, weight (T,)) or None: for video, a depth for the hand's mean joint on
            each frame (weight 0 where none) added to the final image alignment (6b) as one more residual,
            (mean depth - depth) / hand size, squared times the weight: e.g. the depth the other hand of the
            same person implies (`pair_depths`). The 2D keeps the size fixed, so it acts through the pose.
    Returns:
        HandFit.
    """
    cfg = fit.FitConfig() if config is None else config
    n_frames = len(detected)
    det = np.asarray(detected, bool)
    dt, dev = layer.v_template.dtype, layer.v_template.device
    n_b = layer.n_betas
    empty = HandFit(np.zeros(n_b, np.float32), np.zeros((n_frames, 3), np.float32),
                    np.zeros((n_frames, 15, 3), np.float32), np.zeros((n_frames, 3), np.float32),
                    np.zeros((n_frames, 21, 3), np.float32), det.copy(),
                    np.zeros((n_frames, layer.v_template.shape[0], 3), np.float32) if with_vertices else None)
    if not det.any():
        return empty
    w_mp, w_cam, target, px, kk = _targets(layer, kp_px, world, det, K, perspective, landmarks_z, image_width,
                                           cfg, refiner)
    n = w_mp.shape[0]
    w_t = torch.as_tensor(_TRANSL_W, dtype=dt, device=dev)[None].expand(n, -1)
    with torch.no_grad():
        # 2. Shape from the median distances, or from the given (shared) distances; a target then moves along
        # the viewing rays (scaled about the camera centre: the 2D stays) to the depth of that size.
        src = (w_mp if target is None else target)[:, MANO21_FROM_MP]
        own = shape.pair_lengths(src).median(0).values
        if lengths is not None:
            lengths = torch.as_tensor(np.asarray(lengths), dtype=dt, device=dev)
            if target is not None:
                target = target * shape.size_ratio(lengths, own)
            own = lengths
        conv = None
        for stage in (cfg.refine, cfg.align if fps is not None and cfg.refine is not None else None):
            if stage is not None and stage.offsets is not None and stage.offsets_shape:
                conv = fit.side_offsets(stage.offsets, layer.side, torch.float64)[:, :3].numpy()
        betas = shape.fit_betas(layer, own, offsets=conv).to(dev)
        bb = betas[None].expand(n, -1)
        # 3. IK (camera-frame target: IK's palm fit places the wrist too).
        if target is not None:
            t21 = target[:, MANO21_FROM_MP]
            res = _solve_ik(layer, t21, bb)
            rotmats, transl = res.rotmats, res.transl
        else:
            res = _solve_ik(layer, w_cam[:, MANO21_FROM_MP], bb)
            rotmats = res.rotmats
            rel = layer(bb, None, None, None, with_vertices=False, rotmats=rotmats)
            root = rel.joints21[:, :1]
            rel_mp = (rel.joints21 - root)[:, MP_FROM_MANO21]
            # Translation from the 2D landmarks; FK without transl keeps the wrist at its rest position J0.
            t_root = camera.solve_translation(rel_mp, px, kk, w_t)
            transl = t_root - rel.rest_joints[:, 0]
            t21 = rel.joints21 + transl[:, None]
        # 4. Refinement against the 2D landmarks.
        if cfg.refine is not None and cfg.refine.iters > 0:
            # Frames are independent here: chunks keep memory flat however long the clip.
            parts = [fit.refine(layer, bb[c], rotmats[c], transl[c], px[c][:, MANO21_FROM_MP], kk[c], t21[c], cfg.refine)
                     for c in _chunks(n)]
            rotmats = torch.cat([r for r, _ in parts])
            transl = torch.cat([t for _, t in parts])
        aa = rotmat_to_aa(rotmats)
    go = np.zeros((n_frames, 3), np.float32)
    hp = np.zeros((n_frames, 15, 3), np.float32)
    tr = np.zeros((n_frames, 3), np.float32)
    go[det] = aa[:, 0].cpu().numpy()
    hp[det] = aa[:, 1:].cpu().numpy()
    tr[det] = transl.cpu().numpy()
    valid = det.copy()
    # 5. Temporal clean-up for video: zero-lag smoothing in rotation space, short gaps filled.
    if fps is not None:
        cleaned = smooth.clean_up(go, hp, tr, det, fps)
        go, hp, tr, valid = cleaned.global_orient, cleaned.hand_pose, cleaned.transl, cleaned.valid.copy()
    # 6. Inside the anatomical ranges on every frame, fingers out of each other, then forward kinematics.
    with torch.no_grad():
        n_v = int(valid.sum())
        aa_v = torch.as_tensor(np.concatenate([go[valid][:, None], hp[valid]], 1), dtype=dt, device=dev)
        bv = betas[None].expand(n_v, -1)
        tr_v = torch.as_tensor(tr[valid], dtype=dt, device=dev)
        rot_v = torch.cat([limits.project_to_limits(layer, aa_to_rotmat(aa_v[c]), bv[c]) for c in _chunks(n_v)])
        if fps is not None and cfg.refine is not None and cfg.align is not None and cfg.align.iters > 0 and n_v:
            # 6b. Final image alignment: the clean-up and the limit projection moved the pose off the 2D
            # landmarks; refine once more on the detected frames, the 2D as the main evidence and the
            # cleaned pose (its joints and rotations) and the joint limits as priors, then back inside
            # the ranges (a no-op where the limit term held).
            d_v = np.flatnonzero(det[valid])  # detected frames among the valid ones
            if len(d_v):
                px_all = np.asarray(kp_px, np.float32)[valid][d_v]
                k_all = np.asarray(K)[valid][d_v]
                di = torch.as_tensor(d_v, device=dev)
                off = cfg.align.offsets
                r0, t0 = rot_v[di], tr_v[di]
                parts = []
                for c in _chunks(len(d_v)):
                    pc = torch.as_tensor(px_all[c], dtype=dt, device=dev)
                    kc = torch.as_tensor(k_all[c], dtype=dt, device=dev)
                    j0 = layer(bv[c], None, None, t0[c], with_vertices=False, rotmats=r0[c]).joints21
                    # The cleaned hand slid along its viewing ray onto the 2D landmarks: the smoothed depth
                    # is kept, the image position is the detector's.
                    cen = j0.mean(1, keepdim=True)
                    lm0 = j0 if off is None else fit.landmarks_of(layer, bv[c], r0[c], t0[c], off)
                    t_2d = camera.solve_translation(lm0[:, MP_FROM_MANO21] - cen, pc, kc, w_t[:1].expand(len(pc), -1))
                    ok = torch.isfinite(t_2d).all(-1) & (t_2d[:, 2] > 0.25 * cen[:, 0, 2]) & (t_2d[:, 2] < 4 * cen[:, 0, 2])
                    shift = t_2d * (cen[:, 0, 2] / t_2d[:, 2].clamp_min(1e-3))[:, None] - cen[:, 0]
                    shift = torch.where(ok[:, None], shift, torch.zeros_like(shift))
                    j0 = j0 + shift[:, None]
                    dp = dw = None
                    if depth_prior is not None:
                        dp = torch.as_tensor(np.asarray(depth_prior[0])[valid][d_v][c], dtype=dt, device=dev)
                        dw = torch.as_tensor(np.asarray(depth_prior[1])[valid][d_v][c], dtype=dt, device=dev)
                        dw = torch.where(torch.isfinite(dp), dw, torch.zeros_like(dw))
                        dp = torch.nan_to_num(dp)
                    r_c, t_c = fit.refine(layer, bv[c], r0[c], t0[c] + shift, pc[:, MANO21_FROM_MP], kc, j0, cfg.align,
                                          depth=dp, depth_w=dw)
                    # A frame keeps its cleaned pose where the alignment did not bring it nearer the 2D.
                    before = _reproj_error(layer, bv[c], r0[c], t0[c], pc, kc, off)
                    after = _reproj_error(layer, bv[c], r_c, t_c, pc, kc, off)
                    better = after < before
                    parts.append((torch.where(better[:, None, None, None], r_c, r0[c]),
                                  torch.where(better[:, None], t_c, t0[c])))
                r1 = torch.cat([r for r, _ in parts])
                r1 = torch.cat([limits.project_to_limits(layer, r1[c], bv[c]) for c in _chunks(len(d_v))])
                rot_v = rot_v.clone()
                tr_v = tr_v.clone()
                rot_v[di] = r1
                tr_v[di] = torch.cat([t for _, t in parts])
        if cfg.penetration is not None and n_v:
            caps = collide.hand_capsules(layer, betas[None])
            for _ in range(2):  # the second pass only sees the few frames the first left above the threshold
                rot_v = _resolve_penetrations(layer, rot_v, bv, caps, cfg)
        aa_v = rotmat_to_aa(rot_v)
        outs = [layer(bv[c], None, None, tr_v[c], with_vertices=with_vertices, rotmats=rot_v[c]) for c in _chunks(n_v)]
        joints21 = torch.cat([o.joints21 for o in outs])
    go[valid] = aa_v[:, 0].cpu().numpy()
    hp[valid] = aa_v[:, 1:].cpu().numpy()
    tr[valid] = tr_v.cpu().numpy()  # the alignment (6b) may have moved it
    jo = np.zeros((n_frames, 21, 3), np.float32)
    jo[valid] = joints21[:, MP_FROM_MANO21].cpu().numpy()
    verts = None
    if with_vertices:
        verts = np.zeros((n_frames, layer.v_template.shape[0], 3), np.float32)
        verts[valid] = torch.cat([o.vertices for o in outs]).cpu().numpy()
    return HandFit(betas.cpu().numpy().astype(np.float32), go, hp, tr, jo, valid, verts)


@dataclasses.dataclass(frozen=True)
class PairDepthConfig:
    """The prior on the depths of one person's two hands acting together (`pair_depths`).

    gap_sigma: metres, the prior's spread of the depth difference between the two hands' mean joints
    (two hands of one person that the camera sees together are rarely far apart in depth);
    floor: hand sizes, the least relative depth uncertainty of a frame (a perfect fit still leaves the
    detector's own size error); weight: of the prior's row in the alignment (per the hand's own depth sigma).
    """

    gap_sigma: float = 0.15
    floor: float = 0.03
    weight: float = 1.0


def pair_depths(fits: list[HandFit], kp_px: list[np.ndarray], K: np.ndarray, detected: list[np.ndarray],
                cfg: PairDepthConfig = PairDepthConfig()) -> list[tuple[np.ndarray, np.ndarray]]:
    """Depth priors (`fit_hand`'s ``depth_prior``) for a person's two hands fitted alone: on the frames where
    both are detected, each hand's mean joint depth z has a sigma z (floor + its frame's median reprojection
    onto its 2D, hand sizes: a hand the image fits badly, or seen small, knows its depth less), and the
    depth gap a Gaussian prior N(0, gap_sigma^2); the most likely depths under both (closed form: the gap
    shrinks by gap_sigma^2 / (gap_sigma^2 + s_a^2 + s_b^2), each hand moving in proportion to its own s^2)
    become the priors, weighted ``weight / s^2`` (times the hand size^2 in `core.solve.fit.refine`'s units).
    fits, kp_px (T, 21, 2), detected (T,): the two hands; K (T, 3, 3). Returns [(depth (T,), weight (T,))] * 2,
    nan / 0 where not both."""
    from ..eval import reproj

    both = fits[0].valid & fits[1].valid & np.asarray(detected[0], bool) & np.asarray(detected[1], bool)
    out = []
    z, s = [], []
    for f, kp in zip(fits, kp_px):
        zz = f.joints[..., 2].mean(-1).astype(np.float64)
        e = np.zeros(len(zz))
        if both.any():
            e[both] = np.nanmedian(reproj.reprojection(f.joints[both], K[both], np.asarray(kp)[both]).dist, 1)
        z.append(zz)
        s.append(np.where(both, zz * (cfg.floor + np.nan_to_num(e, nan=1.0)), 0.0))
    gap = z[0] - z[1]
    var = s[0] ** 2 + s[1] ** 2
    shrink = np.where(both, cfg.gap_sigma ** 2 / (cfg.gap_sigma ** 2 + var), 1.0)
    for h, sign in ((0, -1.0), (1, 1.0)):
        moved = z[h] + sign * (1 - shrink) * gap * np.where(both, s[h] ** 2 / np.maximum(var, 1e-12), 0.0)
        depth = np.where(both, moved, np.nan)
        hand = float(np.median(reproj.hand_size_3d(fits[h].joints[fits[h].valid]))) if fits[h].valid.any() else 0.09
        w = np.where(both, cfg.weight * (hand / np.maximum(s[h], 1e-6)) ** 2, 0.0)
        out.append((depth, w))
    return out
