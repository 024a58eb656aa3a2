"""Builder CPU with nothing flowing: right after its last publish, and a minute later.

    .venv/bin/python -m tests.benchmarks.builder_idle [--events 300000]

Publishes a backlog of ``--events`` demo-style events, runs ``recsvc builder`` (defaults
otherwise: tuning and live quality on) with a window that holds all of them, and samples the
builder's CPU (its process and children, from /proc) once a second. Once the backlog is
consumed and no version has been published for ``--quiet`` seconds, it reports the share of a
core the builder used in the 10 s after its last publish and in the 10 s a minute after it
(target: at most 2%), and what the builder's threads were doing (their CPU seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.sandbox.brokers import ensure_topic
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog

from ..processes import broker_of, cpu_seconds, process_tree, stop
from ..processes import builder as start_builder
from .builder_throughput import produce_backlog


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each named thread of ``pid``."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def tree_cpu(pid: int) -> float:
    total = 0.0
    for p in process_tree(pid):
        try:
            total += cpu_seconds(p)
        except OSError:
            continue
    return total


def run(events: int, quiet: float) -> dict:
    tastes = TasteModel(make_catalog(5_000, 16, 1), 20_000, seed=1)
    pairs = tastes.events(events)
    with tempfile.TemporaryDirectory() as tmp, broker_of(Path(tmp) / "b") as broker:
        topic = f"idle-{uuid.uuid4().hex[:8]}"
        ensure_topic(broker.bootstrap_servers, topic)
        produce_backlog(broker.bootstrap_servers, topic, pairs)
        model_dir = Path(tmp) / "models"
        control = ControlFiles(ModelStore(model_dir))
        proc = start_builder(
            broker.bootstrap_servers, topic, model_dir, "--window", str(events),
            log_path=Path(tmp) / "builder.log",
        )  # fmt: skip
        samples: list[tuple[float, float]] = []  # (time, cpu seconds)
        version, published_at, threads_at_publish = None, None, {}
        start = time.monotonic()
        try:
            while time.monotonic() - start < 1800:
                time.sleep(1.0)
                now = time.monotonic()
                samples.append((now, tree_cpu(proc.pid)))
                status = control.read_status() or {}
                latest = (status.get("last_refit") or {}).get("version")
                if latest != version:
                    version, published_at = latest, now
                    threads_at_publish = thread_cpu(proc.pid)
                consumed = status.get("events_consumed") or 0
                if consumed >= events and published_at and now - published_at >= quiet:
                    break
            threads_after = thread_cpu(proc.pid)
        finally:
            stop(proc)

    def share(begin: float, end: float) -> float:
        inside = [(t, c) for t, c in samples if published_at + begin <= t <= published_at + end]
        if len(inside) < 2:
            return float("nan")
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return round(100 * (c1 - c0) / (t1 - t0), 2)

    busiest = sorted(
        ((name, round(cpu - threads_at_publish.get(name, 0.0), 2))
         for name, cpu in threads_after.items()), key=lambda x: -x[1],
    )[:6]  # fmt: skip
    return {
        "events": events,
        "last_version": version,
        "cpu_percent_0_10s_after_publish": share(0, 10),
        "cpu_percent_60_70s_after_publish": share(60, 70),
        "threads_cpu_seconds_since_publish": dict(busiest),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--quiet", type=float, default=75.0)
    args = parser.parse_args()
    print(json.dumps(run(args.events, args.quiet), indent=2))


if __name__ == "__main__":
    main()
