"""Takeover across hosts' directories under the Kafka lease: seconds from the active builder's
SIGKILL or SIGSTOP until the standby holds the store, and until its first version is CURRENT.

    .venv/bin/python -m tests.benchmarks.kafka_takeover [--trials 5]

For each fault and trial: a stream at 1,000 events/s, two ``recsvc builder
--model-store s3://...`` on separate model directories (SeaweedFS, the lease topic on the
broker). Once the active one has published twice it is SIGKILLed or SIGSTOPped; the store's
``CURRENT`` is polled every 20 ms for the standby's claim (its id on the second line) and for
the first version it names. A stopped builder is woken afterwards and must step down. Prints
every trial, then the median and max per broker and fault.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from recommendation_service.artifacts.object_store import ObjectStore, StoreLocation
from recommendation_service.artifacts.store_lease import parse_current
from recommendation_service.sandbox.brokers import ensure_topic
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog

from ..integration.test_builder_integration import wait_until
from ..processes import SeaweedFS, broker_of, stop
from ..processes import builder as start_builder
from .freshness import Stream

TASTES = TasteModel(make_catalog(3000, 16, 3), 500, seed=3)


def _current(shared: ObjectStore) -> tuple[str | None, str | None]:
    """(version, builder id) of the store's CURRENT."""
    body = shared.get("CURRENT") or b""
    name, _ = parse_current(body)
    lines = body.decode(errors="replace").splitlines()
    who = lines[1].split(" builder ", 1)[1] if len(lines) > 1 and " builder " in lines[1] else None
    return name, who


def trial(broker, seaweed: SeaweedFS, tmp: Path, fault: str) -> dict:
    topic = f"takeover-{uuid.uuid4().hex[:8]}"
    ensure_topic(broker.bootstrap_servers, topic)
    location = StoreLocation.parse(f"s3://{seaweed.bucket}/{topic}")
    shared = ObjectStore(location)
    args = ["--group-id", f"g-{topic}", "--window", "20000", "--retrain-every", "2000",
            "--model-store", str(location)]  # fmt: skip
    stream = Stream(broker.bootstrap_servers, topic, 1000.0, TASTES)
    sender = threading.Thread(target=stream.run)
    builders = [
        start_builder(broker.bootstrap_servers, topic, tmp / f"{topic}-{n}", *args,
                      env=seaweed.env, log_path=tmp / f"{topic}-{n}.log")
        for n in "ab"
    ]  # fmt: skip
    try:
        sender.start()
        wait_until(lambda: (_current(shared)[0] or "v0") >= "v00000002", 90,
                   what="two versions from the active builder")  # fmt: skip
        old_id = _current(shared)[1]
        old = next(p for p in builders if old_id.split(":")[1] == str(p.pid))
        old.send_signal(signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
        faulted = time.monotonic()
        last = _current(shared)[0]
        wait_until(lambda: _current(shared)[1] not in (None, old_id), 60, interval=0.02,
                   what="the standby's claim")  # fmt: skip
        claimed = time.monotonic() - faulted
        wait_until(lambda: (_current(shared)[0] or "") > last, 60, interval=0.02,
                   what="the standby's first version")  # fmt: skip
        published = time.monotonic() - faulted
        stepped_down = None
        if fault == "stop":
            old.send_signal(signal.SIGCONT)
            log = tmp / f"{topic}-{'ab'[builders.index(old)]}.log"
            wait_until(lambda: "steps down" in log.read_text(errors="replace"), 30,
                       what="the woken builder stepping down")  # fmt: skip
            stepped_down = True
        return {"claimed": round(claimed, 2), "published": round(published, 2),
                "stepped_down": stepped_down}  # fmt: skip
    finally:
        stream.done.set()
        sender.join(15)
        for proc in builders:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    results = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        broker_of(Path(tmp) / "b") as broker,
        SeaweedFS(Path(tmp) / "s3") as seaweed,
    ):
        os.environ.update(seaweed.env)  # this process's own store client
        for fault in ("kill", "stop"):
            runs = []
            for _ in range(args.trials):
                runs.append(trial(broker, seaweed, Path(tmp), fault))
                print(fault, json.dumps(runs[-1]), flush=True)
            published = [r["published"] for r in runs]
            results[fault] = {
                "claimed_median": statistics.median(r["claimed"] for r in runs),
                "published_median": statistics.median(published),
                "published_max": max(published),
                "trials": runs,
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
