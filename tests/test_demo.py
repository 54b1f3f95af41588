"""The README's first run: ``lbproxy --config configs/demo.yaml``, for real.

The demo binds fixed ports (8080 for the listener, 9101-9103 for its sample
backends); when one is busy the test fails saying which.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import get, poll_until

REPO = Path(__file__).resolve().parent.parent
DEMO_PORTS = (8080, 9101, 9102, 9103)


def busy_ports() -> list[int]:
    busy = []
    for port in DEMO_PORTS:
        with socket.socket() as s:
            # Like lbproxy: connections lingering in TIME_WAIT do not count as busy.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_demo_round_robins_over_the_sample_backends(tmp_path: Path) -> None:
    busy = busy_ports()
    if busy:
        pytest.fail(
            f"the demo needs 127.0.0.1 ports {DEMO_PORTS}, but {busy} are in use; "
            "stop whatever holds them and rerun"
        )
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lbproxy",
            "--config",
            "configs/demo.yaml",
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=REPO,
        )
    try:

        def answering() -> bool:
            if proc.returncode is not None:
                raise AssertionError(f"lbproxy exited early:\n{err_path.read_text()}")
            return accepts(8080)

        await poll_until(answering, 15.0, "the demo to accept connections on 127.0.0.1:8080")
        names = []
        for i in range(1, 7):
            status, _, body = await get(8080, f"/{i}", host="127.0.0.1:8080")
            assert status == 200, body
            m = re.fullmatch(rb"Hello from (sample-\d): GET /(\d)\n", body)
            assert m, body
            assert m[2] == str(i).encode()
            names.append(m[1].decode())
        assert names == ["sample-1", "sample-2", "sample-3"] * 2

        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 15)
        stderr = err_path.read_text()
        assert code == 0, stderr
        assert "listening on http://127.0.0.1:8080" in stderr
        assert "127.0.0.1:9101" in stderr  # where the sample backends are
        # The access log (combined format, stdout) has one line per request.
        logged = [line for line in out_path.read_text().splitlines() if '" 200 ' in line]
        for i in range(1, 7):
            assert sum(f'"GET /{i} HTTP/1.1" 200 ' in line for line in logged) == 1, logged
    finally:
        if proc.returncode is None:
            proc.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 15)
