"""Capacity figures at three sizes each, for the README's capacity guide.

    sudo .venv/bin/python -m tests.benchmarks.capacity [--out img/capacity.json]
        [--parts memory,refit,serving,freshness]
    .venv/bin/python -m tests.benchmarks.capacity_plot    # img/capacity.json -> img/capacity.svg

* **memory**: resident bytes per window event, a fresh process filling the builder's
  ``SlidingWindow`` with 100,000 / 300,000 / 1,000,000 events of the taste stream (50,000
  users, 20,000 items);
* **refit**: seconds to fit those windows with implicit (all cores) and Spark MLlib
  (``local[2]``; JVM start excluded);
* **serving**: ``GET /recommend`` requests/s of one server worker (one core) under wrk with 4
  connections, on models of 10,000 / 100,000 / 300,000 items (users: half as many), the
  larger two with the HNSW index the builder publishes at that size;
* **freshness**: event → visible on every host, p50/p95 at 1,000 events/s with 1, 2 and 3
  server hosts in network namespaces (tests/benchmarks/hosts.py; needs root), Apache Kafka.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.params import ALSParams
from recommendation_service.training.spark_als import SparkALSTrainer
from recommendation_service.vectors.ann import ANNParams

from ..processes import free_port, serve, stop, wait_healthy
from .load import WRK_SCRIPT, publish, wrk
from .synthetic_model import synthetic_model

WINDOWS = (100_000, 300_000, 1_000_000)
CATALOGS = (10_000, 100_000, 300_000)
HOSTS = (1, 2, 3)


def tastes() -> TasteModel:
    return TasteModel(make_catalog(20_000, 16, 7), 50_000, seed=7)


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child_window_memory(n: int) -> None:
    """In a fresh process: fill a window with ``n`` events, print bytes per event."""
    stream = tastes()
    window = SlidingWindow(n)
    gc.collect()
    before = resident_bytes()
    done = 0
    while done < n:  # in chunks, so the generator's lists do not count
        chunk = stream.events(min(100_000, n - done))
        for k, (u, i) in enumerate(chunk):
            window.add(Event(u, i, 1.0, float(done + k)))
        done += len(chunk)
        del chunk
        gc.collect()
    print(json.dumps({"events": n, "bytes_per_event": round((resident_bytes() - before) / n, 1)}))


def memory() -> list[dict]:
    out = []
    for n in WINDOWS:
        run = subprocess.run([sys.executable, "-m", "tests.benchmarks.capacity", "--child-window",
                              str(n)], capture_output=True, text=True, check=True)  # fmt: skip
        out.append(json.loads(run.stdout.strip().splitlines()[-1]))
    return out


def refit() -> list[dict]:
    stream, params = tastes(), ALSParams()
    events = [Event(u, i, 1.0, float(k)) for k, (u, i) in enumerate(stream.events(WINDOWS[-1]))]
    spark = SparkALSTrainer(params)
    spark.session()
    out = []
    for n in WINDOWS:
        window = SlidingWindow(n)
        for e in events[-n:]:
            window.add(e)
        snap = window.snapshot()
        implicit_s = ALSTrainer(params).fit(snap).training_seconds
        spark_s = spark.fit(snap).training_seconds
        out.append({"events": n, "users": snap.n_users, "items": snap.n_items,
                    "implicit_s": round(implicit_s, 2), "spark_s": round(spark_s, 2)})  # fmt: skip
    spark.stop()
    return out


def serving(seconds: int = 8) -> list[dict]:
    out = []
    for items in CATALOGS:
        model = synthetic_model(items, items // 2, seed=11)
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            store = ModelStore(tmp / "models")
            publish(model, store, ANNParams())
            rng = np.random.default_rng(7)
            users = model.snapshot.user_ids
            picked = rng.choice(len(users), size=min(50_000, len(users)), replace=False)
            ids = ",".join(json.dumps(urllib.parse.quote(users[i])) for i in picked.tolist())
            script = tmp / "load.lua"
            script.write_text(WRK_SCRIPT % {"seed": 7, "ids": ids})
            port = free_port()
            server = serve(store.root, port, workers=1)
            try:
                wait_healthy(f"http://127.0.0.1:{port}", timeout=120)
                wrk(port, script, 4, 2)  # warm-up
                run = wrk(port, script, 4, seconds)
            finally:
                stop(server)
        out.append({"items": items, "index": items >= ANNParams().min_items,
                    "requests_per_second_per_core": run["requests_per_second"],
                    "p99_ms": run["p99_ms"]})  # fmt: skip
    return out


def freshness(probes: int = 30) -> list[dict]:
    from ..netns import Hosts, netns_unavailable
    from .hosts import freshness as across_hosts

    reason = netns_unavailable()
    if reason is not None:
        raise SystemExit(f"the freshness part runs hosts in network namespaces: {reason}")
    out = []
    for n in HOSTS:
        args = argparse.Namespace(rate=1000.0, probes=probes)
        with Hosts(n) as hosts:
            run = across_hosts("kafka", hosts, args)
        slowest = run["slowest_host_per_probe"]
        out.append({"hosts": n, "rate": run["sustained_rate"], "p50_ms": slowest["p50_ms"],
                    "p95_ms": slowest["p95_ms"]})  # fmt: skip
    return out


PARTS = {"memory": memory, "refit": refit, "serving": serving, "freshness": freshness}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("img/capacity.json"))
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--child-window", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_window:
        child_window_memory(args.child_window)
        return
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for part in args.parts.split(","):
        start = time.perf_counter()
        results[part] = PARTS[part]()
        print(f"{part}: {time.perf_counter() - start:.0f} s", json.dumps(results[part]))
    results["measured_on"] = time.strftime("%Y-%m-%d")
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
