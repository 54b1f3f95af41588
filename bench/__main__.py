"""`python -m bench`: the side-by-side proxy benchmark (bench/compare.py)."""

import sys

from bench.compare import main

sys.exit(main())
