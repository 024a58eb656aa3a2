"""HTTP benchmark: latency of ``GET /recommend`` over a real socket against ``recsvc serve``.

    .venv/bin/python -m tests.benchmarks.http_latency [--requests 4000] [--workers 1]
        [--threads 8 [1 ...]]

Trains a model on a 100,000-event synthetic window (20,000 users, 5,000 items, default ALS
parameters), publishes it, starts the real server (`recsvc serve`) as a child process, and sends
requests for random known and unknown users from keep-alive clients, at 1 and 4 concurrent
connections. Client time includes the Python HTTP client, so it is an upper bound. Several
``--threads`` values (I/O threads per worker) are measured one after the other in one run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time

import numpy as np

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.data.events import Event
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog
from recommendation_service.training.params import ALSParams

from ..conftest import free_port, train_window
from ..processes import serve, stop, wait_healthy


def run_clients(port: int, users: list[str], concurrency: int, total: int) -> dict:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    per_client = total // concurrency

    def client(seed: int) -> None:
        nonlocal errors
        rng = np.random.default_rng(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        bad = 0
        for _ in range(per_client):
            user = users[int(rng.integers(len(users)))]
            start = time.perf_counter()
            conn.request("GET", f"/recommend?user={user}&n=10")
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            bad += response.status != 200
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=client, args=(s,)) for s in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "requests_per_second": round(len(latencies) / wall),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, nargs="+", default=[8])
    args = parser.parse_args()

    tastes = TasteModel(make_catalog(5_000, 16, 1), 20_000, seed=1)
    events = [Event(u, i, 1.0, float(k)) for k, (u, i) in enumerate(tastes.events(100_000))]
    model = train_window(events, params=ALSParams())
    users = model.snapshot.user_ids + [
        f"unknown-{k}" for k in range(len(model.snapshot.user_ids) // 10)
    ]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ModelStore(tmp).publish(model)
        for threads in args.threads:
            port = free_port()
            server = serve(tmp, port, "--threads", str(threads), workers=args.workers)
            try:
                wait_healthy(f"http://127.0.0.1:{port}")
                run_clients(port, users, 1, 200)  # warm-up
                for c in (1, 4):
                    result = run_clients(port, users, c, args.requests)
                    results.append({"threads": threads, **result})
            finally:
                stop(server)
    print(
        json.dumps(
            {
                "model": {
                    "users": model.snapshot.n_users,
                    "items": model.snapshot.n_items,
                    "factors": ALSParams().factors,
                },
                "workers": args.workers,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
