"""Shared bits of the benchmark scripts: the data folder and peak-RSS measurement of a command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("HANDCAP_DATA", ROOT.parent / "shared" / "data")).resolve()


def need_data(rel: str) -> Path:
    p = DATA / rel
    if not p.exists():
        raise SystemExit(f"benchmark needs {p} (set HANDCAP_DATA)")
    return p


_RSS = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)\n"
    "sys.stderr.write(r.stderr[-2000:] if r.returncode else '')\n"
)


def peak_rss_mb(cmd: list[str]) -> float:
    """Peak resident set size (MB, the kernel's ru_maxrss of the child) of running ``cmd``."""
    out = subprocess.run([sys.executable, "-c", _RSS, *cmd], capture_output=True, text=True, cwd=ROOT)
    kb, rc = out.stdout.split()
    if rc != "0":
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr}")
    return int(kb) / 1024.0
