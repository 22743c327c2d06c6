"""Triangle meshes for contact: from arrays, OBJ and .npz files; per-frame rigid transforms.

`TriMesh` is immutable (read-only arrays) and knows whether it is closed. Polygons are fan-triangulated,
degenerate triangles dropped; every bad input ends in one `CaptureError` sentence.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..errors import CaptureError


@dataclasses.dataclass(frozen=True, eq=False)
class TriMesh:
    """A triangle mesh: vertices (V, 3) float64 metres, faces (F, 3) int64 (counter-clockwise outward).

    ``closed``: every edge is shared by exactly two faces with opposite orientation (watertight and
    consistently wound), so inside/outside is well defined. Identity-hashed: caches key on the object.
    """

    vertices: np.ndarray
    faces: np.ndarray
    name: str = "mesh"
    closed: bool = False

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[0])


def is_closed(faces: np.ndarray, n_vertices: int) -> bool:
    """True when every directed edge (a, b) of faces (F, 3) occurs once and its reverse (b, a) occurs once."""
    if len(faces) == 0:
        return False
    a = faces.reshape(-1)
    b = faces[:, [1, 2, 0]].reshape(-1)
    n = np.int64(n_vertices)
    fwd = np.sort(a * n + b)
    if np.any(fwd[1:] == fwd[:-1]):
        return False
    rev = np.sort(b * n + a)
    return bool(np.array_equal(fwd, rev))


def _fan(poly: np.ndarray) -> np.ndarray:
    """(F, k) polygons -> (F * (k - 2), 3) triangles (v0, vi, vi+1)."""
    k = poly.shape[1]
    if k == 3:
        return poly
    i = np.arange(1, k - 1)
    tri = np.stack([np.repeat(poly[:, :1], k - 2, 1), poly[:, i], poly[:, i + 1]], -1)
    return tri.reshape(-1, 3)


def _as_index(a, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise CaptureError(f"{what}: face indices must be whole numbers; got non-integer values")
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iu":
        raise CaptureError(f"{what}: face indices must be integers; got dtype {a.dtype}")
    return a.astype(np.int64)


def _triangulate(faces, name: str) -> np.ndarray:
    if isinstance(faces, np.ndarray) and faces.dtype != object:
        if faces.size == 0:
            return np.zeros((0, 3), np.int64)
        if faces.ndim != 2:
            raise CaptureError(f"{name}: faces must be (F, k) vertex indices; got shape {faces.shape}")
        polys = [_as_index(faces, name)]
    else:
        groups: dict[int, list] = {}
        for p in faces:
            p = np.atleast_1d(np.asarray(p))
            groups.setdefault(len(p), []).append(p)
        polys = [_as_index(np.stack(g), name) for k, g in sorted(groups.items())]
    out = []
    for p in polys:
        if p.shape[1] < 3:
            raise CaptureError(f"{name}: a face has {p.shape[1]} vertex index(es); each face needs at least 3 "
                               "(points and lines are not surfaces, remove them)")
        out.append(_fan(p))
    return np.concatenate(out) if out else np.zeros((0, 3), np.int64)


def mesh_from_arrays(vertices, faces, name: str = "mesh") -> TriMesh:
    """A TriMesh from vertices (V, 3) metres and faces (F, k) array or a list of polygons (0-based indices).

    Quads and n-gons are fan-triangulated; degenerate triangles (a repeated index or zero area) dropped.
    Raises CaptureError for an empty mesh, an index out of range, non-finite coordinates or a face with
    fewer than 3 vertices.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.size == 0:
        raise CaptureError(f"{name}: empty mesh (no vertices); give a mesh with vertices and triangle faces")
    if v.ndim != 2 or v.shape[1] != 3:
        raise CaptureError(f"{name}: vertices must be (V, 3) coordinates; got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(v), 1))[0])
        raise CaptureError(f"{name}: vertex {bad} has a non-finite coordinate {v[bad].tolist()}; fix or remove it")
    f = _triangulate(faces, name)
    if len(f) == 0:
        raise CaptureError(f"{name}: empty mesh (no faces); give a mesh with triangle or polygon faces")
    if f.min() < 0 or f.max() >= len(v):
        bad = int(f.max() if f.max() >= len(v) else f.min())
        raise CaptureError(f"{name}: face index {bad} is out of range for {len(v)} vertices (valid 0..{len(v) - 1})")
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])
    p = v[f]
    keep &= np.any(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]) != 0, axis=1)
    f = np.ascontiguousarray(f[keep])
    if len(f) == 0:
        raise CaptureError(f"{name}: empty mesh (every face is degenerate: repeated vertices or zero area)")
    v = np.ascontiguousarray(v)
    v.setflags(write=False)
    f.setflags(write=False)
    return TriMesh(v, f, str(name), is_closed(f, len(v)))


def _parse_obj(text: str, name: str) -> tuple[np.ndarray, list]:
    """(V, 3) vertices and a list of 0-based polygons of an OBJ text; one CaptureError naming the line."""
    verts: list[str] = []
    faces: list[list[int]] = []
    first_line: dict[int, int] = {}  # highest positive index -> first line using it (checked at the end)
    for no, line in enumerate(text.splitlines(), 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        tag = parts[0]
        if tag == "v":
            if len(parts) < 4:
                raise CaptureError(f"{name} line {no}: a 'v' record needs 3 coordinates; found {line.strip()!r}")
            verts.extend(parts[1:4])
        elif tag == "f":
            nv = len(verts) // 3
            idx = []
            for tok in parts[1:]:
                try:
                    i = int(tok.split("/", 1)[0])
                except ValueError:
                    raise CaptureError(f"{name} line {no}: bad face index {tok!r} (expected an integer, "
                                       "optionally as i/t/n)") from None
                if i == 0:
                    raise CaptureError(f"{name} line {no}: face index 0 (OBJ indices start at 1)")
                if i < 0 and nv + i < 0:
                    raise CaptureError(f"{name} line {no}: relative face index {i} reaches before the first "
                                       f"vertex ({nv} vertices defined so far)")
                idx.append(i - 1 if i > 0 else nv + i)
            if len(idx) < 3:
                raise CaptureError(f"{name} line {no}: a face needs at least 3 vertices; found {line.strip()!r}")
            top = max(idx)
            if top >= nv:
                first_line.setdefault(top, no)
            faces.append(idx)
    nv = len(verts) // 3
    bad = [k for k in first_line if k >= nv]
    if bad:
        no = min(first_line[k] for k in bad)
        raise CaptureError(f"{name} line {no}: a face refers to vertex {max(bad) + 1}, but the file has only "
                           f"{nv} vertices")
    try:
        v = np.array(verts, dtype=np.float64).reshape(-1, 3)
    except ValueError:
        for no, line in enumerate(text.splitlines(), 1):
            parts = line.split("#", 1)[0].split()
            if parts and parts[0] == "v":
                try:
                    [float(x) for x in parts[1:4]]
                except ValueError:
                    raise CaptureError(f"{name} line {no}: a 'v' record has a non-numeric coordinate: "
                                       f"{line.strip()!r}") from None
        raise
    return v, faces


def load_mesh(path) -> TriMesh:
    """A TriMesh from an OBJ file (v and f records; i/t/n and negative indices; every object and group
    merged; vt, vn, usemtl and the rest ignored) or an .npz with ``vertices`` (V, 3) and ``faces`` (F, k)."""
    p = Path(path)
    name = p.name
    suffix = p.suffix.lower()
    if suffix not in (".obj", ".npz"):
        raise CaptureError(f"mesh {str(p)!r}: unknown file type {p.suffix or '(none)'!r}; give an .obj or an .npz "
                           "with 'vertices' and 'faces'")
    if not p.is_file():
        raise CaptureError(f"mesh file not found: {str(p)!r}")
    try:
        if suffix == ".obj":
            v, f = _parse_obj(p.read_text(encoding="utf-8", errors="replace"), name)
        else:
            with np.load(p, allow_pickle=False) as z:
                missing = [k for k in ("vertices", "faces") if k not in z.files]
                if missing:
                    raise CaptureError(f"{name}: the .npz lacks {missing}; it needs 'vertices' (V, 3) and 'faces' "
                                       f"(F, 3); found {sorted(z.files)}")
                v, f = z["vertices"], z["faces"]
    except CaptureError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise CaptureError(f"cannot read mesh {str(p)!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
            from None
    return mesh_from_arrays(v, f, name=p.stem)


def load_transforms(path_or_array, n_frames: int, tol: float = 1e-4) -> np.ndarray:
    """(T, 4, 4) float64 mesh-to-camera rigid transforms (OpenCV camera frame, metres), one per clip frame.

    path_or_array: a .npy file or an array of shape (T, 4, 4), (1, 4, 4) or (4, 4); a single transform is
    repeated over the n_frames. Checked: frame count, finite, rotation orthonormal with det +1 (within tol),
    last row 0 0 0 1.
    """
    src = "transforms"
    if isinstance(path_or_array, (str, Path)):
        p = Path(path_or_array)
        src = p.name
        if not p.is_file():
            raise CaptureError(f"transforms file not found: {str(p)!r}")
        try:
            a = np.load(p, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise CaptureError(f"cannot read transforms {str(p)!r} (expected a .npy of (T, 4, 4)): "
                               f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    else:
        a = path_or_array
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise CaptureError(f"{src}: expected numbers of shape (T, 4, 4)") from None
    if a.shape == (4, 4):
        a = a[None]
    if a.ndim != 3 or a.shape[1:] != (4, 4):
        raise CaptureError(f"{src}: expected shape (T, 4, 4) or (4, 4) mesh-to-camera transforms; got {a.shape}")
    if a.shape[0] == 1:
        a = np.repeat(a, n_frames, 0)
    if a.shape[0] != n_frames:
        raise CaptureError(f"{src}: {a.shape[0]} transforms for a clip of {n_frames} frames; give one per frame "
                           "or a single static one")
    bad = ~np.all(np.isfinite(a), axis=(1, 2))
    if bad.any():
        raise CaptureError(f"{src}: transform {int(np.flatnonzero(bad)[0])} has non-finite values")
    row = np.abs(a[:, 3] - [0, 0, 0, 1]).max(1) > tol
    R = a[:, :3, :3]
    ortho = np.abs(R @ R.transpose(0, 2, 1) - np.eye(3)).max((1, 2)) > tol
    det = np.abs(np.linalg.det(R) - 1) > tol
    for what, m in (("last row is not 0 0 0 1", row), ("rotation is not orthonormal (scale or shear?)", ortho),
                    ("rotation has determinant -1 (a mirror)", det)):
        if m.any():
            raise CaptureError(f"{src}: transform {int(np.flatnonzero(m)[0])}'s {what}; give rigid mesh-to-camera "
                               "transforms in metres (apply scale to the mesh instead)")
    a = a.copy()
    a[:, 3] = [0, 0, 0, 1]
    return a


def transform_points(T, p):
    """Rigid transforms T (..., 4, 4) applied to points p (..., N, 3): R p + t (numpy or torch, batched)."""
    return p @ T[..., :3, :3].swapaxes(-1, -2) + T[..., None, :3, 3]


def invert_rigid(T):
    """The inverse of rigid transforms T (..., 4, 4): [R^T, -R^T t] (numpy or torch, differentiable)."""
    Rt = T[..., :3, :3].swapaxes(-1, -2)
    t = -(Rt @ T[..., :3, 3:4])
    bottom = T[..., 3:4, :]
    top = (np.concatenate if isinstance(T, np.ndarray) else _torch_cat)([Rt, t], -1)
    return (np.concatenate if isinstance(T, np.ndarray) else _torch_cat)([top, bottom], -2)


def _torch_cat(xs, dim):
    import torch

    return torch.cat(xs, dim)
