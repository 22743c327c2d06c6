"""The skinned hand mesh: arrays from the hand model (`skin_mesh`), then the bpy mesh (`write_mesh`).

The mesh is the model's shaped rest mesh (v_template + shapedirs . betas) in the world; each MANO
joint's skinning weights become a vertex group named after its bone, and an Armature modifier
deforms it, which is MANO's linear blend skinning.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..core.hand.model import MANO_JOINTS, HandModel
from . import convert
from .rig import bone_name


@dataclasses.dataclass(frozen=True)
class SkinMesh:
    """A hand mesh ready for bpy.

    Fields:
        vertices (V, 3) float64: shaped rest vertices, world, scene units.
        faces (F, 3) int64: triangles.
        weights (V, 16) float32: skinning weights over ``group_names``.
        group_names (16,) str: vertex group (= bone) names, MANO_JOINTS order.
        has_pose_correctives: the model has non-zero posedirs, which the Armature modifier cannot
            reproduce (the mesh then differs from the core's by the corrective offsets).
    """

    vertices: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    group_names: tuple
    has_pose_correctives: bool


def skin_mesh(model: HandModel, betas: np.ndarray, units: float = 1.0) -> SkinMesh:
    """Mesh arrays for ``model`` with shape ``betas`` (B,), in the world, scene units."""
    v_cam = model.shaped_vertices(betas)
    return SkinMesh(
        vertices=convert.points_cam_to_world(v_cam, units),
        faces=np.asarray(model.faces, np.int64),
        weights=np.asarray(model.weights, np.float32),
        group_names=tuple(bone_name(model.side, j) for j in MANO_JOINTS),
        has_pose_correctives=bool(np.abs(model.posedirs).max() > 0) if model.posedirs.size else False,
    )


def write_mesh(skin: SkinMesh, name: str, collection, armature_obj):
    """Create the mesh object ``name`` in ``collection``, parented to and deformed by ``armature_obj``."""
    import bpy

    n_v, n_f = skin.vertices.shape[0], skin.faces.shape[0]
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(n_v)
    mesh.vertices.foreach_set("co", np.ascontiguousarray(skin.vertices, np.float32).ravel())
    mesh.loops.add(3 * n_f)
    mesh.loops.foreach_set("vertex_index", np.ascontiguousarray(skin.faces, np.int32).ravel())
    mesh.polygons.add(n_f)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * n_f, 3, dtype=np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(n_f, bool))
    mesh.update(calc_edges=True)
    mesh.validate(verbose=False)

    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    obj.parent = armature_obj
    # Vertex groups: one add() per (vertex, weight) pair that is non-zero (a few thousand calls).
    for j, gname in enumerate(skin.group_names):
        vg = obj.vertex_groups.new(name=gname)
        w = skin.weights[:, j]
        for vi in np.flatnonzero(w > 0):
            vg.add([int(vi)], float(w[vi]), "REPLACE")
    mod = obj.modifiers.new("Armature", "ARMATURE")
    mod.object = armature_obj
    mod.use_vertex_groups = True
    mod.use_bone_envelopes = False
    mod.use_deform_preserve_volume = False
    return obj


def evaluated_vertices(obj, depsgraph) -> np.ndarray:
    """World-space vertices (V, 3) float64 of ``obj`` after modifiers, for the current frame (bpy read)."""
    ev = obj.evaluated_get(depsgraph)
    mesh = ev.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
    finally:
        ev.to_mesh_clear()
    mw = np.array(ev.matrix_world, np.float64)
    co = co.reshape(-1, 3).astype(np.float64)
    return co @ mw[:3, :3].T + mw[:3, 3]
