"""``recsvc demo``, the README's first command: it starts, serves what it learns, and stops."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import free_port
from ..processes import get, process_tree, recsvc, stop, wait_healthy
from .test_builder_integration import wait_until

pytestmark = pytest.mark.integration


def test_demo_learns_and_serves_then_stops_cleanly():
    http = free_port()
    url = f"http://127.0.0.1:{http}"
    demo = recsvc(
        "demo", "--port", str(free_port()), "--http-port", str(http),
        "--metrics-port", "0", "--rate", "500", "--retrain-every", "1000",
    )  # fmt: skip
    try:
        wait_healthy(url, timeout=120)
        wait_until(
            lambda: get(f"{url}/health")[1]["model_version"] >= 2, timeout=60, what="a refit"
        )
        status, body = get(f"{url}/recommend?user=user-00001&n=5")
        assert status == 200 and len(body["items"]) == 5
        health = get(f"{url}/health")[1]
        assert health["status"] == "ok" and health["builder"]["state"] == "ok"
        # The admin token never appears on a command line, where `ps` shows it to all users.
        for pid in process_tree(demo.pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert b"--admin-token" not in cmdline, cmdline
    finally:
        out = stop(demo, timeout=90)
    assert demo.returncode == 0, out
    assert "demo stopped" in out
    assert " ERROR " not in out, out
    token = next(line for line in out.splitlines() if line.startswith("admin token"))
    assert not token.rsplit(" ", 1)[1].startswith("-")


def test_demo_names_the_option_that_moves_a_taken_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "recommendation_service", "demo", "--metrics-port", str(port),
             "--http-port", str(free_port()), "--port", str(free_port())],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode != 0
    assert f"builder metrics port {port} (move it with --metrics-port" in done.stderr
    assert "Traceback" not in done.stderr
