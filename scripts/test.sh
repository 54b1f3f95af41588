#!/usr/bin/env bash
# The README's test command: installs lbproxy (compiling its Cython modules)
# with its test dependencies into .venv, installs the system tools the tests
# and benchmarks use, then runs the whole suite, lint and type checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# wrk, nginx and HAProxy are for bench/compare.py; the suite itself does not
# need them, so a failed install only warns.
bash bench/install-tools.sh || echo "warning: benchmark tools not installed (bench/install-tools.sh)" >&2

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip "setuptools>=77" wheel Cython
# Editable install so the tests import the tree they live in, with the
# compiled extensions built in place.
.venv/bin/python -m pip install -q -e '.[test]'

# Every lbproxy/_fast/*.pyx must have compiled: a silent fallback to the pure
# twins would leave the compiled half of the suite untested.
.venv/bin/python - <<'PY'
import pathlib, sys
import lbproxy._fast as fast
names = sorted(p.stem for p in pathlib.Path("lbproxy/_fast").glob("*.pyx"))
missing = [n for n in names if fast.implementation(n) != "compiled"]
sys.exit(f"lbproxy: C extensions not built: {missing}" if missing else 0)
PY
.venv/bin/ruff check lbproxy tests bench
.venv/bin/mypy lbproxy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
