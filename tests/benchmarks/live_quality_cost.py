"""What live-quality scoring costs the builder at a steady 1,000 events/s.

    .venv/bin/python -m tests.benchmarks.live_quality_cost [--rate 1000] [--seconds 60]

Runs ``recsvc builder`` (defaults, window 100,000, refit every 10,000) as a child process on a
paced stream of demo-style events (20,000 users with tastes over 5,000 items), once with
``--live-quality-budget 0`` and once with the default, and reports the builder's CPU seconds
per 1,000 events over the steady part of each run (after the first model), side by side, with
the live figures the builder reported.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.sandbox.brokers import ensure_topic
from recommendation_service.sandbox.producers import Pacer
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog

from ..processes import broker_of, cpu_seconds, stop
from ..processes import builder as start_builder


def run(budget: str, rate: float, seconds: float, pairs) -> dict:
    with tempfile.TemporaryDirectory() as tmp, broker_of(Path(tmp) / "b") as broker:
        topic = f"lq-{uuid.uuid4().hex[:8]}"
        ensure_topic(broker.bootstrap_servers, topic)
        model_dir = Path(tmp) / "models"
        builder = start_builder(
            broker.bootstrap_servers,
            topic,
            model_dir,
            "--live-quality-budget",
            budget,
            "--group-id",
            f"g-{topic}",
        )
        control = ControlFiles(ModelStore(model_dir))
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 100})
        try:
            pacer, sent, measured_from = Pacer(rate), 0, None
            end = None
            while end is None or time.monotonic() < end:
                pacer.wait(sent)
                user, item = pairs[sent % len(pairs)]
                producer.produce(topic, f"{user}:{item}".encode())
                producer.poll(0)
                sent += 1
                # Steady state starts once the first model is out: scoring has one to use.
                if (
                    measured_from is None
                    and sent % 500 == 0
                    and (control.read_status() or {}).get("last_refit")
                ):
                    measured_from = (sent, cpu_seconds(builder.pid))
                    end = time.monotonic() + seconds
            producer.flush(30)
            time.sleep(1)
            used = cpu_seconds(builder.pid) - measured_from[1]
            status = control.read_status() or {}
        finally:
            stop(builder)
    events = sent - measured_from[0]
    return {
        "live_quality_budget": float(budget),
        "events_measured": events,
        "builder_cpu_seconds_per_1000_events": round(1000 * used / events, 3),
        "live_quality": status.get("live_quality"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    pairs = TasteModel(make_catalog(5000, 16, 1), 20_000, seed=1).events(200_000)
    runs = [run(b, args.rate, args.seconds, pairs) for b in ("0", "0.02")]
    off, on = (r["builder_cpu_seconds_per_1000_events"] for r in runs)
    print(json.dumps({"runs": runs, "extra_cpu_share": round(on / off - 1, 3)}, indent=2))


if __name__ == "__main__":
    main()
