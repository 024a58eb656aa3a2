"""HTTP servers compared under the same Flask app and model: speed per endpoint, and what a
stalled client costs.

    .venv/bin/python -m tests.benchmarks.wsgi_servers [--stream taste] [--seconds 8]
        [--servers "recsvc serve" "gunicorn gthread"]

Needs ``wrk``. The gunicorn rows need ``pip install -e '.[bench]'`` (gunicorn was the server
of ``recsvc serve`` before Granian); uWSGI rows need ``pip install pyuwsgi``; rows of servers
that are not installed are skipped.

Trains the load benchmark's model (real factors, 100,000 items, an unprobed index), then runs
the service under each server with 2 worker processes and drives, with wrk at 1, 4 and 32
connections, three endpoints: ``/livez`` (no model, no files: the stack's floor), a plain
``GET /recommend`` for random known users, and a filtered one (``exclude=`` five ids).
``recsvc serve`` is Granian through the service's RSGI bridge; the other servers run the same
Flask app through WSGI (tests/benchmarks/wsgi_entry.py). Then, with one worker per server,
two hostile probes: as many clients as the worker has threads send half a request body (or
half their headers) and stop; the probe is how long a normal ``GET /recommend`` on another
connection takes meanwhile (capped at 30 s).
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
from ..processes import cpu_seconds, get, process_tree, stop, wait_healthy
from .load import WRK_DONE, make_model, publish, wrk

BIN = Path(sys.executable).parent
PROBE_CAP = 30.0
#: Clients that stall at once in the hostile probes: as many as gunicorn gthread's 8 threads.
STALLED = 8

#: (server, threads per worker) compared. ``recsvc serve`` is Granian over RSGI, its threads
#: are Rust I/O threads; gunicorn gthread with one thread was ``recsvc serve`` before.
CONFIGS = [
    ("recsvc serve (Granian RSGI)", 1),
    ("gunicorn gthread (before)", 1),
    ("gunicorn gthread (before)", 8),
    ("Granian WSGI", 1),
    ("gunicorn sync", 1),
    ("uWSGI (pyuwsgi)", 1),
]

#: Endpoints driven, by name: a path, and whether users (and excluded ids) are added.
ENDPOINTS = {
    "/livez": ("/livez", ""),
    "/recommend": ("/recommend", "user"),
    "/recommend?exclude=5": ("/recommend", "exclude"),
}

WRK_SCRIPT = (
    """
math.randomseed(%(seed)d)
ids = {%(ids)s}
items = {%(items)s}
request = function()
  if "%(kind)s" == "" then return wrk.format("GET", "%(path)s") end
  local target = "%(path)s?user=" .. ids[math.random(1, #ids)] .. "&n=10"
  if "%(kind)s" == "exclude" then
    local excluded = {}
    for k = 1, 5 do excluded[k] = items[math.random(1, #items)] end
    target = target .. "&exclude=" .. table.concat(excluded, ",")
  end
  return wrk.format("GET", target)
end
"""
    + WRK_DONE
)


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
    if name.startswith("gunicorn gthread"):
        return [str(BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
                "-k", "gthread", "--threads", str(threads), "--keep-alive", "5", app]  # fmt: skip
    if name == "gunicorn sync":
        return [str(BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
                "-k", "sync", app]  # fmt: skip
    if name == "Granian WSGI":
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
    parser.add_argument(
        "--servers", nargs="+", default=None, help="only the servers whose names start so"
    )
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
        items = [urllib.parse.quote(item) for item in model.snapshot.item_ids[:5000]]
        scripts = {}
        for endpoint, (path, kind) in ENDPOINTS.items():
            scripts[endpoint] = tmp / f"load{len(scripts)}.lua"
            scripts[endpoint].write_text(
                WRK_SCRIPT
                % {
                    "seed": 7,
                    "ids": ",".join(map(json.dumps, ids if kind else [])),
                    "items": ",".join(map(json.dumps, items)),
                    "path": path,
                    "kind": kind,
                }
            )
        for name, threads in CONFIGS:
            if args.servers and not any(name.startswith(p) for p in args.servers):
                continue
            port = free_port()
            cmd = command(name, port, 2, threads)
            if not Path(cmd[0]).exists():
                print(f"skipped {name}: {Path(cmd[0]).name} is not installed")
                continue
            server = start(cmd, store.root, port)
            try:
                wrk(port, scripts["/recommend"], 4, 2)  # warm-up
                for endpoint, script in scripts.items():
                    for connections in (1, 4, 32):
                        pids = process_tree(server.pid)
                        cpu = sum(map(cpu_seconds, pids))
                        run = wrk(port, script, connections, args.seconds)
                        cpu = sum(map(cpu_seconds, pids)) - cpu
                        run["server_cpu_ms_per_request"] = round(
                            1000 * cpu / max(1, run["requests"]), 3
                        )
                        speed.append(
                            {"server": name, "threads": threads, "endpoint": endpoint, **run}
                        )
            finally:
                stop(server)
            port = free_port()
            server = start(command(name, port, 1, threads), store.root, port)
            try:
                body = probe(port, ids[0], HALF_BODY, STALLED)
                headers = probe(port, ids[0], HALF_HEADERS, STALLED)
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
        f"{'server, 2 workers':<30}{'thr':>4}{'endpoint':>22}{'conns':>6}{'req/s':>9}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'cpu ms/req':>11}{'errors':>7}"
    )
    for r in speed:
        print(
            f"{r['server']:<30}{r['threads']:>4}{r['endpoint']:>22}{r['connections']:>6}"
            f"{r['requests_per_second']:>9}{r['p50_ms']:>8}{r['p99_ms']:>8}"
            f"{r['server_cpu_ms_per_request']:>11}{r['errors']:>7}"
        )
    base = {
        (r["endpoint"], r["connections"]): r["requests_per_second"]
        for r in speed
        if r["server"] == CONFIGS[1][0] and r["threads"] == CONFIGS[1][1]
    }
    if base:
        print(f"\nreq/s of each server over {CONFIGS[1][0]} with {CONFIGS[1][1]} thread:")
        for r in speed:
            before = base.get((r["endpoint"], r["connections"]))
            if before and r["connections"] == 32:
                print(
                    f"{r['server']:<30}{r['threads']:>4}{r['endpoint']:>22}"
                    f"{r['requests_per_second'] / before:>8.2f}x"
                )
    print(
        f"\n{'server, 1 worker, ' + str(STALLED) + ' stalled clients':<40}{'threads':>8}"
        f"{'GET, stalled bodies':>21}{'GET, stalled headers':>22}"
    )
    for r in robustness:
        print(
            f"{r['server']:<40}{r['threads']:>8}{r['get_during_stalled_bodies_s']:>20}s"
            f"{r['get_during_stalled_headers_s']:>21}s"
        )
    args.json_out.write_text(json.dumps({"speed": speed, "robustness": robustness}, indent=2))


if __name__ == "__main__":
    main()
