"""Standby takeover: seconds from the active builder's SIGKILL to the standby's first publish.

    .venv/bin/python -m tests.benchmarks.takeover [--trials 5]

For each trial: a stream at 1,000 events/s, an active ``recsvc builder`` and a
standby on the same model directory; once the active one has published and consumed a few
thousand events it is SIGKILLed, and the time until a version written by the standby appears is
measured. Prints every trial and the median.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.sandbox.brokers import ensure_topic
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog

from ..integration.test_builder_integration import wait_until
from ..integration.test_standby_builder import manifests
from ..processes import broker_of, stop
from ..processes import builder as start_builder
from .freshness import Stream

TASTES = TasteModel(make_catalog(3000, 16, 3), 500, seed=3)


def trial(broker, tmp: Path) -> float:
    topic = f"takeover-{uuid.uuid4().hex[:8]}"
    ensure_topic(broker.bootstrap_servers, topic)
    model_dir = tmp / topic
    store, control = ModelStore(model_dir), ControlFiles(ModelStore(model_dir))
    args = ["--group-id", f"g-{topic}", "--window", "20000", "--retrain-every", "2000"]
    stream = Stream(broker.bootstrap_servers, topic, 1000.0, TASTES)
    sender = threading.Thread(target=stream.run)
    first = start_builder(broker.bootstrap_servers, topic, model_dir, *args)
    second = None
    try:
        wait_until(
            lambda: control.read_status() is not None, 30, what="the active builder's status"
        )
        first_id = control.read_status()["builder_id"]
        second = start_builder(broker.bootstrap_servers, topic, model_dir, *args)
        sender.start()
        wait_until(lambda: len(control.standbys(15)) == 1, 30, what="the standby")
        second_id = control.standbys(15)[0]["builder_id"]
        wait_until(
            lambda: (
                (control.read_status() or {}).get("events_consumed", 0) > 5000 and store.versions()
            ),
            60,
            what="the active builder publishing",
        )
        assert {m["builder_id"] for m in manifests(store).values()} == {first_id}
        first.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        first.wait(10)
        wait_until(
            lambda: any(m["builder_id"] == second_id for m in manifests(store).values()),
            60,
            interval=0.02,
            what="the standby publishing",
        )
        return round(time.monotonic() - killed, 2)
    finally:
        stream.done.set()
        if sender.is_alive():
            sender.join(15)
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, broker_of(Path(tmp) / "b") as broker:
        seconds = [trial(broker, Path(tmp)) for _ in range(args.trials)]
    results = {"takeover_seconds": seconds, "median": statistics.median(seconds)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
