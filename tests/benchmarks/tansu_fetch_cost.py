"""Minimal reproduction: a Tansu 0.6.0 fetch costs more the more batches the partition holds.

    .venv/bin/python -m tests.benchmarks.tansu_fetch_cost [--up-to 80000] [--broker both]

Fills one partition with single-message batches (``batch.num.messages=1``) and, at each step,
times fetching the newest message with a fresh assignment (median of 5). On Apache Kafka the
time stays flat; on Tansu 0.6.0 (``memory://``) it grows with the number of stored batches,
which is why a producer that sends one message per request stalls the embedded broker within
minutes (see ``stream_endurance``). Batches of many messages postpone it proportionally.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from recommendation_service.sandbox.brokers import ensure_topic

from ..processes import add_broker_argument, broker_of, engines_of


def fetch_seconds(bootstrap: str, topic: str, offset: int) -> float:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "probe", "fetch.wait.max.ms": 10}
    )
    try:
        start = time.perf_counter()
        consumer.assign([TopicPartition(topic, 0, offset)])
        while True:
            msgs = consumer.consume(num_messages=1, timeout=30)
            if msgs and msgs[0].error() is None:
                return time.perf_counter() - start
            if time.perf_counter() - start > 60:
                return float("inf")
    finally:
        consumer.close()


def run(engine: str, steps: list[int]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, broker_of(engine, Path(tmp) / "b") as broker:
        topic = f"batches-{uuid.uuid4().hex[:8]}"
        ensure_topic(broker.bootstrap_servers, topic)
        producer = Producer(
            {"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 0,
             "batch.num.messages": 1, "max.in.flight": 1}
        )  # fmt: skip
        sent = 0
        for target in steps:
            while sent < target:
                producer.produce(topic, f"u{sent}:i{sent}".encode())
                sent += 1
                if sent % 1000 == 0:
                    producer.flush(60)
            producer.flush(60)
            times = [fetch_seconds(broker.bootstrap_servers, topic, sent - 1) for _ in range(5)]
            rows.append({"batches": sent, "fetch_ms": round(statistics.median(times) * 1000, 1)})
            print(engine, json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--up-to", type=int, default=80_000)
    add_broker_argument(parser)
    args = parser.parse_args()
    steps = [1000, 10_000, 20_000, 40_000, 60_000, 80_000, 120_000]
    steps = [s for s in steps if s <= args.up_to]
    results = {engine: run(engine, steps) for engine in engines_of(args.broker)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
