"""Contact refinement (the paper's interaction refinement): hands that touch objects and each other
without passing through them, by changing only the MANO pose and a small translation.

For every valid frame of every hand, all frames at once, Adam moves the finger joints' angles (flexion,
abduction, twist in `core.solve.limits`' frames), the global rotation and the translation (these two
with smaller steps: Adam steps every parameter alike, and a hand that may turn as fast as its fingers
bend turns away from the object instead of un-flexing), minimising (per frame, summed over the clip):

* penetration: squared depth (mm, to ``clearance_mm`` outside) of hand vertices inside an object. The
  first ``iters`` steps read the object's SDF grid (`core.contact.sdf.Field`) at a vertex subset; the
  last ``exact_iters`` steps use every vertex and the exact distance, linearised around the closest
  surface point and normal found (libigl) every ``relinearize_every`` steps (point to tangent plane),
  plus the objects' own surface samples (vertices and face centres) inside the hand, against the
  hand's closest face (edges and corners of an object poke between hand vertices);
* hand-hand: each hand's vertices inside the other, on frames whose boxes come within 1 cm: each vertex
  near the other hand tied to its closest face there every few steps (`core.contact.hands.link_hands`,
  batched over frames), its distance to that face on the current meshes in between;
* contact: the regions already near a surface when refinement starts (a fingertip's distal
  phalanx or the palm within ``contact_mm``; ``pin`` adds regions, ``exclude`` removes them) are
  pulled onto it: the squared distance (mm) of the region's nearest vertex;
* staying close to the capture: joint angles (degrees; abduction and twist stiffer than flexion by the
  square of how much narrower their range is: a fix bends fingers the way they bend), global rotation
  (degrees), translation (mm);
* 2D evidence: where the clip has the detector's landmarks, a joint's reprojection error may not
  grow by more than ``reproj_slack_px`` (a hinge: the capture's own error is the reference);
* the joint limits (`core.solve.limits.soft_limit_loss`) and temporal smoothness of the correction
  (second differences of the joints' displacement, mm, across consecutive valid frames).

Deterministic (fixed iteration counts, no randomness); runs on the device of the given tensors.
The weights were set looking at the synthetic grasp scenes that BENCHMARKS.md reports (named there).
"""
from __future__ import annotations

import dataclasses
import math
import weakref

import numpy as np
import torch

from ..errors import CaptureError
from ..hand.mano import ManoLayer
from ..hand.model import FINGERS, MANO21_FROM_MP
from ..rot import aa_to_rotmat
from ..solve import camera, limits

REGIONS = ("thumb", "index", "middle", "ring", "pinky", "palm")


@dataclasses.dataclass(frozen=True)
class ContactConfig:
    """Weights and schedule of `refine_contact` (frozen; losses are in mm and degrees)."""

    iters: int = 60  # Adam steps on the SDF grid
    vertex_stride: int = 4  # the inner loop uses every 4th vertex plus the contact regions
    exact_iters: int = 40  # then Adam steps on the exact distances, linearised (point to tangent plane)
    relinearize_every: int = 5  # ... around the closest points found every this many steps
    lr_angle: float = 0.01  # rad per Adam step (cosine-decayed to 10 %)
    lr_orient: float = 0.002  # rad per Adam step of the global rotation (Adam steps every parameter alike:
    # the whole hand must move more slowly than its fingers, or it rotates away instead of un-flexing)
    lr_transl: float = 0.1  # mm per Adam step
    contact_mm: float = 5.0  # a region this near a surface at the start is pulled onto it
    clearance_mm: float = 0.5  # penetration is pushed out to this far outside
    w_pen: float = 5.0
    w_object: float = 5.0  # the objects' surface samples inside the hand (exact steps)
    w_contact: float = 0.3
    w_angle: float = 0.02  # per deg^2 of finger-joint angle change
    w_orient: float = 5.0  # per deg^2 of global rotation change (1 deg ~ 3 mm at the fingertips: a whole-hand turn
    # is not how one finger's contact is fixed)
    w_transl: float = 0.5  # per mm^2 of translation change
    w_2d: float = 0.05  # per px^2 of reprojection error growth beyond the slack
    reproj_slack_px: float = 1.0
    w_limits: float = 1.0  # per deg^2 outside the joint ranges
    w_smooth: float = 0.5  # per mm^2 of second difference of the joints' displacement
    pin: tuple = ()  # regions always pulled onto the nearest surface
    exclude: tuple = ()  # regions never pulled (still kept out of objects)
    hand_hand: bool = True
    range_scaled: bool = True  # w_angle per deg^2 of flexion; abduction and twist stiffer by (flexion range / their range)^2

    def __post_init__(self):
        bad = [r for r in tuple(self.pin) + tuple(self.exclude) if r not in REGIONS]
        if bad:
            raise CaptureError(f"unknown hand region {bad[0]!r}: use {', '.join(REGIONS)}")
        both = set(self.pin) & set(self.exclude)
        if both:
            raise CaptureError(f"region {sorted(both)[0]!r} is both pinned and excluded; choose one")


@dataclasses.dataclass
class HandTrack:
    """One hand of a clip (T frames) to refine.

    layer: its model; betas (1, NB); rotmats (T, 16, 3, 3) local rotations; transl (T, 3) metres,
    camera frame; valid (T,) bool frames that hold a pose; kp_px (T, 21, 2) the detector's 2D in
    MediaPipe order or None; detected (T,) bool frames whose kp_px are real.
    """

    layer: ManoLayer
    betas: torch.Tensor
    rotmats: torch.Tensor
    transl: torch.Tensor
    valid: np.ndarray
    kp_px: torch.Tensor | None = None
    detected: np.ndarray | None = None


@dataclasses.dataclass
class RefinedHand:
    """The refined pose of one hand: rotmats (T, 16, 3, 3), transl (T, 3) (invalid frames unchanged),
    contact (T, 6) bool per region of REGIONS within 2 mm of a surface, penetration_mm (T,) deepest
    vertex inside an object or the other hand (exact), before_mm (T,) the same before refinement."""

    rotmats: torch.Tensor
    transl: torch.Tensor
    contact: np.ndarray
    penetration_mm: np.ndarray
    before_mm: np.ndarray


def region_vertices(layer: ManoLayer) -> list[np.ndarray]:
    """Vertex ids of each region of REGIONS on ``layer``'s mesh: a finger's distal phalanx (vertices
    skinned mostly to its last joint) and the palm (skinned mostly to the wrist, on the palm side)."""
    w = layer.weights.detach().cpu().numpy()
    dominant = w.argmax(1)
    out = []
    for name in REGIONS[:5]:
        last = FINGERS[name][0][2]
        out.append(np.nonzero(dominant == last)[0])
    v = layer.v_template.detach().cpu().numpy().astype(np.float64)
    f = layer.faces.detach().cpu().numpy() if torch.is_tensor(layer.faces) else np.asarray(layer.faces)
    normals = np.zeros_like(v)
    tri = v[f]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    for k in range(3):
        np.add.at(normals, f[:, k], fn)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    out.append(np.nonzero((dominant == 0) & (normals @ palm_normal(layer) > 0.5))[0])
    return out


def palm_normal(layer: ManoLayer) -> np.ndarray:
    """Unit (3,) normal of the rest palm pointing out of the palm side (where flexed fingers go)."""
    betas = torch.zeros(1, layer.n_betas, dtype=layer.v_template.dtype)
    j = layer.rest_joints(betas)[0].detach().cpu().numpy().astype(np.float64)
    idx, pinky, mid = FINGERS["index"][0][0], FINGERS["pinky"][0][0], FINGERS["middle"][0][0]
    n = np.cross(j[idx] - j[0], j[pinky] - j[0])
    n /= np.linalg.norm(n)
    # Flex the middle finger's first joint: its tip moves to the palm side.
    ang = torch.zeros(1, 15, 3, dtype=betas.dtype)
    ang[0, mid - 1, 0] = math.radians(60)
    rot = torch.cat([torch.eye(3, dtype=betas.dtype)[None, None], limits.angles_to_rotmats(layer, ang, betas)], 1)
    rest = layer(betas, None, None, None, with_vertices=False, rotmats=torch.eye(3, dtype=betas.dtype).repeat(1, 16, 1, 1))
    bent = layer(betas, None, None, None, with_vertices=False, rotmats=rot)
    move = (bent.joints21[0, 18] - rest.joints21[0, 18]).detach().cpu().numpy()
    return n if move @ n > 0 else -n


def _body_distance(body, verts: torch.Tensor, exact: bool) -> torch.Tensor:
    """Signed distance (N, V) metres of points (N, V, 3), camera frame, to ``body``: its SDF grid, and
    with ``exact`` the exact query (libigl) for the points the grid puts within a band of the surface
    (3 mm or two voxels: farther points cannot be inside, the grid's error being under a voxel)."""
    from .sdf import Field

    if body.field is None:
        body.field = Field.build(body.mesh)
    p = body._to_mesh(verts)
    d = body.field.lookup(p)
    if not exact:
        return d
    band = max(0.003, 2 * body.field.pitch)
    near = d.detach() < band
    if not bool(near.any()):
        return d
    pts = p[near]
    dd, c = body.exact.query(pts.detach().cpu().numpy().astype(np.float64))
    sign = torch.as_tensor(np.where(dd < 0, -1.0, 1.0), dtype=p.dtype, device=p.device)
    c = torch.as_tensor(c, dtype=p.dtype, device=p.device)
    d_exact = sign * ((pts - c).square().sum(-1) + 1e-18).sqrt()
    return d.masked_scatter(near, d_exact)


MAX_SURFACE_SAMPLES = 4000
OIH_REACH = 0.008  # metres: hand vertices this near an object are searched for its samples (`_Problem._samples_in_hand`)
RELIN_MM = 0.3  # `linearize` queries a near point's closest surface point again once it moved this far
OIH_KEEP = 0.005  # metres: samples this near the hand at an exact round's start are followed through the round


def _surface_samples(mesh) -> np.ndarray:
    """The object's surface samples (S, 3) tested against the hand: its vertices and face centres, every
    k-th of them when there are more than MAX_SURFACE_SAMPLES (a fixed cost whatever the face count)."""
    cached = _SAMPLES.get(mesh)
    if cached is None:
        pts = np.concatenate([mesh.vertices, mesh.vertices[mesh.faces].mean(1)])
        step = int(np.ceil(len(pts) / MAX_SURFACE_SAMPLES))
        cached = _SAMPLES[mesh] = np.ascontiguousarray(pts[::step])
    return cached


_SAMPLES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _object_in_hand(oih, verts: torch.Tensor, clearance_mm: float, n_rows: int) -> torch.Tensor:
    """Per row (N,): squared depth (mm, beyond the clearance) of the objects' surface samples inside the
    hand. oih = (rows (M,), tri (M, 3), w (M, 3), q (M, 3)) from `_Problem.linearize`: each sample q
    (camera frame), the hand face closest to it and the barycentric point on it; the distance is to
    that face's plane on the current vertices verts (N, V, 3) (positive outside the hand)."""
    rows, tri, w, q = oih
    corners = verts[rows[:, None], tri]  # (M, 3, 3)
    c = (w[..., None] * corners).sum(1)
    n = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    d_mm = ((q - c) * n).sum(-1) * 1000.0
    pen = torch.relu(clearance_mm - d_mm).square()
    return verts.new_zeros(n_rows).index_add(0, rows, pen)


def _angle_weights(cfg: ContactConfig) -> np.ndarray:
    """(15, 3) relative stiffness of each joint's flexion, abduction and twist: with
    `ContactConfig.range_scaled`, (the joint's flexion range / the axis's range)^2 (`core.solve.limits`),
    so a change costs by its size relative to what the joint can do: a PIP abducts 20 degrees where it
    flexes 130 (42x stiffer), an MCP 60 (5.4x); without, 1 everywhere."""
    if not cfg.range_scaled:
        return np.ones((15, 3))
    r = limits.ranges_deg()
    width = r[:, 1::2] - r[:, 0::2]  # (15, 3) flex, abd, twist
    return (width[:, :1] / width) ** 2


PLAY_MM = 15.0  # a frame is refined where a hand comes this near an object or within it of the other hand's box ...
PLAY_PAD = 10  # ... and so are this many frames either side (the smoothness fades the correction out there)


def _subset(h: HandTrack, cfg: ContactConfig) -> tuple[np.ndarray, list]:
    """The inner loop's vertex ids (every ``vertex_stride``-th plus the contact regions) and the regions."""
    regions = region_vertices(h.layer)
    return np.union1d(np.arange(0, h.layer.v_template.shape[0], cfg.vertex_stride), np.concatenate(regions)), regions


def frames_in_play(hands: list, bodies: list, cfg: ContactConfig) -> list[np.ndarray]:
    """Per hand (T,) bool: the valid frames the solve may change. Elsewhere no hand vertex (of the inner
    loop's subset) comes within PLAY_MM of an object (its grid) and the hands' boxes stay more than
    PLAY_MM apart, so nothing pushes or pulls there and the capture is kept as it is; the frames near
    those that do are added (PLAY_PAD either side), so that the correction fades out smoothly."""
    from .sdf import Body

    play, verts = [], []
    for h in hands:
        valid = np.asarray(h.valid, bool)
        idx = np.nonzero(valid)[0]
        sub, _ = _subset(h, cfg)
        with torch.no_grad():
            v = h.layer(h.betas.expand(len(idx), -1), None, None, h.transl[idx], with_vertices=True,
                        rotmats=h.rotmats[idx], vertex_ids=torch.as_tensor(sub, device=h.rotmats.device)).vertices
        p = np.zeros(len(valid), bool)
        if bodies and cfg.pin:
            p[idx] = True
        for b in bodies:
            if len(idx) == 0 or p[idx].all():
                break
            bf = b if b.n_frames == 1 else Body(b.mesh, b.transforms[idx], b.field)
            d = bf.field.lookup(bf._to_mesh(v)).amin(1)
            p[idx[(d * 1000.0 <= PLAY_MM).cpu().numpy()]] = True
        play.append(p)
        verts.append((idx, v))
    if cfg.hand_hand and len(hands) == 2:
        (ia, va), (ib, vb) = verts
        common, ka, kb = np.intersect1d(ia, ib, return_indices=True)
        if common.size:
            a, b = va[ka], vb[kb]
            m = PLAY_MM / 1000.0
            near = ((a.amin(1) <= b.amax(1) + m) & (b.amin(1) <= a.amax(1) + m)).all(1).cpu().numpy()
            for p in play:
                p[common[near]] = True
    out = []
    for h, p in zip(hands, play):
        k = np.ones(2 * PLAY_PAD + 1, np.int64)  # "full", then the centred T: "same" is max(T, len(k)) long
        grown = np.convolve(p.astype(np.int64), k, mode="full")[PLAY_PAD:PLAY_PAD + len(p)] > 0
        out.append(grown & np.asarray(h.valid, bool))
    return out


class _Problem:
    """The optimisation variables and the loss of one clip's hands against its bodies."""

    def __init__(self, hands, bodies, K, cfg: ContactConfig):
        self.hands, self.bodies, self.cfg = hands, bodies, cfg
        self.K = K
        self.state = []
        for h, ok in zip(hands, frames_in_play(hands, bodies, cfg)):
            idx = torch.nonzero(torch.as_tensor(ok))[:, 0]
            rot = h.rotmats[idx]
            bb = h.betas
            ang0 = limits.joint_angles(h.layer, rot, bb).detach()
            st = dict(idx=idx, rot0=rot.detach(), ang0=ang0, tr0=h.transl[idx].detach(),
                      ang=ang0.clone().requires_grad_(True),
                      dorient=torch.zeros(len(idx), 3, dtype=rot.dtype, device=rot.device, requires_grad=True),
                      dtr_mm=torch.zeros(len(idx), 3, dtype=rot.dtype, device=rot.device, requires_grad=True),
                      w_ang=torch.as_tensor(_angle_weights(cfg), dtype=rot.dtype, device=rot.device))
            sub, regions = _subset(h, cfg)
            st["regions"] = [torch.as_tensor(r, device=rot.device) for r in regions]
            st["sub"] = torch.as_tensor(sub, device=rot.device)
            st["regions_sub"] = [torch.as_tensor(np.searchsorted(sub, r), device=rot.device) for r in regions]
            # consecutive-frame mask over the valid rows (row k and k+1 are neighbouring frames)
            fr = idx.cpu().numpy()
            st["consec"] = torch.as_tensor(np.r_[True, np.diff(fr) == 1], device=rot.device)
            with torch.no_grad():
                out = self.pose(h, st)
                st["j0"] = out.joints21.detach()
                if h.kp_px is not None:
                    det = np.asarray(h.detected if h.detected is not None else h.valid, bool)[fr]
                    st["det"] = torch.as_tensor(det, device=rot.device)
                    kp = h.kp_px[idx][:, MANO21_FROM_MP]
                    st["kp"] = kp
                    st["err0"] = (camera.project(st["j0"], K[idx]) - kp).norm(dim=-1)
            self.state.append(st)
        self.active = None  # per hand (Nv,) regions to pull: filled by `choose_contacts`
        self._rows = {}
        self.lin = None  # per hand: the exact round's linearization (`linearize`)
        self._rings = {}  # per layer: outward faces and their one-ring table
        self._oih = {}  # per hand: the exact round's object samples near it (`_samples_in_hand`)
        self._hh, self._hh_calls = None, 0  # the hands' ties to each other (`_hand_hand`)
        self._lin_cache = {}  # per (hand, body): the exact closest points of `linearize`

    @staticmethod
    def rotmats_transl(h: HandTrack, st: dict, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The current local rotations (N, 16, 3, 3) and translation (N, 3) of the valid rows (``rows`` of them)."""
        sl = slice(None) if rows is None else rows
        fingers = limits.angles_to_rotmats(h.layer, st["ang"][sl], h.betas)
        orient = aa_to_rotmat(st["dorient"][sl]) @ st["rot0"][sl][:, 0]
        return torch.cat([orient[:, None], fingers], 1), st["tr0"][sl] + st["dtr_mm"][sl] * 1e-3

    @staticmethod
    def pose(h: HandTrack, st: dict, rows=None, full: bool = True, ids: torch.Tensor | None = None):
        """The hand's MANO output at its valid rows (``rows`` of them); ``full``: every vertex, else the
        subset ``st["sub"]`` (the inner loop's); ``ids``: those vertices."""
        rot, tr = _Problem.rotmats_transl(h, st, rows)
        bb = h.betas.expand(rot.shape[0], -1)
        if ids is None and not full:
            ids = st["sub"]
        return h.layer(bb, None, None, tr, with_vertices=True, rotmats=rot, vertex_ids=ids)

    def distances(self, verts: torch.Tensor, frames: torch.Tensor, exact: bool, lin: list | None = None) -> torch.Tensor:
        """Signed distance (N, V) metres of hand vertices (N, V, 3) at clip frames (N,) to the nearest body:
        the SDF grid; ``exact``: the exact distance for the points near a surface; ``lin`` (from
        `linearize`): those points' distance to the tangent plane at their closest surface point found
        at the start of the round (point-to-plane, cheap and exact to first order)."""
        best = None
        for bi, b in enumerate(self._bodies_at(frames)):
            if lin is None:
                d = _body_distance(b, verts, exact)
            else:
                near, c, n = lin[bi]
                p = b._to_mesh(verts)
                d = b.field.lookup(p)
                if near is not None:
                    d = d.masked_scatter(near, ((p[near] - c) * n).sum(-1))
            best = d if best is None else torch.minimum(best, d)
        return best

    def linearize(self, search: bool = True) -> None:
        """Start of an exact round: for each hand, the exact closest surface point and normal of every
        vertex near an object, and the objects' surface samples near or inside the hand with their
        closest hand face and barycentric point (`_object_in_hand`; ``search``: all samples, else those
        found at the round's first call)."""
        self.lin = []
        for hi, (h, st) in enumerate(zip(self.hands, self.state)):
            if len(st["idx"]) == 0 or not self.bodies:
                self.lin.append(None)
                continue
            with torch.no_grad():
                v = self.pose(h, st).vertices
            per_body = []
            for bi, b in enumerate(self._bodies_at(st["idx"])):
                p = b._to_mesh(v)
                d = b.field.lookup(p)
                near = d < max(0.003, 2 * b.field.pitch)
                if not bool(near.any()):
                    per_body.append((None, None, None))
                    continue
                # The closest point and outward normal of each near point, queried again only where the
                # point moved more than RELIN_MM since its last query (the tangent plane there is exact to
                # first order, and to ~mm^2 / radius of curvature beyond it, within the step's own error).
                key = (hi, bi)
                cache = self._lin_cache.get(key)
                if cache is None:  # never queried: infinitely far from where it was
                    cache = self._lin_cache[key] = dict(p=torch.full_like(p, math.inf), c=torch.zeros_like(p),
                                                        n=torch.zeros_like(p))
                stale = near & ((p - cache["p"]).norm(dim=-1) > RELIN_MM * 1e-3)
                if bool(stale.any()):
                    q = p[stale]
                    dd, c = b.exact.query(q.cpu().numpy().astype(np.float64))
                    c = torch.as_tensor(c, dtype=q.dtype, device=q.device)
                    diff = q - c
                    n = diff / diff.norm(dim=-1, keepdim=True).clamp_min(1e-9)
                    n = n * torch.as_tensor(np.where(dd < 0, -1.0, 1.0), dtype=q.dtype, device=q.device)[:, None]
                    cache["p"][stale], cache["c"][stale], cache["n"][stale] = q, c, n
                per_body.append((near, cache["c"][near], cache["n"][near]))
            # the objects' surface samples against this hand
            oih = self._samples_in_hand(hi, h, st, v, search)
            # The round's vertices: those near an object in some frame and the corners of the hand faces
            # holding an object sample (the others are more than the band from every surface, and move
            # well under a millimetre in a round).
            used = torch.zeros(v.shape[1], dtype=torch.bool, device=v.device)
            for near, _, _ in per_body:
                if near is not None:
                    used |= near.any(0)
            if oih is not None:
                used[oih[1].reshape(-1)] = True
            if not bool(used.any()):
                used[st["sub"]] = True
            cols = torch.nonzero(used)[:, 0]
            per_body = [(None if near is None else near[:, cols], c, n) for near, c, n in per_body]
            if oih is not None:
                oih = (oih[0], torch.searchsorted(cols, oih[1]), oih[2], oih[3])
            regions = [torch.searchsorted(cols, r[used[r]]) for r in st["regions"]]
            self.lin.append((per_body, oih, cols, regions))

    def _ring(self, h: HandTrack, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hand h's outward faces (F, 3) and their one-ring table (V, R) (`core.contact.nearest`); v: any
        posed vertices of it (..., V, 3), for the faces' orientation."""
        from .hands import _outward
        from .nearest import vertex_faces

        key = id(h.layer)
        if key not in self._rings:
            v0 = v.reshape(-1, v.shape[-2], 3)[0]
            faces = _outward(v0.detach().cpu().numpy().astype(np.float64), h.layer.faces.cpu().numpy())
            self._rings[key] = (torch.as_tensor(faces, device=v.device),
                                torch.as_tensor(vertex_faces(faces, v.shape[-2]), device=v.device))
        return self._rings[key]

    def _samples_in_hand(self, hi: int, h: HandTrack, st: dict, v: torch.Tensor, search: bool):
        """The objects' surface samples inside hand h or within 2 mm of it, with their closest hand face
        and barycentric point, for `_object_in_hand`: (rows, tri, w, q) or None. v (N, V, 3): the hand's
        vertices at its valid rows.

        ``search``: look for them among all samples near the hand (the start of an exact round): a sample
        within r of the hand's surface has a vertex within r + an edge of it, and that vertex is within
        that of the object, so only vertices within OIH_REACH of an object (its SDF grid) are searched,
        and only samples in their box (`core.contact.nearest`). The samples found within OIH_KEEP are
        kept with their nearest vertex for the rest of the round, whose later calls only re-find their
        closest face around it (the hand moves well under a millimetre per call there), and only for the
        samples that the hand's motion since their last measure may have brought within 2 mm."""
        from .nearest import faces_around, nearest_vertices

        faces, ring = self._ring(h, v)
        if search or hi not in self._oih:
            # a sample within OIH_KEEP of the hand's surface has a vertex within OIH_KEEP + the longest edge
            edges = v[:, faces] - v[:, faces.roll(1, 1)]
            reach = OIH_KEEP + float(edges.norm(dim=-1).amax())
            rows, qs, nears = [], [], []
            for b, bf in zip(self.bodies, self._bodies_at(st["idx"])):
                cand = bf.field.lookup(bf._to_mesh(v)) < OIH_REACH  # (N, V)
                if not bool(cand.any()):
                    continue
                big = torch.finfo(v.dtype).max
                lo = torch.where(cand[..., None], v, big).amin(1) - 0.003
                hi_ = torch.where(cand[..., None], v, -big).amax(1) + 0.003
                samples = torch.as_tensor(_surface_samples(b.mesh), dtype=v.dtype, device=v.device)
                tr = torch.as_tensor(bf.transforms, dtype=v.dtype, device=v.device)  # (1 or N, 4, 4)
                pts = (samples @ tr[:, :3, :3].transpose(1, 2) + tr[:, None, :3, 3]).expand(v.shape[0], -1, -1)
                r, sidx = torch.nonzero(((pts >= lo[:, None]) & (pts <= hi_[:, None])).all(-1), as_tuple=True)
                if len(r):
                    q = pts[r, sidx]
                    near, dist = nearest_vertices(q, r, v, 1, cand, with_distance=True)
                    ok = dist <= reach
                    rows.append(r[ok])
                    qs.append(q[ok])
                    nears.append(near[ok])
            if not rows:
                self._oih[hi] = None
            else:
                r, q, near = torch.cat(rows), torch.cat(qs), torch.cat(nears)
                face, _, bary, signed = faces_around(q, r, v, faces, ring, near)
                keep = signed < OIH_KEEP
                # base: the signed distance when last measured plus the frame's motion up to then (`moved`)
                self._oih[hi] = o = dict(r=r[keep], q=q[keep], near=near[keep], base=signed[keep],
                                         v=v.detach().clone(), moved=v.new_zeros(v.shape[0]))
                face, bary, signed = face[keep], bary[keep], signed[keep]
                go = torch.arange(len(o["r"]), device=v.device)
        else:
            o = self._oih[hi]
            if o is not None:
                # The hand's surface moved at most `moved` (its fastest vertex, summed over the calls) in each
                # frame since the round's start, so a sample's signed distance is at least base - moved: those
                # that cannot be within 2 mm now are not measured (the same result, at a fraction of the cost).
                o["moved"] += (v - o["v"]).norm(dim=-1).amax(1)
                o["v"] = v.detach().clone()
                go = torch.nonzero(o["base"] - o["moved"][o["r"]] < 0.002)[:, 0]
                face, _, bary, signed = faces_around(o["q"][go], o["r"][go], v, faces, ring, o["near"][go])
                o["base"][go] = signed + o["moved"][o["r"][go]]
        if self._oih[hi] is None:
            return None
        keep = signed < 0.002
        if not bool(keep.any()):
            return None
        return o["r"][go][keep], faces[face[keep]], bary[keep], o["q"][go][keep]

    def _bodies_at(self, frames: torch.Tensor) -> list:
        """The bodies with their transforms of clip frames ``frames`` (N,) (cached per frame set)."""
        from .sdf import Body

        key = tuple(frames.cpu().numpy().tolist())
        if key not in self._rows:
            rows = frames.cpu().numpy()
            self._rows[key] = [b if b.n_frames == 1 else Body(b.mesh, b.transforms[rows], b.field) for b in self.bodies]
        return self._rows[key]

    def choose_contacts(self):
        """Which regions each frame pulls onto a surface (fixed for the whole solve)."""
        cfg = self.cfg
        self.active = []
        for h, st in zip(self.hands, self.state):
            n = len(st["idx"])
            act = torch.zeros(n, len(REGIONS), dtype=torch.bool)
            if self.bodies and n:
                with torch.no_grad():
                    v = self.pose(h, st, full=False).vertices
                    d = self.distances(v, st["idx"], exact=True)
                for r, ids in enumerate(st["regions_sub"]):
                    name = REGIONS[r]
                    if name in cfg.exclude or len(ids) == 0:
                        continue
                    near = d[:, ids].min(1).values * 1000.0 <= cfg.contact_mm
                    act[:, r] = True if name in cfg.pin else near.cpu()
            self.active.append(act.to(st["idx"].device))

    def loss(self, exact: bool) -> tuple[torch.Tensor, list]:
        cfg = self.cfg
        total = 0.0
        verts_all = []
        for hi, (h, st) in enumerate(zip(self.hands, self.state)):
            if len(st["idx"]) == 0:
                verts_all.append(None)
                continue
            lin = self.lin[hi] if exact and self.lin is not None else None
            # the exact rounds see the vertices near a surface (`linearize`), the grid rounds the subset
            out = self.pose(h, st, full=exact and lin is None, ids=None if lin is None else lin[2])
            v, j = out.vertices, out.joints21
            verts_all.append(out)
            e = 0.0
            if self.bodies:
                d_mm = self.distances(v, st["idx"], exact, None if lin is None else lin[0]) * 1000.0  # (N, V)
                e = e + cfg.w_pen * torch.relu(cfg.clearance_mm - d_mm).square().sum(1)
                act = self.active[hi]
                regions = st["regions_sub"] if not exact else (st["regions"] if lin is None else lin[3])
                for r, ids in enumerate(regions):
                    if len(ids) == 0 or not bool(act[:, r].any()):
                        continue
                    dmin = d_mm[:, ids].min(1).values
                    e = e + cfg.w_contact * torch.relu(dmin).square() * act[:, r]
                if lin is not None and lin[1] is not None:  # the objects' surface inside the hand (edges, corners)
                    e = e + cfg.w_object * _object_in_hand(lin[1], v, cfg.clearance_mm, len(v))
            e = e + cfg.w_angle * (torch.rad2deg(st["ang"] - st["ang0"]).square() * st["w_ang"]).sum((1, 2))
            e = e + cfg.w_orient * torch.rad2deg(st["dorient"]).square().sum(1)
            e = e + cfg.w_transl * st["dtr_mm"].square().sum(1)
            e = e + cfg.w_limits * limits.soft_limit_loss(st["ang"]) * (180 / math.pi) ** 2
            if "kp" in st:
                err = (camera.project(j, self.K[st["idx"]]) - st["kp"]).norm(dim=-1)
                grow = torch.relu(err - st["err0"] - cfg.reproj_slack_px).square().sum(1)
                e = e + cfg.w_2d * grow * st["det"]
            total = total + e.sum()
            if len(st["idx"]) >= 3:  # smooth correction: second differences over consecutive frames
                disp = (j - st["j0"]) * 1000.0
                d2 = disp[2:] - 2 * disp[1:-1] + disp[:-2]
                ok = st["consec"][1:-1] & st["consec"][2:]
                total = total + cfg.w_smooth * (d2.square().sum((1, 2)) * ok).sum()
        if self.cfg.hand_hand and len(self.hands) == 2 and all(x is not None for x in verts_all):
            total = total + self._hand_hand(verts_all)
        return total, verts_all

    def _hand_hand(self, outs) -> torch.Tensor:
        """Penetration between the two hands on the frames where their (subset) boxes come within 1 cm:
        the full meshes of those rows, each vertex near the other hand tied to its closest face there
        (`core.contact.hands.link_hands`, re-tied every ``relinearize_every`` calls and whenever those
        frames change) and measured to it (`linked_distance`)."""
        from .hands import link_hands, linked_distance

        (ha, sa), (hb, sb) = zip(self.hands, self.state)
        fa, fb = sa["idx"].cpu().numpy(), sb["idx"].cpu().numpy()
        common, ia, ib = np.intersect1d(fa, fb, return_indices=True)
        zero = outs[0].vertices.new_zeros(())
        if common.size == 0:
            return zero
        with torch.no_grad():  # the boxes of the subsets (the exact rounds' vertices are only those near objects)
            va = self.pose(ha, sa, rows=torch.as_tensor(ia, device=sa["idx"].device), full=False).vertices
            vb = self.pose(hb, sb, rows=torch.as_tensor(ib, device=sb["idx"].device), full=False).vertices
            lo_a, hi_a = va.min(1).values, va.max(1).values
            lo_b, hi_b = vb.min(1).values, vb.max(1).values
            overlap = ((lo_a <= hi_b + 0.01) & (lo_b <= hi_a + 0.01)).all(1).cpu().numpy()
        if not overlap.any():
            return zero
        ra = torch.as_tensor(ia[overlap], device=sa["idx"].device)
        rb = torch.as_tensor(ib[overlap], device=sb["idx"].device)
        full_a = self.pose(ha, sa, rows=ra).vertices
        full_b = self.pose(hb, sb, rows=rb).vertices
        key = (ia[overlap].tobytes(), ib[overlap].tobytes())
        self._hh_calls += 1
        if self._hh is None or self._hh[0] != key or self._hh_calls % self.cfg.relinearize_every == 0:
            with torch.no_grad():
                pa, pb = full_a.detach(), full_b.detach()
                self._hh = (key, link_hands(pa, pb, *self._ring(hb, pb)), link_hands(pb, pa, *self._ring(ha, pa)))
        d_a = linked_distance(full_a, full_b, self._hh[1])
        d_b = linked_distance(full_b, full_a, self._hh[2])
        c = self.cfg
        pen = torch.relu(c.clearance_mm - d_a * 1000.0).square().sum() + torch.relu(c.clearance_mm - d_b * 1000.0).square().sum()
        return c.w_pen * pen




class _Adam:
    """Adam (Kingma & Ba; torch.optim.Adam's defaults and update) over parameter groups [(tensor, lr)].
    Our own few lines: torch.optim's first use imports torch._dynamo, 1-3 s of a 10 s budget."""

    def __init__(self, groups: list, betas=(0.9, 0.999), eps: float = 1e-8):
        self.groups = [[p, lr, torch.zeros_like(p), torch.zeros_like(p)] for p, lr in groups]
        self.b1, self.b2, self.eps, self.t = betas[0], betas[1], eps, 0

    @torch.no_grad()
    def step(self, scale: float = 1.0) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for p, lr, m, v in self.groups:
            if p.grad is None:
                continue
            m.lerp_(p.grad, 1 - self.b1)
            v.mul_(self.b2).addcmul_(p.grad, p.grad, value=1 - self.b2)
            p.addcdiv_(m, (v / c2).sqrt_().add_(self.eps), value=-lr * scale / c1)
            p.grad = None


def _run_adam(prob: _Problem, iters: int, exact: bool) -> None:
    cfg = prob.cfg
    groups = []
    for st in prob.state:
        groups += [(st["ang"], cfg.lr_angle), (st["dorient"], cfg.lr_orient), (st["dtr_mm"], cfg.lr_transl)]
    opt = _Adam(groups)
    for it in range(iters):
        scale = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * it / max(iters, 1)))
        if exact and it % prob.cfg.relinearize_every == 0:
            prob.linearize(search=it == 0)
        loss, _ = prob.loss(exact)
        if not torch.is_tensor(loss) or not loss.requires_grad:
            return
        loss.backward()
        opt.step(scale)


def _penetration_mm(prob: _Problem) -> tuple[list[np.ndarray], list]:
    """Exact deepest penetration (N,) mm of each hand's valid rows into any body or the other hand, and
    each hand's signed distances (N, V) metres to the bodies (None without bodies or rows)."""
    out, distances = [], []
    verts = []
    with torch.no_grad():
        for h, st in zip(prob.hands, prob.state):
            v = prob.pose(h, st).vertices if len(st["idx"]) else None  # every vertex
            verts.append(v)
            if v is None or not prob.bodies:
                out.append(np.zeros(len(st["idx"])))
                distances.append(None)
                continue
            d = prob.distances(v, st["idx"], exact=True)
            distances.append(d)
            out.append(np.maximum(-d.min(1).values.cpu().numpy() * 1000.0, 0.0))
    if prob.cfg.hand_hand and len(prob.hands) == 2 and all(v is not None for v in verts):
        from .hands import hand_in_hand

        fa, fb = prob.state[0]["idx"].cpu().numpy(), prob.state[1]["idx"].cpu().numpy()
        common, ia, ib = np.intersect1d(fa, fb, return_indices=True)
        if common.size:
            depth, _, _ = hand_in_hand(verts[0][ia].cpu().numpy(), verts[1][ib].cpu().numpy(),
                                       prob.hands[0].layer.faces.cpu().numpy(),
                                       faces_b=prob.hands[1].layer.faces.cpu().numpy())
            out[0][ia] = np.maximum(out[0][ia], depth)
            out[1][ib] = np.maximum(out[1][ib], depth)
    return out, distances


def refine_contact(hands: list[HandTrack], bodies: list, K: torch.Tensor,
                   config: ContactConfig | None = None, progress=None) -> list[RefinedHand]:
    """Refine ``hands`` against ``bodies`` (`core.contact.sdf.Body`, may be empty) and each other.

    Args:
        hands: one or two `HandTrack` over the same T clip frames.
        bodies: objects with per-frame transforms (their ``distance_at`` gives signed distances).
        K (T, 3, 3): intrinsics per frame (for the 2D term).
        config: `ContactConfig`; progress: optional callable(fraction 0..1, message).
    Returns:
        one `RefinedHand` per hand, in order.
    """
    cfg = config or ContactConfig()
    if not hands:
        raise CaptureError("nothing to refine: the clip has no hands")
    prob = _Problem(hands, bodies, K, cfg)
    before, _ = _penetration_mm(prob)
    prob.choose_contacts()
    if progress:
        progress(0.05, "refining contact")
    _run_adam(prob, cfg.iters, exact=False)
    if progress:
        progress(0.6, "exact contact steps")
    _run_adam(prob, cfg.exact_iters, exact=True)
    after, final_d = _penetration_mm(prob)
    results = []
    with torch.no_grad():
        for hi, (h, st) in enumerate(zip(hands, prob.state)):
            rot = h.rotmats.detach().clone()
            tr = h.transl.detach().clone()
            T = rot.shape[0]
            contact = np.zeros((T, len(REGIONS)), bool)
            pen_full = np.zeros(T)
            bef_full = np.zeros(T)
            if len(st["idx"]):
                rot_v, tr_v = prob.rotmats_transl(h, st)
                rot[st["idx"]] = rot_v.to(rot.dtype)
                tr[st["idx"]] = tr_v.to(tr.dtype)
                idx = st["idx"].cpu().numpy()
                pen_full[idx] = after[hi]
                bef_full[idx] = before[hi]
                if bodies:
                    d = final_d[hi].cpu().numpy()
                    for r, ids in enumerate(st["regions"]):
                        if len(ids):
                            contact[idx, r] = np.abs(d[:, ids.cpu().numpy()]).min(1) <= 0.002
            results.append(RefinedHand(rot, tr, contact, pen_full, bef_full))
    if progress:
        progress(1.0, "contact refined")
    return results
