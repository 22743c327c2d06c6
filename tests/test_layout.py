"""The core's layout: subpackages without import circles, and a model-loading path that needs only numpy."""
from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"
HEAVY = ("scipy", "torch", "cv2", "mediapipe", "smplx")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict:
    """{module: set of core modules it imports}, every import counted (module level and inside functions)."""
    mods = {_module_name(p): p for p in CORE.rglob("*.py")}
    graph = {}
    for name, path in mods.items():
        pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in mods else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.split(".")[0] == "core")
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def test_core_modules_have_no_import_circles():
    graph = import_graph()
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == [], " ; ".join(" -> ".join(c) for c in cycles)


def test_core_is_grouped_by_capability():
    """The root keeps only the entry points and shared helpers; every pipeline stage lives in a subpackage."""
    root_modules = {p.stem for p in CORE.glob("*.py")}
    assert root_modules == {"__init__", "__main__", "capture", "cli", "demo", "errors", "progress", "settings", "rot"}
    assert {p.name for p in CORE.iterdir() if (p / "__init__.py").is_file()} == {
        "io", "hand", "solve", "eval", "detect", "net", "contact", "retarget", "batch"}
    assert (CORE / "hand" / "gen" / "__init__.py").is_file()


def test_loading_path_never_reaches_the_generator():
    """core.hand.load, the clip reader and the model tables import nothing of core.hand.gen, even lazily."""
    graph = import_graph()
    seen, todo = set(), ["core.hand.load", "core.io.clip", "core.hand.model"]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph[m])
    assert not [m for m in seen if m.startswith("core.hand.gen")], sorted(seen)


def _official_like_pickle(path: Path, fmt: str) -> dict:
    """A MANO-format pickle with a scipy sparse J_regressor (as the official files have); returns the arrays."""
    import scipy.sparse as sp

    from core.hand.load import load_model

    m = load_model("right")
    jreg = (sp.csc_matrix if fmt == "csc" else sp.csr_matrix)(m.J_regressor.astype(np.float64))
    data = {"v_template": m.v_template.astype(np.float64), "f": m.faces.astype(np.uint32),
            "weights": m.weights.astype(np.float64), "J_regressor": jreg, "shapedirs": m.shapedirs.astype(np.float64),
            "posedirs": m.posedirs.astype(np.float64), "kintree_table": np.zeros((2, 16), np.int64),
            "tip_vertex_ids": m.tip_vertex_ids}
    path.write_bytes(pickle.dumps(data, protocol=2))
    return data


@pytest.mark.parametrize("fmt", ["csc", "csr"])
def test_official_pickle_loads_without_scipy_or_torch(tmp_path, fmt):
    """What Blender does with a user's MANO_RIGHT.pkl (an import of a clip made with it): numpy only. The
    heavy packages are blocked in the child interpreter, and its dense J_regressor equals scipy's."""
    path = tmp_path / "MANO_RIGHT.pkl"
    data = _official_like_pickle(path, fmt)
    out = tmp_path / "jreg.npy"
    code = (f"import sys\nfor m in {HEAVY!r}: sys.modules[m] = None\n"
            "from core.hand.load import load_model\n"
            "import numpy as np\n"
            f"m = load_model('right', {str(path)!r})\n"
            f"np.save({str(out)!r}, m.J_regressor)\n"
            f"print(sorted(k for k in sys.modules if k.split('.')[0] in {HEAVY!r} and sys.modules[k] is not None))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    np.testing.assert_allclose(np.load(out), data["J_regressor"].toarray(), rtol=0, atol=1e-7)


def test_load_model_reports_an_impossible_path(tmp_path):
    """Blender calls load_model with paths from clip files: a name too long for the file system is a clean error."""
    from core.errors import CaptureError
    from core.hand.load import load_model

    with pytest.raises(CaptureError, match="cannot read hand model"):
        load_model("right", tmp_path / ("x" * 300 + ".npz"))
