#!/usr/bin/env bash
# The README's test command: installs lbproxy (compiling its Cython modules)
# with its test dependencies into .venv, installs the system tools the tests
# and benchmarks use, then runs the whole suite, lint and type checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# wrk, nginx and HAProxy are for bench/compare.py; the suite itself does not
# need them, so a failed install only warns.
bash bench/install-tools.sh || echo "warning: benchmark tools not installed (bench/install-tools.sh)" >&2

# Programs the suite itself runs (slowhttptest): without them it cannot pass.
bash scripts/install-test-tools.sh

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
import lbproxy.http
if lbproxy.http.IMPLEMENTATION != "compiled":
    missing.append("lbproxy.http data path")
sys.exit(f"lbproxy: C extensions not built: {missing}" if missing else 0)
PY
.venv/bin/ruff check lbproxy tests bench fuzz
.venv/bin/mypy lbproxy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
# The data path's pure-Python twin is its own source run uncompiled, chosen
# per process (see lbproxy/http/__init__.py): the tests that drive traffic
# through it run once more with the twins forced.
if [ "$#" -eq 0 ]; then
    LBPROXY_NO_EXTENSIONS=1 .venv/bin/python -m pytest -q -p no:cacheprovider \
        tests/http tests/test_embedding.py tests/test_access_log.py tests/test_demo.py
fi
