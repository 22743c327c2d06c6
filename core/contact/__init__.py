"""Contact refinement (issue 10): hands that touch objects and each other without passing through them.

Modules: `mesh` (triangle meshes from arrays, OBJ and .npz files; per-frame rigid transforms), `sdf` (exact
signed distance and closest points with libigl, winding-number signs, a dense grid read with torch for the
optimiser's inner loop; `Body` = a mesh moving over the clip), `hands` (hand-hand distance and
self-penetration measured on the hand meshes), `metrics` (penetration depth, intersection volume, contact
recall, pose and reprojection change, jitter), `refine` (the refinement solve over MANO pose and
translation, and the grasp lock), `scenes` (synthetic hand-object and hand-hand scenes with known truth),
`cli` (`python -m core refine`).
"""
