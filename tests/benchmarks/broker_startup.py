"""Start-up and memory of the broker and of the demo: first run (jars fetched) and later runs.

    .venv/bin/python -m tests.benchmarks.broker_startup [--runs 3] [--heaps 256m 512m 1g]
    .ci/without-system-java .venv/bin/python -m tests.benchmarks.broker_startup

Prints which Java runs Apache Kafka (under ``.ci/without-system-java``: the pip runtime, as on
a machine with Python and nothing else), then:

1. **Broker, first run**: ``recsvc broker`` with an empty ``--kafka-libs``: seconds to fetch
   and verify the jars, and from the command's start to "ready" (storage formatted, a metadata
   request answered).
2. **Broker, later runs** (``--runs``, cache warm, a new log each time): seconds to ready.
3. **Broker memory**: the JVM's resident memory once ready and after 100,000 messages
   produced and consumed, for each ``--heaps`` value of ``--kafka-heap``.
4. **Demo**: ``recsvc demo`` with an empty ``--kafka-libs`` and again with it warm: seconds
   from the command's start to the first model served (``/health`` 200), and the resident
   memory of all its processes (broker, builder, server workers, producers) a minute in.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer

from recommendation_service.common.java_runtime import find_java

from ..conftest import free_port
from ..processes import is_healthy, process_tree, stop


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return round(total / 1024, 1)


def start_broker(libs: Path, heap: str) -> tuple[subprocess.Popen, float, int]:
    """``recsvc broker`` until ready: (process, seconds to ready, port)."""
    port = free_port()
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "recommendation_service", "broker", "--port", str(port),
         "--kafka-libs", str(libs), "--kafka-heap", heap],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    for line in proc.stdout:
        if "ready on" in line:
            return proc, round(time.monotonic() - start, 2), port
    raise SystemExit(f"recsvc broker exited with code {proc.wait()}")


def traffic(port: int, messages: int = 100_000) -> None:
    bootstrap, topic = f"127.0.0.1:{port}", f"startup-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for k in range(messages):
        producer.produce(topic, f"user-{k % 5000}:item-{k % 2000}".encode())
        if k % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "startup", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    got, deadline = 0, time.monotonic() + 120
    while got < messages and time.monotonic() < deadline:
        got += len([m for m in consumer.consume(10_000, 1.0) if m.error() is None])
    consumer.close()


def jvm_pids(proc: subprocess.Popen) -> list[int]:
    return [p for p in process_tree(proc.pid) if p != proc.pid]


def broker_runs(root: Path, runs: int, heaps: list[str]) -> dict:
    libs = root / "libs"
    first_fetch = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "recommendation_service", "broker", "--fetch-only",
         "--kafka-libs", str(libs)], check=True, capture_output=True,
    )  # fmt: skip
    fetch_seconds = round(time.monotonic() - first_fetch, 2)
    shutil.rmtree(libs)
    proc, first_ready, _ = start_broker(libs, "512m")
    stop(proc)
    later = []
    for _ in range(runs):
        proc, ready, _ = start_broker(libs, "512m")
        later.append(ready)
        stop(proc)
    memory = {}
    for heap in heaps:
        proc, _, port = start_broker(libs, heap)
        idle = rss_mb(jvm_pids(proc))
        traffic(port)
        memory[heap] = {"rss_mb_ready": idle, "rss_mb_after_100k_messages": rss_mb(jvm_pids(proc))}
        stop(proc)
    return {
        "fetch_only_seconds_empty_cache": fetch_seconds,
        "first_run_seconds_to_ready_with_fetch": first_ready,
        "later_runs_seconds_to_ready": later,
        "memory_by_heap": memory,
    }


def demo_run(libs: Path) -> dict:
    http = free_port()
    start = time.monotonic()
    demo = subprocess.Popen(
        [sys.executable, "-m", "recommendation_service", "demo", "--port", str(free_port()),
         "--http-port", str(http), "--metrics-port", "0", "--kafka-libs", str(libs)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while not is_healthy(f"http://127.0.0.1:{http}"):
            if demo.poll() is not None or time.monotonic() - start > 300:
                raise SystemExit("the demo did not serve a model within 300 s")
            time.sleep(0.1)
        first_model = round(time.monotonic() - start, 2)
        time.sleep(max(0.0, 60 - (time.monotonic() - start)))
        return {"seconds_to_first_model": first_model, "rss_mb_all_processes_at_60s": rss_mb(
            process_tree(demo.pid))}  # fmt: skip
    finally:
        stop(demo, timeout=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--heaps", nargs="+", default=["256m", "512m", "1g"])
    args = parser.parse_args()
    java = find_java()
    result: dict = {"java": java.describe()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        result["broker"] = broker_runs(root, args.runs, args.heaps)
        result["demo_first_run_empty_cache"] = demo_run(root / "demo-libs")
        result["demo_later_run"] = demo_run(root / "demo-libs")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
