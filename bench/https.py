"""HTTPS termination: the `https` and `https-close` scenarios of compare.py.

    python bench/https.py [compare.py options, e.g. --duration 10 --rounds 3]

The same as ``python -m bench --scenarios https,https-close`` with the report
in bench/results/https-<date>-<time>.md (plus charts). Each proxy (lbproxy,
nginx, HAProxy; lbproxy-pure with --include-pure) terminates TLS with one
self-signed ECDSA P-256 certificate on CPU 0 and proxies plain HTTP to one
nginx backend; wrk and the backend run on CPU 1. ``keep-alive`` (wrk, 1
thread, 50 connections reused) and ``new connection`` (``Connection: close``:
a TLS handshake per request). Reported per proxy: requests/s, p50/p99, errors,
CPU microseconds per request, peak RSS, and the ratios to nginx. Any
compare.py option given here wins (``--proxies lbproxy,nginx``, ``--output``).
See bench/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare as cmp  # the shared benchmark


def main() -> int:
    return cmp.main(
        ["--scenarios", "https,https-close", *cmp.default_output("https"), *sys.argv[1:]]
    )


if __name__ == "__main__":
    raise SystemExit(main())
