"""Endurance: does the builder keep up with a stream sent one message per produce request?

    .venv/bin/python -m tests.benchmarks.stream_endurance [--minutes 30] [--rate 1000]

(``--minutes 2.5``: 150,000 one-message batches through the broker ``recsvc broker`` starts.)

An app that publishes one event per HTTP request sends one message per batch, and the broker
stores every batch: a broker whose fetch cost grows with the number of stored batches stalls
(the embedded broker this project shipped before Apache Kafka did, after ~62,000 messages).
``recsvc builder`` consumes a stream at ``--rate`` events/s sent with one message per batch
(``linger.ms=0``, ``batch.num.messages=1``). Every 30 s it prints events produced and consumed,
the served version and the builder's Kafka state; at the end, how long versions kept coming.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.sandbox.brokers import ensure_topic
from recommendation_service.sandbox.producers import Pacer

from ..processes import broker_of, stop
from ..processes import builder as start_builder


class OnePerBatch:
    """Sends ``rate`` events/s, each in its own produce request."""

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 0, "batch.num.messages": 1}
        )
        self.topic, self.rate, self.sent = topic, rate, 0
        self.done = threading.Event()

    def run(self) -> None:
        pacer = Pacer(self.rate)
        while not self.done.is_set():
            try:
                self.producer.produce(self.topic, f"u{self.sent % 2000}:i{self.sent % 5000}")
            except BufferError:  # the broker stopped taking writes: wait for deliveries
                self.producer.poll(0.1)
                continue
            self.producer.poll(0)
            self.sent += 1
            pacer.wait(self.sent)
        self.producer.flush(10)


def run(minutes: float, rate: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp, broker_of(Path(tmp) / "b") as broker:
        topic = f"endure-{uuid.uuid4().hex[:8]}"
        ensure_topic(broker.bootstrap_servers, topic)
        model_dir = Path(tmp) / "models"
        control = ControlFiles(ModelStore(model_dir))
        builder = start_builder(
            broker.bootstrap_servers, topic, model_dir, "--window", "100000",
            "--retrain-every", "20000",
        )  # fmt: skip
        stream = OnePerBatch(broker.bootstrap_servers, topic, rate)
        sender = threading.Thread(target=stream.run, daemon=True)
        start = time.monotonic()
        sender.start()
        samples, last_version, last_new = [], None, 0.0
        try:
            while (elapsed := time.monotonic() - start) < minutes * 60:
                time.sleep(min(30.0, max(0.0, minutes * 60 - elapsed)))
                status = control.read_status() or {}
                version = (status.get("last_refit") or {}).get("version")
                t = round(time.monotonic() - start)
                if version != last_version:
                    last_version, last_new = version, t
                samples.append(
                    {
                        "t": t,
                        "produced": stream.sent,
                        "consumed": status.get("events_consumed"),
                        "version": version,
                        "kafka": status.get("kafka"),
                    }
                )
                print(json.dumps(samples[-1]), flush=True)
            stream.done.set()
            sender.join(30)
            deadline = time.monotonic() + 60  # what was sent last is still on its way
            while time.monotonic() < deadline:
                status = control.read_status() or {}
                if (status.get("events_consumed") or 0) >= stream.sent:
                    break
                time.sleep(1.0)
            samples.append({"t": round(time.monotonic() - start), "produced": stream.sent,
                            "consumed": status.get("events_consumed"), "version": version,
                            "kafka": status.get("kafka"), "drained": True})  # fmt: skip
            print(json.dumps(samples[-1]), flush=True)
        finally:
            stream.done.set()
            sender.join(30)
            stop(builder)
    return {
        "minutes": minutes,
        "rate": rate,
        "produced": stream.sent,
        "consumed": samples[-1]["consumed"] if samples else None,
        "last_version": last_version,
        "last_new_version_at_s": last_new,
        "kept_publishing": bool(samples) and samples[-1]["t"] - last_new <= 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    print(json.dumps(run(args.minutes, args.rate), indent=2))


if __name__ == "__main__":
    main()
