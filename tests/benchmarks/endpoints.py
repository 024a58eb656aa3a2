"""Per-endpoint latency over a real socket, on the demo's data.

    .venv/bin/python -m tests.benchmarks.endpoints [--requests 300]

Builds the demo's catalog and users (the same generator and seed as ``recsvc demo``), trains a
model on 20,000 of their events through the builder's training path, starts Apache Kafka
and ``recsvc serve`` with ingest and an admin token, then times every endpoint sequentially on
one keep-alive connection and prints p50/p99 per endpoint.
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.builder.refits.training_worker import TrainingWorker
from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow
from recommendation_service.sandbox.brokers import ensure_topic
from recommendation_service.sandbox.demo_runner import DEMO_CATEGORIES, DEMO_SEED
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.params import ALSParams

from ..conftest import free_port
from ..processes import broker_of, serve, stop, wait_healthy

TOKEN = "endpoint-benchmark-admin-token"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    tastes = TasteModel(make_catalog(400, DEMO_CATEGORIES, DEMO_SEED), 200, seed=DEMO_SEED)
    window = SlidingWindow(20_000)
    for k, (user, item) in enumerate(tastes.events(20_000)):
        window.add(Event(user, item, 1.0, float(k * 60)))  # a minute apart: sessions form
    with tempfile.TemporaryDirectory() as tmp, broker_of(Path(tmp) / "b") as broker:
        ensure_topic(broker.bootstrap_servers, "interactions")
        store = ModelStore(Path(tmp))
        TrainingWorker(
            ALSTrainer(ALSParams()), store, lambda: (window.snapshot(), {})
        )._train_once()
        port = free_port()
        server = serve(
            tmp, port, "--bootstrap-servers", broker.bootstrap_servers, "--admin-token", TOKEN
        )
        try:
            wait_healthy(f"http://127.0.0.1:{port}")
            rows = measure(port, tastes, args.requests)
        finally:
            stop(server)
    print(f"{'endpoint':<44}{'p50 ms':>9}{'p99 ms':>9}")
    for name, p50, p99 in rows:
        print(f"{name:<44}{p50:>9.2f}{p99:>9.2f}")


def measure(port: int, tastes: TasteModel, requests: int) -> list[tuple[str, float, float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    rng = np.random.default_rng(0)
    items = [c.item for c in tastes.catalog]

    def user():
        return tastes.users[int(rng.integers(len(tastes.users)))]

    def item():
        return items[int(rng.integers(len(items)))]

    auth = {"Authorization": f"Bearer {TOKEN}"}
    calls = {
        "GET /recommend": lambda: ("GET", f"/recommend?user={user()}&n=10", None, {}),
        "POST /recommend (20 candidates)": lambda: (
            "POST",
            "/recommend",
            {"user_id": user(), "candidate_items": [item() for _ in range(20)], "top_k": 10},
            {},
        ),
        "POST /predict (10 items)": lambda: (
            "POST",
            "/predict",
            {"user_id": user(), "item_ids": [item() for _ in range(10)]},
            {},
        ),
        "GET /similar": lambda: ("GET", f"/similar?item={item()}&n=10", None, {}),
        "GET /items/<id>/associations": lambda: (
            "GET",
            f"/items/{item()}/associations?n=10",
            None,
            {},
        ),
        "GET /popular": lambda: ("GET", "/popular?n=10", None, {}),
        "POST /online/data/add (10 samples, acks=all)": lambda: (
            "POST",
            "/online/data/add",
            {
                "samples": [
                    {"user_id": user(), "item_id": item(), "action_type": "click"}
                    for _ in range(10)
                ]
            },
            {},
        ),
        "GET /model/info": lambda: ("GET", "/model/info", None, {}),
        "GET /model/versions": lambda: ("GET", "/model/versions", None, {}),
        "GET /health": lambda: ("GET", "/health", None, {}),
        "POST /online/training/start": lambda: ("POST", "/online/training/start", None, auth),
        "GET /metrics": lambda: ("GET", "/metrics", None, {}),
    }
    rows = []
    for name, make in calls.items():
        times = []
        for k in range(requests + 20):
            method, path, body, headers = make()
            payload = None if body is None else json.dumps(body)
            if payload is not None:
                headers = {**headers, "Content-Type": "application/json"}
            start = time.perf_counter()
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status >= 400:
                raise SystemExit(f"{name}: HTTP {response.status}")
            if k >= 20:  # warm-up requests are not counted
                times.append(time.perf_counter() - start)
        ms = np.array(times) * 1000
        rows.append((name, float(np.percentile(ms, 50)), float(np.percentile(ms, 99))))
    return rows


if __name__ == "__main__":
    main()
