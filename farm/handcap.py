"""``python farm/handcap.py ARGS`` = ``python -m core ARGS`` from any working directory (farm workers start commands
in a folder of their own): the checkout holding this file goes first on sys.path."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
