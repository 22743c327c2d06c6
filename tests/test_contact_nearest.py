"""core.contact.nearest: closest points on the posed hand by one-ring search, against libigl's tree."""
import numpy as np
import pytest
import torch

from core.contact.hands import _outward, _signed
from core.contact.nearest import closest_point_triangle, near_faces, vertex_faces
from core.hand.load import load_model
from core.hand.mano import ManoLayer


def test_closest_point_triangle_matches_dense_sampling():
    """Every Voronoi region (vertices, edges, inside) and degenerate triangles: the closest point is at
    least as close as the best of 20k points sampled on the triangle, and lies on it."""
    g = torch.Generator().manual_seed(0)
    tri = torch.randn(40, 3, 3, generator=g, dtype=torch.float64)
    tri[-2, 2] = tri[-2, 1]  # a degenerate (segment) triangle
    tri[-1, 1] = tri[-1, 0]
    tri[-1, 2] = tri[-1, 0]  # a point triangle
    p = torch.randn(40, 3, generator=g, dtype=torch.float64) * 2
    c, bary = closest_point_triangle(p, tri[:, 0], tri[:, 1], tri[:, 2])
    assert torch.isfinite(c).all() and (bary >= 0).all()
    assert torch.allclose(bary.sum(-1), torch.ones(40, dtype=torch.float64))
    assert torch.allclose((bary[..., None] * tri).sum(1), c)
    u = torch.rand(20000, 2, generator=g, dtype=torch.float64)
    flip = u.sum(1) > 1
    u[flip] = 1 - u[flip]
    w = torch.cat([1 - u.sum(1, keepdim=True), u], 1)  # (S, 3) uniform on the triangle
    samples = torch.einsum("sk,nkd->nsd", w, tri)
    best = (samples - p[:, None]).norm(dim=-1).min(1).values
    d = (c - p).norm(dim=-1)
    assert (d <= best + 1e-12).all()
    assert (best - d).max() < 0.05  # and the dense samples come close to it


def test_vertex_faces_lists_each_face_at_its_corners():
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1]])
    ring = vertex_faces(faces, 5)
    assert ring.shape == (5, 3)
    assert sorted(ring[0]) == [0, 1, 2] and sorted(x for x in ring[2] if x >= 0) == [0, 1]
    assert (ring[4] == -1).all()


@pytest.mark.parametrize("pose_std", [0.0, 0.1])
def test_near_faces_matches_igl_near_the_posed_hand(pose_std):
    """Points within a few mm of posed hands: signed distances equal libigl's (AABB + winding number) on
    >= 98 % of points (exactly), the rest where the mesh crosses itself (fingers through fingers) or the
    closest face is not around the nearest vertex."""
    layer = ManoLayer(load_model("right"), dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    n = 12
    pose = torch.randn(n, 45, generator=g, dtype=torch.float64) * pose_std
    z = torch.zeros(n, 3, dtype=torch.float64)
    v = layer(torch.zeros(n, layer.n_betas, dtype=torch.float64), z, pose, z, with_vertices=True).vertices
    faces = _outward(v[0].numpy(), layer.faces.numpy())
    rng = np.random.default_rng(0)
    pts, rows, ref = [], [], []
    for k in range(n):
        vn = v[k].numpy()
        p = vn[rng.integers(0, len(vn), 300)] + rng.normal(size=(300, 3)) * 0.003
        pts.append(p)
        rows.append(np.full(300, k))
        ref.append(_signed(p, vn, faces)[0])
    ref = np.concatenate(ref)
    _, closest, bary, signed = near_faces(torch.as_tensor(np.concatenate(pts)), torch.as_tensor(np.concatenate(rows)),
                                          v, torch.as_tensor(faces), torch.as_tensor(vertex_faces(faces, v.shape[1])), k=2)
    same = np.abs(signed.numpy() - ref) < 1e-9
    assert same.mean() >= 0.98, same.mean()
    if pose_std == 0.0:
        assert ((signed.numpy() < 0) == (ref < 0)).all()  # the open hand does not cross itself
