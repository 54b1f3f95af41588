"""Multi-core scaling: the `workers` scenario of compare.py.

    python bench/workers.py [--workers 1,2,4] [compare.py options, e.g. --rounds 3]

The same as ``python -m bench --scenarios workers --workers-list 1,2,4`` with
the report in bench/results/workers-<date>-<time>.md (plus a chart). Every
proxy runs with N workers for each N (lbproxy ``workers: N``, nginx
``worker_processes N``, HAProxy ``nbthread N``) against one nginx backend with
as many workers as the largest N; wrk -t2 -c100 drives `GET /`. Nothing is
pinned: proxy, backend and wrk share the machine's CPUs, which bounds the
scaling any proxy can show on a machine with few cores (the report says how
many there were). Reported per proxy and N: requests/s, p50/p99, errors, CPU
microseconds per request, peak RSS, the ratios to nginx at the same N and the
req/s over the same proxy's at the smallest N. Any compare.py option given
here wins. See bench/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare as cmp  # the shared benchmark


def main() -> int:
    # This script's old option --workers still works: argparse takes it as an
    # abbreviation of compare.py's --workers-list.
    return cmp.main(["--scenarios", "workers", *cmp.default_output("workers"), *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
