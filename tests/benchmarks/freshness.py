"""Freshness benchmark: produce an event, time until GET /recommend for that user reflects it.

    .venv/bin/python -m tests.benchmarks.freshness [--rate 1000] [--probes 200] [--workers 2]

Runs the real pipeline -- Apache Kafka,
``recsvc builder`` and ``recsvc serve --workers 2`` as child processes -- while a producer
sends a sustained stream of JSON events. Every probe is
one more event of that stream, for an existing user or for a user never seen before, carrying a
unique ``ts``; the probe then asks ``/recommend`` (a new connection each time, so any worker may
answer) until the response's ``as_of`` reaches that ``ts``. Reports p50/p95/p99 of the delay,
how often a first-time user got ``source: "model"``, and the rate actually sustained.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Producer

from recommendation_service.sandbox.brokers import ensure_topic
from recommendation_service.sandbox.producers import Pacer
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog

from ..processes import (
    broker_of,
    free_port,
    get,
    serve,
    stop,
    wait_healthy,
)
from ..processes import builder as start_builder


def fetch(url: str) -> dict:
    return get(url)[1]


class Stream:
    """Sends the background stream at ``rate`` events/s and injects probe events on request."""

    def __init__(self, bootstrap: str, topic: str, rate: float, tastes: TasteModel) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
        self.topic, self.rate, self.tastes = topic, rate, tastes
        self.sent = 0
        self.probes: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()
        self.done = threading.Event()

    def probe(self, user: str, item: str, ts: float) -> None:
        with self.lock:
            self.probes.append((user, item, ts))

    def _send(self, user: str, item: str, ts: float) -> None:
        value = json.dumps({"user": user, "item": item, "action": "click", "ts": ts})
        self.producer.produce(self.topic, value.encode(), user.encode())
        self.sent += 1

    def run(self) -> None:
        pacer = Pacer(self.rate)
        batch: list[tuple[str, str]] = []
        while not self.done.is_set():
            with self.lock:
                probes, self.probes = self.probes, []
            for user, item, ts in probes:
                self._send(user, item, ts)
            self.producer.poll(0)
            if not batch:
                batch = self.tastes.events(1000)
            user, item = batch.pop()
            self._send(user, item, time.time())
            pacer.wait(self.sent)
        self.producer.flush(10)
        self.seconds = time.monotonic() - pacer.start


def measure(url: str, stream: Stream, user: str, item: str) -> tuple[float, str]:
    ts = time.time()
    sent = time.perf_counter()
    stream.probe(user, item, ts)
    deadline = sent + 10
    while time.perf_counter() < deadline:
        body = fetch(f"{url}/recommend?user={user}&n=10")
        if body.get("as_of") is not None and body["as_of"] >= ts - 1e-6:
            return time.perf_counter() - sent, body["source"]
        time.sleep(0.005)
    return float("inf"), "timeout"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(run(args), indent=2))


def run(args) -> dict:
    """Freshness figures through a fresh broker."""
    tastes = TasteModel(make_catalog(2000, 16, 3), 5000, seed=3)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp, broker_of(Path(tmp) / "b") as broker:
        model_dir = str(Path(tmp) / "models")
        topic = f"fresh-{uuid.uuid4().hex[:8]}"
        ensure_topic(broker.bootstrap_servers, topic)
        builder = start_builder(
            broker.bootstrap_servers,
            topic,
            model_dir,
            "--retrain-every",
            "5000",
            "--group-id",
            f"g-{topic}",
        )
        server = serve(model_dir, port, workers=args.workers)
        stream = Stream(broker.bootstrap_servers, topic, args.rate, tastes)
        sender = threading.Thread(target=stream.run, daemon=True)
        sender.start()
        try:
            wait_healthy(url, timeout=120)  # the first model comes after 5000 events
            time.sleep(2)
            rng = np.random.default_rng(0)
            # Probe items the served model knows (a brand-new item waits for the next refit).
            known_items = fetch(f"{url}/recommend?user=probe-nobody&n=200")["items"]
            known, new, new_model = [], [], 0
            for k in range(args.probes):
                item = known_items[int(rng.integers(len(known_items)))]
                if k % 2:
                    user = tastes.users[int(rng.integers(len(tastes.users)))]
                    known.append(measure(url, stream, user, item)[0])
                else:
                    delay, source = measure(url, stream, f"newcomer-{uuid.uuid4().hex[:8]}", item)
                    new.append(delay)
                    new_model += source == "model"
                time.sleep(0.05)
        finally:
            stream.done.set()
            sender.join(15)
            for proc in (builder, server):
                stop(proc)

    def summary(delays):
        ms = np.array(delays) * 1000
        reflected = ms[np.isfinite(ms)]
        ms = np.where(np.isfinite(ms), ms, 10_000.0)  # a timeout counts as 10 s
        return {
            "probes": len(ms),
            "reflected_within_10s": len(reflected),
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(float(ms.max()), 1),
        }

    return {
        "target_rate": args.rate,
        "sustained_rate": round(stream.sent / stream.seconds, 1),
        "server_workers": args.workers,
        "all_probes": summary(known + new),
        "known_users": summary(known),
        "first_time_users": summary(new),
        "first_time_users_served_by_model": f"{new_model}/{len(new)}",
    }


if __name__ == "__main__":
    main()
