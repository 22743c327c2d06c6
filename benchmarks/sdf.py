"""Signed distance to meshes (issue 10 item 1): libigl exact query, winding-number signs, the torch grid.

233,400 query points (300 frames x 778 hand vertices' worth) around each mesh, within a +-3 cm cube of
random surface vertices. Meshes: the YCB mug (2,000 faces), the mug subdivided to 32,000 faces and a
999,424-face mug (decimated to 976 faces, then subdivided 5 times). Times are best of ``--repeats``.
Sign errors: the fast winding number against the exact one on the open HOT3D scans, and both (plus
libigl's pseudonormal sign) against the closed mug's own sign on the mug with 5 % of its faces removed.

Usage: python -m benchmarks.sdf [--quick] [--repeats 2]
"""
from __future__ import annotations

import argparse
import os
import time

import igl
import numpy as np
import torch

from benchmarks.common import need_data
from core.contact.mesh import TriMesh, load_mesh, mesh_from_arrays
from core.contact.sdf import Exact, Field, decimated

N_POINTS = 300 * 778


def best(fn, repeats: int):
    t_best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t0)
    return t_best, out


def around(mesh: TriMesh, n: int = N_POINTS, spread: float = 0.03, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return mesh.vertices[rng.integers(0, mesh.n_vertices, n)] + rng.uniform(-spread, spread, (n, 3))


def meshes(mug: TriMesh) -> list[TriMesh]:
    v, f = igl.upsample(mug.vertices, mug.faces, 2)
    m32 = mesh_from_arrays(v, f, name="mug x16")
    base = decimated(mug, 976)
    v, f = igl.upsample(base.vertices, base.faces, 5)
    m1m = mesh_from_arrays(v, f, name="mug ~1M")
    return [mug, m32, m1m]


def speed_row(m: TriMesh, repeats: int, quick: bool) -> dict:
    p = around(m)
    r = {"mesh": m.name, "faces": m.n_faces}
    r["aabb"], tree = best(lambda: _tree(m), repeats)
    r["fwn"], _ = best(lambda: _fwn(m), repeats)
    fast = Exact(m, "fast")
    r["query"], (d, _) = best(lambda: fast.query(p), repeats)
    r["unsigned"], _ = best(lambda: fast.unsigned(p), 1)
    # the exact winding number sums every triangle per point: timed on a subset, scaled to 233k points
    n_wn = N_POINTS if m.n_faces <= 2000 else max(200, min(N_POINTS, int(2e8 / m.n_faces)))
    t_wn, w = best(lambda: igl.winding_number(m.vertices, m.faces, p[:n_wn]), 1)
    r["wn_sign"] = t_wn * N_POINTS / n_wn
    r["wn_points"] = n_wn
    r["wn_disagree"] = int(np.sum((np.abs(w) > 0.5) != (d[:n_wn] < 0)))
    r["igl_sd"], _ = best(lambda: igl.signed_distance(p, m.vertices, m.faces,
                                                      igl.SIGNED_DISTANCE_TYPE_FAST_WINDING_NUMBER), 1)
    for res in (64, 128):
        t, field = best(lambda: Field.build(m, res=res), 1)
        r[f"grid{res}"] = t
        r[f"src{res}"] = field.source_faces
    r["pitch128"] = field.pitch
    pt = torch.from_numpy(p).float()
    r["lookup"], look = best(lambda: field.lookup(pt), max(3, repeats))

    def fwd_bwd():
        x = pt.clone().requires_grad_()
        field.lookup(x).sum().backward()
        return x.grad

    r["lookup_bwd"], _ = best(fwd_bwd, max(3, repeats))
    err = np.abs(look.double().numpy() - d) * 1000
    in_grid = np.all((p >= field.origin) & (p <= field.upper), 1)
    band = in_grid & (np.abs(d) < 0.01)
    r["err_band"] = (err[band].mean(), np.percentile(err[band], 99))
    r["err_grid"] = (err[in_grid].mean(), np.percentile(err[in_grid], 99))
    r["err_all"] = (err.mean(), np.percentile(err, 99))
    r["in_grid"] = in_grid.mean()
    r["sign_band"] = int(np.sum((look.numpy()[band] < 0) != (d[band] < 0)))
    r["n_band"] = int(band.sum())
    if m.n_faces > 200_000 and not quick:
        r["grid128_full"], _ = best(lambda: Field.build(m, res=128, max_faces=m.n_faces), 1)
    return r


def _tree(m):
    t = igl.AABB()
    t.init(m.vertices, m.faces)
    return t


def _fwn(m):
    b = igl.FastWindingNumberBVH()
    b.init(m.vertices, m.faces)
    return b


def sign_rows(mug: TriMesh, data) -> list[dict]:
    rows = []
    rng = np.random.default_rng(5)
    holed = mesh_from_arrays(mug.vertices, np.delete(mug.faces, rng.choice(mug.n_faces, mug.n_faces // 20, False),
                                                     0), name="mug, 5 % of faces removed")
    cases = [(holed, mug)]
    for name in ("hot3d_mouse", "hot3d_cellphone"):
        cases.append((load_mesh(data / f"{name}.obj"), None))
    for m, truth_mesh in cases:
        p = around(m, seed=6)
        fast, exact = Exact(m, "fast"), Exact(m, "exact")
        d_fast, c = fast.query(p)
        w_exact = exact.winding(p)
        truth = (np.abs(Exact(truth_mesh, "exact").winding(p)) > 0.5) if truth_mesh is not None else \
            (np.abs(w_exact) > 0.5)
        s_pn, _, _, _ = igl.signed_distance(p, m.vertices, m.faces, igl.SIGNED_DISTANCE_TYPE_PSEUDONORMAL)
        s_igl, _, _, _ = igl.signed_distance(p, m.vertices, m.faces, igl.SIGNED_DISTANCE_TYPE_FAST_WINDING_NUMBER)
        unsigned = np.linalg.norm(p - c, axis=1)
        wrong = (d_fast < 0) != truth
        near = float(np.abs(Exact(truth_mesh).query(p[wrong])[0]).max() * 1000) if truth_mesh is not None and \
            wrong.any() else None
        rows.append({
            "mesh": m.name, "faces": m.n_faces, "closed": m.closed,
            "truth": "closed mug" if truth_mesh is not None else "exact winding number",
            "fast": int(np.sum((d_fast < 0) != truth)),
            "exact": int(np.sum((np.abs(w_exact) > 0.5) != truth)),
            "pseudonormal": int(np.sum((s_pn < 0) != truth)),
            "igl_mag": float(np.abs(np.abs(s_igl) - unsigned).max() * 1000), "near": near,
        })
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the full-mesh 128^3 grid of the 1M-face mesh")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = need_data("objects")
    mug = load_mesh(data / "ycb_025_mug.obj")
    print(f"signed distance, {N_POINTS:,} points within +-3 cm of the surface; load average "
          f"{os.getloadavg()[0]:.1f} at the start; torch {torch.__version__}, 1 thread; libigl threads: all cores")
    rows = [speed_row(m, a.repeats, a.quick) for m in meshes(mug)]
    print("\n| | " + " | ".join(f"{r['mesh']} ({r['faces']:,} faces)" for r in rows) + " |")
    print("|---|" + "---|" * len(rows))

    def line(label, fmt):
        print(f"| {label} | " + " | ".join(fmt(r) for r in rows) + " |")

    line("AABB tree build (s)", lambda r: f"{r['aabb']:.3f}")
    line("fast winding number hierarchy build (s)", lambda r: f"{r['fwn']:.3f}")
    line("**exact query, fast winding sign (s)**", lambda r: f"**{r['query']:.2f}**")
    line("of which unsigned distance + closest point (s)", lambda r: f"{r['unsigned']:.2f}")
    line("exact winding number sign alone (s, 233k points)",
         lambda r: f"{r['wn_sign']:.1f}" + ("" if r["wn_points"] == N_POINTS else f" (from {r['wn_points']:,})"))
    line("points where the two signs differ", lambda r: f"{r['wn_disagree']} of {r['wn_points']:,}")
    line("`igl.signed_distance` (fwn), tree rebuilt per call (s)", lambda r: f"{r['igl_sd']:.2f}")
    line("grid build 64^3 (s)", lambda r: f"{r['grid64']:.1f}" + _src(r, 64))
    line("grid build 128^3 (s)", lambda r: f"{r['grid128']:.1f}" + _src(r, 128))
    if any("grid128_full" in r for r in rows):
        line("grid build 128^3 from all faces (s)", lambda r: f"{r['grid128_full']:.1f}" if "grid128_full" in r else "")
    line("128^3 voxel (mm)", lambda r: f"{r['pitch128'] * 1000:.2f}")
    line("**grid lookup 128^3, float32 (ms)**", lambda r: f"**{r['lookup'] * 1000:.0f}**")
    line("grid lookup + backward (ms)", lambda r: f"{r['lookup_bwd'] * 1000:.0f}")
    line("grid error, in grid and \\|d\\| < 1 cm: mean / p99 (mm)",
         lambda r: f"{r['err_band'][0]:.3f} / {r['err_band'][1]:.2f}")
    line("grid error, all points in the grid: mean / p99 (mm)",
         lambda r: f"{r['err_grid'][0]:.3f} / {r['err_grid'][1]:.2f}")
    line("grid error, all points (outside: box distance): mean / p99 (mm)",
         lambda r: f"{r['err_all'][0]:.3f} / {r['err_all'][1]:.2f} ({r['in_grid'] * 100:.0f} % in the grid)")
    line("grid sign differs from exact, \\|d\\| < 1 cm", lambda r: f"{r['sign_band']} of {r['n_band']:,}")

    srows = sign_rows(mug, data)
    print("\n| mesh (233k points) | faces | closed | sign truth | fast winding | exact winding | libigl pseudonormal "
          "| `igl.signed_distance` max magnitude error (mm) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in srows:
        near = "" if r["near"] is None else f" (all within {r['near']:.2f} mm of the closed surface)"
        print(f"| {r['mesh']} | {r['faces']:,} | {'yes' if r['closed'] else 'no'} | {r['truth']} | {r['fast']}{near} | "
              f"{r['exact']} | {r['pseudonormal']} | {r['igl_mag']:.2f} |")


def _src(r, res):
    return "" if r[f"src{res}"] == r["faces"] else f" (from {r[f'src{res}']:,} faces)"


if __name__ == "__main__":
    main()
