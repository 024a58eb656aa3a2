"""Readiness from a cold start: once ``/health`` says ready, every worker answers.

A server started on an empty model directory, then the first version published: each server
worker loads it on its own. A worker that has no model yet while a version exists must load
it on the request that asks (or wait for the load already under way), never answer 503.

The poll interval is set far beyond the test's length, so neither worker finds the version
by polling: whatever serves it was loaded by the request that asked. (With short polls the
race is real but rare: the server forks its workers within milliseconds, so their polls run in
step until one of them is restarted.)
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest

from recommendation_service.artifacts.store import ModelStore

from ..benchmarks.synthetic_model import synthetic_model
from ..conftest import free_port
from ..processes import get, recsvc, stop

pytestmark = pytest.mark.integration


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_load_from_readiness_on_sees_no_503_while_the_second_worker_loads(tmp_path):
    # Large enough that loading it takes the second worker a noticeable while.
    model = synthetic_model(n_items=100_000, n_users=20_000, factors=64)
    root = tmp_path / "models"
    root.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    proc = recsvc(
        "serve", "--model-dir", str(root), "--port", str(port), "--workers", "2",
        "--reload-interval", "3600", log_path=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        _answering(url, deadline, log)
        time.sleep(1.0)  # both workers have booted and made their first (empty) poll
        ModelStore(root).publish(model)
        while get(f"{url}/health", timeout=30)[0] != 200:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        statuses: list[int] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + 5.0

        def client(k: int) -> None:
            i = 0
            while time.monotonic() < stop_at:
                # A new connection per request: the kernel hands each to whichever worker accepts.
                code = _status(f"{url}/recommend?user=user-{(k * 997 + i) % 20_000}&n=10")
                with lock:
                    statuses.append(code)
                i += 1

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop(proc)
    refused = [s for s in statuses if s != 200]
    assert len(statuses) > 100
    assert refused == [], f"{len(refused)} of {len(statuses)} requests refused: {set(refused)}"
    assert "Traceback" not in log.read_text()


def _answering(url: str, deadline: float, log) -> None:
    """Wait until the server listens; with no model it says 503 no_model."""
    while True:
        try:
            status, body = get(f"{url}/health", timeout=2)
            assert status == 503 and body["status"] == "no_model", body
            return
        except OSError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
