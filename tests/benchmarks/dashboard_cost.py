"""What the dashboard costs: page load to first full render, and the server CPU its polling
adds, on a demo-like running system.

    .venv/bin/python -m tests.benchmarks.dashboard_cost [--seconds 60] [--loads 5]

Starts Apache Kafka, ``recsvc builder`` (window 20,000, refit every 1,000) and ``recsvc serve``
(2 workers), produces planted-taste events at 200/s (the demo's rate) the whole time, and
waits for a model. Then, in headless Chromium (Debian's, through Selenium):

* **render**: ``--loads`` fresh loads of ``/dashboard``; for each, the time from navigation
  start until the page has drawn every panel from its first poll (``window.dashboard.renderedAt``,
  set after the health, stream, models and serving answers are all drawn);
* **CPU**: the server's processes (main process and workers) over ``--seconds`` with no page
  open, then the same with one page open and polling every 2 s; the difference as a share of
  one core. That difference is within the noise of the system's own work, so the script also
  times 300 poll rounds (the four requests a page makes every 2 s) back to back and reports
  their server CPU per round times one round per 2 s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from recommendation_service.sandbox.brokers import ensure_topic
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog

from ..processes import (
    broker_of,
    cpu_seconds,
    free_port,
    headless_chromium,
    process_tree,
    serve,
    stop,
    wait_healthy,
)
from ..processes import builder as start_builder


def produce_forever(bootstrap: str, topic: str, rate: float, stop_flag: threading.Event):
    tastes = TasteModel(make_catalog(400, 8, 7), 200, seed=7)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    while not stop_flag.is_set():
        start = time.monotonic()
        for user, item in tastes.events(int(rate / 10)):
            producer.produce(topic, f"{user}:{item}".encode())
        producer.poll(0)
        stop_flag.wait(max(0.0, 0.1 - (time.monotonic() - start)))
    producer.flush(10)


def server_cpu(pid: int, seconds: float) -> float:
    pids = process_tree(pid)
    before = sum(cpu_seconds(p) for p in pids)
    time.sleep(seconds)
    return sum(cpu_seconds(p) for p in pids) - before


def poll_rounds(pid: int, port: int, rounds: int) -> float:
    """Server CPU seconds for ``rounds`` of the page's four requests, on one connection."""
    paths = ("/health", "/dashboard/api/stream", "/dashboard/api/models", "/dashboard/api/serving")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    pids = process_tree(pid)
    before = sum(cpu_seconds(p) for p in pids)
    for _ in range(rounds):
        for path in paths:
            conn.request("GET", path)
            conn.getresponse().read()
    conn.close()
    return sum(cpu_seconds(p) for p in pids) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, broker_of(Path(tmp) / "b") as broker:
        topic = f"dash-{uuid.uuid4().hex[:8]}"
        ensure_topic(broker.bootstrap_servers, topic)
        flag = threading.Event()
        feeder = threading.Thread(
            target=produce_forever, args=(broker.bootstrap_servers, topic, 200.0, flag)
        )
        feeder.start()
        model_dir = Path(tmp) / "models"
        builder = start_builder(broker.bootstrap_servers, topic, model_dir, "--window", "20000",
                                "--retrain-every", "1000", "--group-id", f"g-{topic}")  # fmt: skip
        port = free_port()
        server = serve(model_dir, port, workers=2)
        url = f"http://127.0.0.1:{port}"
        driver = None
        try:
            wait_healthy(url, timeout=120)
            time.sleep(15)  # a few refits and history samples
            driver = headless_chromium()
            renders = []
            for _ in range(args.loads):
                driver.get("about:blank")
                driver.get(f"{url}/dashboard")
                deadline = time.monotonic() + 30
                while (ms := driver.execute_script("return window.dashboard.renderedAt")) is None:
                    if time.monotonic() > deadline:
                        raise TimeoutError("the dashboard did not render within 30 s")
                    time.sleep(0.02)
                renders.append(ms)
            driver.get("about:blank")
            idle = server_cpu(server.pid, args.seconds)
            driver.get(f"{url}/dashboard")
            watched = server_cpu(server.pid, args.seconds)
            polls = driver.execute_script("return window.dashboard.polls")
            driver.get("about:blank")
            per_round = poll_rounds(server.pid, port, 300) / 300
        finally:
            if driver is not None:
                driver.quit()
            flag.set()
            feeder.join()
            stop(server)
            stop(builder)
    result = {
        "render_ms": {"median": round(statistics.median(renders), 1),
                      "max": round(max(renders), 1), "loads": [round(r, 1) for r in renders]},
        "server_cpu_seconds": {"no_page": round(idle, 3), "one_page": round(watched, 3),
                               "over_seconds": args.seconds, "polls": polls},
        "added_cpu_share_of_one_core": round((watched - idle) / args.seconds, 4),
        "server_cpu_ms_per_poll_round": round(1000 * per_round, 3),
        "share_of_one_core_at_one_round_per_2s": round(per_round / 2.0, 5),
    }  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
