"""MANO forward kinematics and linear blend skinning (torch), as smplx's ``lbs`` does it.

``vertices = LBS(v_template + shapedirs.betas + posedirs.pose_feature, rotations about the rest joints)
+ transl``; rest joints = ``J_regressor @ shaped vertices``; axis-angle rotations are each joint's local
rotation in the model's axes (rest joints have identity orientation), joint 0's is the global orient.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .model import MANO_PARENTS, HandModel
from ..rot import aa_to_rotmat


@dataclasses.dataclass(frozen=True)
class MANOOutput:
    """Posed hand. B = batch (frames x hands folded).

    vertices (B, V, 3) or None: metres, model/camera frame, transl added.
    joints (B, 16, 3): MANO-16 joints, transl added.
    joints21 (B, 21, 3): MANO-21 (16 joints + tips thumb, index, middle, ring, pinky).
    rest_joints (B, 16, 3): shaped rest joints (no pose, no transl).
    rotmats (B, 16, 3, 3): local rotations (joint 0 = global orient).
    """

    vertices: torch.Tensor | None
    joints: torch.Tensor
    joints21: torch.Tensor
    rest_joints: torch.Tensor
    rotmats: torch.Tensor


class ManoLayer(torch.nn.Module):
    """Holds a HandModel's arrays as buffers (``.to()`` moves them); ``forward`` poses it."""

    def __init__(self, model: HandModel, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.side = model.side
        self.n_betas = model.n_betas
        self.register_buffer("v_template", torch.as_tensor(model.v_template, dtype=dtype))
        self.register_buffer("shapedirs", torch.as_tensor(model.shapedirs, dtype=dtype))
        pd = np.asarray(model.posedirs).reshape(-1, 135).T  # (135, V*3)
        self.has_posedirs = bool(np.abs(pd).max() > 0)
        self.register_buffer("posedirs", torch.as_tensor(pd, dtype=dtype))
        self.register_buffer("J_regressor", torch.as_tensor(model.J_regressor, dtype=dtype))
        self.register_buffer("weights", torch.as_tensor(model.weights, dtype=dtype))
        self.register_buffer("tip_ids", torch.as_tensor(model.tip_vertex_ids, dtype=torch.long))
        self.register_buffer("faces", torch.as_tensor(model.faces, dtype=torch.long))
        self.parents = [int(p) for p in MANO_PARENTS]
        self._set_levels()

    def _set_levels(self):
        """The kinematic tree by levels for `forward`: ``_levels`` [(the level's joints, index of the parents'
        level, the parents' positions in that level, the parents' joints)], indices as slices where they can be
        (no index tensor to make, nor to copy to a GPU, on every call), and ``_level_order`` (joint -> position in
        the levels' concatenation)."""
        depth = [0] * len(self.parents)
        for i in range(1, len(self.parents)):
            depth[i] = depth[self.parents[i]] + 1
        levels = [[i for i in range(len(self.parents)) if depth[i] == d] for d in range(max(depth) + 1)]
        assert levels[0] == [0], "the root must be joint 0"
        self._levels = []
        for d in range(1, len(levels)):
            kids = levels[d]
            at = [levels[d - 1].index(self.parents[k]) for k in kids]
            self._levels.append((_index(kids), d - 1, _index(at, len(levels[d - 1])),
                                 _index([self.parents[k] for k in kids])))
        self._level_order = np.argsort(np.concatenate([np.array(lv) for lv in levels]))

    def _buffers_for_joints(self):
        """Rest joints and tips are linear in betas: precompute their templates and directions."""
        if not hasattr(self, "_j_dirs") or self._j_dirs.device != self.v_template.device or self._j_dirs.dtype != self.v_template.dtype:
            self._j_template = self.J_regressor @ self.v_template  # (16, 3)
            self._j_dirs = torch.einsum("jv,vcl->jcl", self.J_regressor, self.shapedirs)  # (16, 3, NB)
            self._tip_template = self.v_template[self.tip_ids]
            self._tip_dirs = self.shapedirs[self.tip_ids]
        return self._j_template, self._j_dirs, self._tip_template, self._tip_dirs

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """Shaped rest joints (B, 16, 3) without skinning the mesh: J = J_regressor (v_template + S beta)."""
        jt, jd, _, _ = self._buffers_for_joints()
        b = betas[:, : self.n_betas]
        return jt + torch.einsum("bl,jcl->bjc", b, jd[:, :, : b.shape[1]])

    def shaped(self, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """betas (B, NB) -> (shaped vertices (B, V, 3), rest joints (B, 16, 3))."""
        b = betas[:, : self.n_betas]
        v = self.v_template + torch.einsum("bl,vcl->bvc", b, self.shapedirs[:, :, : b.shape[1]])
        return v, self.rest_joints(betas)

    def rest_tips(self, betas: torch.Tensor) -> torch.Tensor:
        """Shaped rest fingertip vertices (B, 5, 3)."""
        _, _, tt, td = self._buffers_for_joints()
        b = betas[:, : self.n_betas]
        return tt + torch.einsum("bl,vcl->bvc", b, td[:, :, : b.shape[1]])

    def forward(
        self,
        betas: torch.Tensor,
        global_orient: torch.Tensor,
        hand_pose: torch.Tensor,
        transl: torch.Tensor | None = None,
        with_vertices: bool = True,
        rotmats: torch.Tensor | None = None,
        vertex_ids: torch.Tensor | None = None,
    ) -> MANOOutput:
        """Pose the hand.

        Args:
            betas (B, NB); global_orient (B, 3) axis-angle; hand_pose (B, 15, 3) or (B, 45) axis-angle;
            transl (B, 3) metres or None; with_vertices: skin every vertex (else only the 5 tips);
            rotmats (B, 16, 3, 3): local rotations to use instead of the axis-angles (may be None).
            vertex_ids (K,) long: with with_vertices, skin only these vertices (``vertices`` is then
                (B, K, 3), in this order; the tips are skinned as usual) - for losses on a vertex subset.
        Returns:
            MANOOutput.
        """
        bsz = betas.shape[0]
        if rotmats is None:
            aa = torch.cat([global_orient.reshape(bsz, 1, 3), hand_pose.reshape(bsz, 15, 3)], 1)
            rotmats = aa_to_rotmat(aa)  # (B, 16, 3, 3)
        j_rest = self.rest_joints(betas)
        # 1. Rigid chain: G_i = G_parent @ [R_i | J_i - J_parent], one tree level at a time (the five fingers'
        # joints of a level together: the same products as joint by joint, bit for bit, in a third of the
        # operators, which is most of the cost of a small batch and of its gradient).
        g_rot, g_pos = [rotmats[:, :1]], [j_rest[:, :1]]  # per level: (B, n, 3, 3), (B, n, 3)
        for kids, up, at, par in self._levels:
            pr, pp = g_rot[up][:, at], g_pos[up][:, at]  # the parents' transforms (B, n or 1, 3, 3), (B, n or 1, 3)
            g_rot.append(pr @ rotmats[:, kids])
            g_pos.append(pp + (pr @ (j_rest[:, kids] - j_rest[:, par])[..., None])[..., 0])
        order = self._level_order
        g_rot = torch.cat(g_rot, 1)[:, order]  # (B, 16, 3, 3)
        joints = torch.cat(g_pos, 1)[:, order]  # (B, 16, 3)
        # 2. Skinning transforms A_i x = G_rot_i (x - J_i) + G_pos_i, as (B, 16, 12) rows [R | t].
        a_t = joints - (g_rot @ j_rest[..., None])[..., 0]  # (B, 16, 3)
        a_mat = torch.cat([g_rot, a_t[..., None]], -1).reshape(bsz, 16, 12)
        eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
        # One rest shape for every row (an expanded (1, NB), or equal rows that need no gradient of their
        # own) and no pose correctives: skin that one shape with a single matrix product (`_skin`).
        if not self.has_posedirs and bsz > 1 and (betas.stride(0) == 0 or (
                not betas.requires_grad and bool((betas == betas[:1]).all()))):
            betas = betas[:1]
        if with_vertices and vertex_ids is None:
            v = self.shaped(betas)[0]
            if self.has_posedirs:
                feat = (rotmats[:, 1:] - eye).reshape(bsz, 135)
                v = v + (feat @ self.posedirs).reshape(bsz, -1, 3)
            verts = self._skin(v, self.weights, a_mat)
            tips = verts[:, self.tip_ids]
        else:
            tips = self._posed_subset(self.tip_ids, self.rest_tips(betas), rotmats, a_mat)
            verts = None
            if with_vertices:
                b = betas[:, : self.n_betas]
                rest = self.v_template[vertex_ids] + torch.einsum("bl,vcl->bvc", b, self.shapedirs[vertex_ids, :, : b.shape[1]])
                verts = self._posed_subset(vertex_ids, rest, rotmats, a_mat)
        joints21 = torch.cat([joints, tips], 1)
        if transl is not None:
            tr = transl[:, None, :]
            joints = joints + tr
            joints21 = joints21 + tr
            if verts is not None:
                verts = verts + tr
        return MANOOutput(vertices=verts, joints=joints, joints21=joints21, rest_joints=j_rest, rotmats=rotmats)


    def _posed_subset(self, ids: torch.Tensor, rest: torch.Tensor, rotmats: torch.Tensor, a_mat: torch.Tensor) -> torch.Tensor:
        """Posed vertices (B, K, 3) of vertex ids (K,) from their shaped rest positions rest (B, K, 3):
        pose correctives, then skinning with the transforms a_mat (B, 16, 12)."""
        if self.has_posedirs:
            eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
            feat = (rotmats[:, 1:] - eye).reshape(rotmats.shape[0], 135)
            rest = rest + (feat @ self.posedirs.reshape(135, -1, 3)[:, ids].reshape(135, -1)).reshape(rest.shape)
        return self._skin(rest, self.weights[ids], a_mat)

    @staticmethod
    def _skin(v: torch.Tensor, w: torch.Tensor, a_mat: torch.Tensor) -> torch.Tensor:
        """LBS: v (B, V, 3) or (1, V, 3) (one rest shape for all B rows) rest, w (V, 16), a_mat (B, 16, 12)
        -> (B, V, 3). x'_v = sum_j w_vj A_j [x_v; 1].

        One rest shape: sum_j,k A_j[i, k] (w_vj [x_v; 1]_k), a single (3B, 64) @ (64, V) product (no
        per-vertex 3x4 matrices: 4-6x faster with its gradient on the CPU). Else T_v = sum_j w_vj A_j, then
        x'_v = T_v [x_v; 1]."""
        bsz, nv = a_mat.shape[0], v.shape[1]
        if v.shape[0] == 1 and bsz > 1:
            xh = torch.cat([v[0], v.new_ones(nv, 1)], 1)  # (V, 4)
            p = (w.t()[:, None, :] * xh.t()[None]).reshape(-1, nv)  # (16 * 4, V)
            a = a_mat.reshape(bsz, -1, 3, 4).transpose(1, 2).reshape(bsz * 3, -1)  # (3B, 16 * 4)
            return (a @ p).reshape(bsz, 3, nv).transpose(1, 2)
        t = (w @ a_mat).reshape(bsz, -1, 3, 4)  # (B, V, 3, 4)
        return (t[..., :3] @ v[..., None])[..., 0] + t[..., 3]


def _index(ids: list[int], n_from: int | None = None):
    """Indices as a slice where they are one element or evenly spaced (a whole axis of ``n_from`` elements: all of
    it; all zeros from a one-element axis: that element, broadcast), else a numpy array."""
    if n_from is not None and (ids == list(range(n_from)) or (n_from == 1 and set(ids) == {0})):
        return slice(None)
    if len(set(ids)) == 1:  # one element (broadcast where several ask for it)
        return slice(ids[0], ids[0] + 1)
    step = ids[1] - ids[0]
    if step > 0 and all(b - a == step for a, b in zip(ids, ids[1:])):
        return slice(ids[0], ids[-1] + 1, step)
    return np.array(ids)


_LAYERS: dict = {}


def layer_for(model: HandModel, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> ManoLayer:
    """A cached ManoLayer for ``model`` on ``device``."""
    key = (id(model), str(device), dtype)
    if key not in _LAYERS:
        _LAYERS[key] = ManoLayer(model, dtype).to(device)
    return _LAYERS[key]


def forward(model: HandModel, betas, global_orient, hand_pose, transl=None, with_vertices: bool = True) -> MANOOutput:
    """Convenience: pose ``model`` with numpy or torch inputs (see ManoLayer.forward for shapes)."""
    t = lambda x: None if x is None else torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32)  # noqa: E731
    betas = t(betas)
    layer = layer_for(model, betas.device)
    return layer(betas, t(global_orient), t(hand_pose), t(transl), with_vertices=with_vertices)
