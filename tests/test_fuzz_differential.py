"""The differential fuzzer in fuzz/: what the proxy forwards means what the client sent.

* Every seed in fuzz/corpus is replayed through the oracle (fuzz/oracle.py)
  against a real proxy: in this process (the implementation this test session
  runs, normally the compiled modules), and in a subprocess with
  ``LBPROXY_NO_EXTENSIONS=1`` (the pure-Python twins).
* A short atheris run on the twins (``fuzz/differential.py -runs=...``, from
  fuzz/corpus) must end with exit status 0 and no crash file.

A seed named ``finding-*`` is an input the fuzzer found the proxy to get
wrong: its replay fails until the proxy is fixed, and so does the atheris run,
which starts from those seeds (see fuzz/README.md).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
FUZZ = REPO / "fuzz"
CORPUS = FUZZ / "corpus"
SEEDS = sorted(p for p in CORPUS.iterdir() if p.is_file())
ATHERIS_RUNS = 10000  # about 8 s at the pure twins' 1000+ inputs/s
ATHERIS_SECONDS = 15


@pytest.fixture(scope="module")
def differential() -> Iterator[ModuleType]:
    sys.path.insert(0, str(FUZZ))
    try:
        yield importlib.import_module("differential")
    finally:
        sys.path.remove(str(FUZZ))


@pytest.fixture(scope="module")
def harness(differential: ModuleType) -> Iterator[object]:
    with differential.Harness() as h:
        yield h


@pytest.mark.parametrize("seed", SEEDS, ids=[p.name for p in SEEDS])
def test_seed_replay_in_process(differential: ModuleType, harness: object, seed: Path) -> None:
    data = seed.read_bytes()
    outcome, ref, problems = differential.check(harness, data)
    assert not problems, differential.report(data, outcome, ref, problems)


def _pure_env() -> dict[str, str]:
    env = {**os.environ, "LBPROXY_NO_EXTENSIONS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("LBFUZZ_SKIP_KNOWN", None)  # known findings must fail here
    return env


def test_seed_replay_pure_twins() -> None:
    proc = subprocess.run(
        [sys.executable, str(FUZZ / "differential.py"), "--replay", str(CORPUS)],
        env=_pure_env(),
        capture_output=True,
        timeout=90,
        check=False,
    )
    stderr = proc.stderr.decode(errors="replace")
    results = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    assert len(results) == len(SEEDS), stderr[-3000:]
    failed = {r["input"]: r["problems"] for r in results if not r["ok"]}
    assert not failed, json.dumps(failed, indent=1)[:6000]
    assert proc.returncode == 0, stderr[-3000:]


def test_short_atheris_run(tmp_path: Path) -> None:
    new_corpus = tmp_path / "corpus"
    new_corpus.mkdir()
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            str(FUZZ / "differential.py"),
            "-seed=1",  # the same inputs every time, as far as coverage feedback allows
            f"-runs={ATHERIS_RUNS}",
            f"-max_total_time={ATHERIS_SECONDS}",
            "-timeout=30",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/",
            str(new_corpus),  # new inputs go to the first directory: not fuzz/corpus
            str(CORPUS),
        ],
        env=_pure_env(),
        capture_output=True,
        timeout=ATHERIS_SECONDS + 60,
        check=False,
    )
    output = (proc.stdout + proc.stderr).decode(errors="replace")
    crashes = sorted(p.name for p in artifacts.iterdir())
    assert proc.returncode == 0 and not crashes, f"{crashes}\n{output[-6000:]}"
    assert "Done" in output or "INITED" in output, output[-3000:]
