"""``python -m core`` entry point (see core/cli.py).

After the command has finished and its output is flushed the process ends at once (``os._exit``): tearing down
torch's modules alone takes ~0.35 s that nobody waits for (every file is written and closed by then; nothing of
the project registers exit handlers). A command that raises still exits the usual way."""
import os
import sys

from .cli import main

code = main()
try:
    sys.stdout.flush()
    sys.stderr.flush()
except (OSError, ValueError):  # a closed or broken pipe: exit the usual way, which reports it
    sys.exit(code)
os._exit(code if isinstance(code, int) else 0 if code is None else 1)
