"""``python -m core`` entry point (see core/cli.py)."""
import sys

from .cli import main

sys.exit(main())
