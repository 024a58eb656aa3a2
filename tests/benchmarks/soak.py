"""Soak test: the whole system under steady load for a long while, watching for leaks.

    .venv/bin/python -m tests.benchmarks.soak [--minutes 10] [--rate 1000]

Apache Kafka, ``recsvc builder``
and ``recsvc serve --workers 2`` as child processes; a
producer sends ``--rate`` events/s and a client sends ``--requests-per-second`` GET /recommend
for random users. Every 30 s it samples RSS, open file descriptors and threads of the builder
and the server processes, and the served model version. Prints start and end figures and
fails (exit 1) on error responses, versions that stop advancing (no new one for two minutes),
or file descriptors and threads that keep growing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from recommendation_service.sandbox.brokers import ensure_topic
from recommendation_service.sandbox.producers import Pacer
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog

from ..processes import (
    broker_of,
    free_port,
    get,
    process_tree,
    serve,
    stop,
    wait_healthy,
)
from ..processes import builder as start_builder
from .freshness import Stream


def resources(pid: int) -> dict:
    rss = fds = threads = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
            rss += int(
                next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
            )
            threads += int(
                next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:"))
            )
            fds += len(list(Path(f"/proc/{p}/fd").iterdir()))
        except (OSError, StopIteration):
            continue
    return {"rss_mb": round(rss / 1024, 1), "fds": fds, "threads": threads}


class Client:
    """Sends GET /recommend at a fixed rate and counts answers by status."""

    def __init__(self, port: int, users: list[str], rate: float) -> None:
        self.port, self.users, self.rate = port, users, rate
        self.statuses: dict[int, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        rng = np.random.default_rng(1)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        pacer, sent = Pacer(self.rate), 0
        while not self.done.is_set():
            user = self.users[int(rng.integers(len(self.users)))]
            try:
                conn.request("GET", f"/recommend?user={user}&n=10")
                response = conn.getresponse()
                response.read()
                status = response.status
            except OSError:
                status = 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            sent += 1
            pacer.wait(sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--requests-per-second", type=float, default=200.0)
    args = parser.parse_args()
    tastes = TasteModel(make_catalog(2000, 16, 3), 5000, seed=3)
    http_port = free_port()
    samples = []
    with tempfile.TemporaryDirectory() as root, broker_of(Path(root) / "b") as broker:
        tmp = str(Path(root) / "models")
        topic = f"soak-{uuid.uuid4().hex[:8]}"
        ensure_topic(broker.bootstrap_servers, topic)
        builder = start_builder(
            broker.bootstrap_servers, topic, tmp, "--window", "100000", "--retrain-every", "20000"
        )
        server = serve(tmp, http_port, workers=2)
        stream = Stream(broker.bootstrap_servers, topic, args.rate, tastes)
        client = Client(http_port, tastes.users, args.requests_per_second)
        threads = [
            threading.Thread(target=stream.run, daemon=True),
            threading.Thread(target=client.run, daemon=True),
        ]
        try:
            threads[0].start()
            wait_healthy(f"http://127.0.0.1:{http_port}", timeout=120)
            threads[1].start()
            end = time.monotonic() + args.minutes * 60
            while True:
                version = get(f"http://127.0.0.1:{http_port}/health")[1]["model_version"]
                samples.append(
                    {
                        "t": round(args.minutes * 60 - (end - time.monotonic())),
                        "version": version,
                        "builder": resources(builder.pid),
                        "server": resources(server.pid),
                    }
                )
                print(json.dumps(samples[-1]), flush=True)
                if time.monotonic() >= end:
                    break
                time.sleep(min(30.0, max(0.0, end - time.monotonic())))
        finally:
            stream.done.set()
            client.done.set()
            for t in threads:
                t.join(15)
            for proc in (builder, server):
                stop(proc)
    first, last = samples[1] if len(samples) > 2 else samples[0], samples[-1]
    errors = sum(n for status, n in client.statuses.items() if status != 200)
    gaps, last_new = [], samples[0]
    for sample in samples[1:]:
        if sample["version"] != last_new["version"]:
            gaps.append(sample["t"] - last_new["t"])
            last_new = sample
    gaps.append(samples[-1]["t"] - last_new["t"])
    report = {
        "minutes": args.minutes,
        "longest_time_without_a_new_version_s": max(gaps),
        "events_sent": stream.sent,
        "events_per_second": round(stream.sent / stream.seconds, 1),
        "requests": sum(client.statuses.values()),
        "responses_by_status": client.statuses,
        "versions": [first["version"], last["version"]],
        "builder_start_end": [first["builder"], last["builder"]],
        "server_start_end": [first["server"], last["server"]],
    }
    print(json.dumps(report, indent=2))
    problems = []
    if errors:
        problems.append(f"{errors} error responses")
    if not last["version"] or last["version"] <= first["version"]:
        problems.append("model versions did not advance")
    if max(gaps) > 120:
        problems.append(f"no new version for {max(gaps)} s")
    for name in ("builder", "server"):
        a, b = first[name], last[name]
        if b["fds"] > a["fds"] + 10 or b["threads"] > a["threads"] + 5:
            problems.append(f"{name} file descriptors or threads grew: {a} -> {b}")
    if problems:
        raise SystemExit("; ".join(problems))


if __name__ == "__main__":
    main()
