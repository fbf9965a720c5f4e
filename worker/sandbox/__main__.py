"""``python -m worker.sandbox``: the same as ``headswap sandbox``."""

from __future__ import annotations

import sys

from worker.sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
