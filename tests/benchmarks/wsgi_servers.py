"""WSGI servers compared on the same app and model: speed, and what a stalled client costs.

    .venv/bin/python -m tests.benchmarks.wsgi_servers [--stream taste] [--seconds 8]

Needs ``wrk``; Granian and uWSGI rows need ``pip install granian pyuwsgi`` (they are not
dependencies of the service, and rows for servers that are not installed are skipped).

Trains the load benchmark's model (real factors, 100,000 items, HNSW index), then runs the
service's WSGI app (the Flask app behind the request gate, as ``recsvc serve`` builds it)
under each server with 2 worker processes and drives ``GET /recommend`` with wrk at 1, 4 and
32 connections. Then, with one worker per server, two hostile probes: as many clients as the
worker has threads send half a request body (or half their headers) and stop; the probe is
how long a normal ``GET /recommend`` on another connection takes meanwhile (capped at 30 s).
``recsvc serve`` bounds both by ``--client-timeout`` (5 s); a server whose worker waits for
stalled clients for as long as they keep the connection open can be taken down by a handful
of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.vectors.ann import ANNParams

from ..conftest import free_port
from ..processes import get, stop, wait_healthy
from .load import WRK_SCRIPT, make_model, publish, wrk

BIN = Path(sys.executable).parent
PROBE_CAP = 30.0

#: (server, connection threads per worker) compared; ``recsvc serve`` is gunicorn gthread.
CONFIGS = [
    ("recsvc serve (gunicorn gthread)", 1),
    ("recsvc serve (gunicorn gthread)", 8),
    ("gunicorn sync", 1),
    ("granian", 1),
    ("granian", 8),
    ("uWSGI (pyuwsgi)", 1),
    ("uWSGI (pyuwsgi)", 8),
]


def command(name: str, port: int, workers: int, threads: int) -> list[str]:
    """A server's command line; servers other than recsvc run tests/benchmarks/wsgi_entry.py."""
    app = "tests.benchmarks.wsgi_entry:app"
    if name.startswith("recsvc"):
        return [
            sys.executable,
            "-m",
            "recommendation_service",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--no-access-log",
            "--model-dir",
        ]  # fmt: skip  (start() appends the model directory)
    if name == "gunicorn sync":
        return [str(BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
                "-k", "sync", app]  # fmt: skip
    if name == "granian":
        return [str(BIN / "granian"), "--interface", "wsgi", "--workers", str(workers),
                "--blocking-threads", str(threads), "--host", "127.0.0.1", "--port", str(port),
                "--no-access-log", app]  # fmt: skip
    return [str(BIN / "uwsgi"), "--http-socket", f"127.0.0.1:{port}", "--master",
            "--processes", str(workers), "--threads", str(threads), "--module", app,
            "--disable-logging", "--http-keepalive", "--die-on-term"]  # fmt: skip


def start(command: list[str], model_dir: Path, port: int) -> subprocess.Popen:
    if command[-1] == "--model-dir":
        command = [*command, str(model_dir)]
    env = {**os.environ, "RECSVC_BENCH_MODEL_DIR": str(model_dir)}
    env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="recsvc-bench-metrics-")
    proc = subprocess.Popen(
        command,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_healthy(f"http://127.0.0.1:{port}", timeout=120)
    return proc


def probe(port: int, user: str, stalled: bytes, clients: int) -> float:
    """Seconds a GET takes while ``clients`` connections have sent ``stalled`` and stopped."""
    hostile = [socket.create_connection(("127.0.0.1", port)) for _ in range(clients)]
    try:
        for sock in hostile:
            sock.sendall(stalled)
        time.sleep(0.5)  # let the server start reading them
        t = time.monotonic()
        try:
            get(f"http://127.0.0.1:{port}/recommend?user={user}&n=10", timeout=PROBE_CAP)
        except OSError:
            return PROBE_CAP
        return time.monotonic() - t
    finally:
        for sock in hostile:
            sock.close()


HALF_BODY = (
    b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 1000\r\n\r\n{"user": '
)
HALF_HEADERS = b"GET /recommend?user=x HTTP/1.1\r\nHost: x\r\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", choices=("taste", "pareto", "synthetic"), default="taste")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--factors", type=int, default=64, help="for --stream synthetic")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--json-out", type=Path, default=Path("wsgi_servers.json"))
    args = parser.parse_args()
    args.log = None
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark needs wrk: apt-get install wrk")
    model = make_model(args)
    speed, robustness = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = ModelStore(tmp / "models")
        publish(model, store, ANNParams())
        known = model.snapshot.user_ids
        picked = np.random.default_rng(7).choice(len(known), size=min(20_000, len(known)))
        ids = [urllib.parse.quote(known[i]) for i in picked.tolist()]
        script = tmp / "load.lua"
        script.write_text(WRK_SCRIPT % {"seed": 7, "ids": ",".join(map(json.dumps, ids))})
        for name, threads in CONFIGS:
            port = free_port()
            cmd = command(name, port, 2, threads)
            if not Path(cmd[0]).exists():
                print(f"skipped {name}: {Path(cmd[0]).name} is not installed")
                continue
            server = start(cmd, store.root, port)
            try:
                wrk(port, script, 4, 2)  # warm-up
                for connections in (1, 4, 32):
                    run = wrk(port, script, connections, args.seconds)
                    speed.append({"server": name, "threads": threads, **run})
            finally:
                stop(server)
            port = free_port()
            server = start(command(name, port, 1, threads), store.root, port)
            try:
                body = probe(port, ids[0], HALF_BODY, threads)
                headers = probe(port, ids[0], HALF_HEADERS, threads)
            finally:
                stop(server)
            robustness.append(
                {
                    "server": name,
                    "threads": threads,
                    "get_during_stalled_bodies_s": round(body, 3),
                    "get_during_stalled_headers_s": round(headers, 3),
                }
            )
    print(
        f"{'server, 2 workers':<34}{'threads':>8}{'conns':>6}{'req/s':>10}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'errors':>8}"
    )
    for r in speed:
        print(
            f"{r['server']:<34}{r['threads']:>8}{r['connections']:>6}"
            f"{r['requests_per_second']:>10}{r['p50_ms']:>9}{r['p99_ms']:>9}{r['errors']:>8}"
        )
    print(
        f"\n{'server, 1 worker':<34}{'threads':>8}{'GET, stalled bodies':>21}"
        f"{'GET, stalled headers':>22}"
    )
    for r in robustness:
        print(
            f"{r['server']:<34}{r['threads']:>8}{r['get_during_stalled_bodies_s']:>20}s"
            f"{r['get_during_stalled_headers_s']:>21}s"
        )
    args.json_out.write_text(json.dumps({"speed": speed, "robustness": robustness}, indent=2))


if __name__ == "__main__":
    main()
