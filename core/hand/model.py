"""The hand model in MANO's format: index tables and the `HandModel` arrays (loading: `core.hand.load`).

Every joint order, parent table, fingertip id and MediaPipe <-> MANO map of the project lives here;
bone names elsewhere are derived from these tables.

Joint orders
------------
* MANO 16 (``MANO_JOINTS``): 0 wrist, 1-3 index, 4-6 middle, 7-9 pinky, 10-12 ring, 13-15 thumb
  (thumb1 ~ CMC, thumb2 ~ MCP, thumb3 ~ IP).
* MANO 21 (``MANO21_JOINTS``): the 16 joints, then fingertips 16 thumb, 17 index, 18 middle, 19 ring,
  20 pinky (fingertips are mesh vertices, ``HandModel.tip_vertex_ids``).
* MediaPipe 21 (``MP_JOINTS``): 0 wrist; 1-4 thumb CMC, MCP, IP, TIP; 5-8 index MCP, PIP, DIP, TIP;
  9-12 middle; 13-16 ring; 17-20 pinky.  ``MP_FROM_MANO21[k]`` is the MANO-21 index of MediaPipe joint k.
"""
from __future__ import annotations

import dataclasses
import numpy as np

from ..errors import CaptureError

MANO_JOINTS = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)
MANO_PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14], dtype=np.int64)
TIP_NAMES = ("thumb4", "index4", "middle4", "ring4", "pinky4")
MANO21_JOINTS = MANO_JOINTS + TIP_NAMES
# Parent of each MANO-21 joint (tips hang off the last joint of their finger).
MANO21_PARENTS = np.concatenate([MANO_PARENTS, [15, 3, 6, 12, 9]]).astype(np.int64)
# The official MANO's fingertip vertices (thumb, index, middle, ring, pinky).
MANO_TIP_VERTEX_IDS = np.array([744, 320, 443, 554, 671], dtype=np.int64)

MP_JOINTS = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
MP_PARENTS = np.array([-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19], dtype=np.int64)
MP_FROM_MANO21 = np.array([0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20], dtype=np.int64)
MANO21_FROM_MP = np.argsort(MP_FROM_MANO21)

# Fingers as MANO-16 joint chains (proximal -> distal) with their MANO-21 tip index.
FINGERS = {
    "thumb": ((13, 14, 15), 16),
    "index": ((1, 2, 3), 17),
    "middle": ((4, 5, 6), 18),
    "ring": ((10, 11, 12), 19),
    "pinky": ((7, 8, 9), 20),
}
SIDES = ("right", "left")
N_JOINTS = 16
N_POSE = 15 * 3

MODEL_KEYS = ("v_template", "faces", "weights", "J_regressor", "shapedirs", "posedirs", "tip_vertex_ids")


@dataclasses.dataclass(frozen=True)
class HandModel:
    """A MANO-format hand model as plain numpy arrays (float32 unless stated).

    Fields:
        side: "right" or "left".
        name: where the model came from ("handcap-open" for the project's own, or a file name).
        v_template (V, 3): rest (flat-hand) vertices, metres, model frame.
        faces (F, 3) int64: triangles, counter-clockwise seen from outside.
        weights (V, 16): linear-blend-skinning weights over MANO_JOINTS, rows sum to 1.
        J_regressor (16, V): rest joints = J_regressor @ shaped vertices.
        shapedirs (V, 3, B): linear shape directions (B betas).
        posedirs (V, 3, 135): pose-corrective directions (zeros allowed).
        tip_vertex_ids (5,) int64: fingertip vertices, thumb, index, middle, ring, pinky.
        beta_names (B,) str: what each beta changes (may be generic for official MANO).
    """

    side: str
    name: str
    v_template: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    J_regressor: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    tip_vertex_ids: np.ndarray
    beta_names: tuple = ()

    @property
    def n_betas(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def n_verts(self) -> int:
        return int(self.v_template.shape[0])

    def rest_joints(self, betas: np.ndarray | None = None) -> np.ndarray:
        """Rest joints (16, 3) metres for ``betas`` (B,) (zeros when None)."""
        v = self.shaped_vertices(betas)
        return (self.J_regressor @ v).astype(np.float32)

    def shaped_vertices(self, betas: np.ndarray | None = None) -> np.ndarray:
        """Rest vertices (V, 3) for ``betas`` (B,): v = v_template + sum_b shapedirs[:, :, b] * betas[b]."""
        if betas is None:
            return self.v_template
        b = np.zeros(self.n_betas, np.float32)
        betas = np.asarray(betas, np.float32).reshape(-1)[: self.n_betas]
        b[: betas.shape[0]] = betas
        return self.v_template + np.einsum("vcb,b->vc", self.shapedirs, b)


def validate_arrays(arrays: dict, source: str) -> list[str]:
    """Every problem with a dict of MANO-format arrays, as messages naming ``source`` (empty if fine)."""
    problems = []
    missing = [k for k in ("v_template", "faces", "weights", "J_regressor", "shapedirs") if k not in arrays]
    if missing:
        return [f"{source}: missing keys {', '.join(missing)} (expected a MANO-format hand model)"]
    v = np.asarray(arrays["v_template"])
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 100:
        problems.append(f"{source}: v_template has shape {v.shape}, expected (V, 3) with V >= 100")
        return problems
    n_v = v.shape[0]
    checks = {
        "faces": (None, 3),
        "weights": (n_v, N_JOINTS),
        "J_regressor": (N_JOINTS, n_v),
    }
    for key, (a, b) in checks.items():
        s = np.asarray(arrays[key]).shape
        if len(s) != 2 or (a is not None and s[0] != a) or s[1] != b:
            problems.append(f"{source}: {key} has shape {s}, expected ({a or 'F'}, {b})")
    s = np.asarray(arrays["shapedirs"]).shape
    if len(s) != 3 or s[:2] != (n_v, 3):
        problems.append(f"{source}: shapedirs has shape {s}, expected ({n_v}, 3, B)")
    if "posedirs" in arrays:
        s = np.asarray(arrays["posedirs"]).shape
        if len(s) != 3 or s != (n_v, 3, 135):
            problems.append(f"{source}: posedirs has shape {s}, expected ({n_v}, 3, 135)")
    if not problems:
        f = np.asarray(arrays["faces"])
        if f.min() < 0 or f.max() >= n_v:
            problems.append(f"{source}: faces index vertices outside 0..{n_v - 1}")
        w = np.asarray(arrays["weights"], np.float64)
        if not np.allclose(w.sum(1), 1.0, atol=1e-3):
            problems.append(f"{source}: skinning weights do not sum to 1 per vertex")
        if "tip_vertex_ids" in arrays:
            t = np.asarray(arrays["tip_vertex_ids"])
            if t.shape != (5,) or t.min() < 0 or t.max() >= n_v:
                problems.append(f"{source}: tip_vertex_ids {t.tolist()} invalid for {n_v} vertices")
    return problems


def model_from_arrays(arrays: dict, side: str, name: str) -> HandModel:
    """Build a validated `HandModel` from MANO-format arrays; raises CaptureError listing every problem."""
    problems = validate_arrays(arrays, name)
    if problems:
        raise CaptureError("; ".join(problems))
    v = np.asarray(arrays["v_template"], np.float32)
    n_v = v.shape[0]
    if "tip_vertex_ids" in arrays:
        tips = np.asarray(arrays["tip_vertex_ids"], np.int64)
    elif n_v == 778:
        tips = MANO_TIP_VERTEX_IDS.copy()
    else:
        raise CaptureError(f"{name}: no tip_vertex_ids and not the 778-vertex MANO mesh; cannot find fingertips")
    posedirs = np.asarray(arrays.get("posedirs", np.zeros((n_v, 3, 135))), np.float32)
    names = tuple(str(s) for s in np.asarray(arrays.get("beta_names", ()))) if "beta_names" in arrays else ()
    jreg = arrays["J_regressor"]
    if hasattr(jreg, "toarray"):
        jreg = jreg.toarray()
    return HandModel(
        side=side,
        name=name,
        v_template=v,
        faces=np.asarray(arrays["faces"], np.int64),
        weights=np.asarray(arrays["weights"], np.float32),
        J_regressor=np.asarray(jreg, np.float32),
        shapedirs=np.asarray(arrays["shapedirs"], np.float32),
        posedirs=posedirs,
        tip_vertex_ids=tips,
        beta_names=names,
    )
