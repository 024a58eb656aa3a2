"""Catalog freshness and the experiment report, on the running system.

    .venv/bin/python -m tests.benchmarks.catalog_experiments [--seeds 5]

Apache Kafka, ``recsvc builder`` (catalog topic, ``--impressions-topic``) trained on the
stable-taste stream of taste_precision.py, and ``recsvc serve`` (2 workers) with a rules file.

1. **Catalog update -> answers.** 40 times: pick an item in a user's top 10, publish
   ``"available": false`` for it on the items topic, and poll ``GET /recommend`` every 10 ms
   until it is gone; then make it available again. Prints p50/p95/max seconds.
2. **Experiment report over seeds.** For each seed, two experiments (each a fresh name and
   salt, so a fresh server): an A/A split and an A/B split in which a simulated population
   clicks lists of variant B 20% more often (30% vs 36%; the click does not depend on the
   content, so only the planted difference is there to find). 10,000 lists per experiment
   through ``GET /recommend``; clicks are events carrying the list's recommendation_id on the
   interactions topic; the builder's tracker counts them; ``GET /experiments`` gives the
   verdict that ``recsvc experiment report`` prints.
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from confluent_kafka import Producer

from recommendation_service.sandbox.brokers import ensure_topic

from ..processes import (
    broker_of,
    free_port,
    get,
    serve,
    stop,
    wait_healthy,
)
from ..processes import builder as start_builder
from .taste_precision import taste_stream

LISTS = 10_000
BASE_CLICK = 0.30
LIFT = 0.20


def rules(name: str, salt: str) -> str:
    return f"""
[rules]
cheap = "price < $max"

[experiment]
name = "{name}"
salt = "{salt}"
[[experiment.variants]]
name = "A"
share = 1
[[experiment.variants]]
name = "B"
share = 1
"""


def produce(producer: Producer, topic: str, values) -> None:
    for k, value in enumerate(values):
        producer.produce(topic, value)
        if k % 5000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def recommend_many(port: int, users: list[str], threads: int = 4) -> list[dict]:
    """GET /recommend for each user, on keep-alive connections."""

    def worker(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        out = []
        for user in chunk:
            conn.request("GET", f"/recommend?user={user}&n=10")
            out.append(json.loads(conn.getresponse().read()))
        conn.close()
        return out

    chunks = [users[k::threads] for k in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        return [body for part in pool.map(worker, chunks) for body in part]


def catalog_latency(url: str, producer: Producer, items_topic: str, users, rounds=40) -> dict:
    seconds = []
    for k in range(rounds):
        user = users[k % len(users)]
        item = get(f"{url}/recommend?user={user}&n=10")[1]["items"][0]
        start = time.monotonic()
        produce(producer, items_topic, [json.dumps({"id": item, "available": False}).encode()])
        while item in get(f"{url}/recommend?user={user}&n=10")[1]["items"]:
            if time.monotonic() - start > 30:
                raise TimeoutError(f"{item} still recommended 30 s after going unavailable")
            time.sleep(0.01)
        seconds.append(time.monotonic() - start)
        produce(producer, items_topic, [json.dumps({"id": item}).encode()])
        time.sleep(0.5)  # back in stock before the next round
    s = np.array(seconds)
    return {
        "rounds": rounds,
        "p50_s": round(float(np.percentile(s, 50)), 3),
        "p95_s": round(float(np.percentile(s, 95)), 3),
        "max_s": round(float(s.max()), 3),
    }


def experiment_run(ctx: dict, name: str, lift: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    path = Path(ctx["tmp"]) / f"{name}.toml"
    path.write_text(rules(name, f"salt-{name}"))
    port = free_port()
    server = serve(ctx["model_dir"], port, "--rules-file", str(path), "--bootstrap-servers",
                   ctx["bootstrap"], "--topic", ctx["topic"], "--impressions-topic",
                   ctx["impressions"], workers=2)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, timeout=60)
        users = [ctx["users"][k] for k in rng.integers(len(ctx["users"]), size=LISTS)]
        bodies = recommend_many(port, users)
        clicks = []
        for body in bodies:
            p = BASE_CLICK * (1 + lift if body["variant"] == "B" else 1)
            if rng.random() < p:
                item = body["items"][int(rng.integers(len(body["items"])))]
                event = {"user": body["user"], "item": item, "action": "click",
                         "recommendation_id": body["recommendation_id"]}  # fmt: skip
                clicks.append(json.dumps(event).encode())
        produce(ctx["producer"], ctx["topic"], clicks)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            report = get(f"{url}/experiments")[1]
            counts = report.get("counts", {})
            lists = sum(c.get("lists", 0) for c in counts.values())
            clicked = sum(c.get("clicked_lists", 0) for c in counts.values())
            if lists == LISTS and clicked == len(clicks):
                break
            time.sleep(0.5)
        else:
            raise TimeoutError(
                f"{name}: the tracker did not count everything within 120 s: {lists} of "
                f"{LISTS} lists, {clicked} of {len(clicks)} clicked; {report}"
            )
    finally:
        stop(server)
    b = report["click_through"]["B"]
    a = report["click_through"]["A"]
    return {
        "experiment": name,
        "planted_lift": lift,
        "lists_A": a["lists"],
        "lists_B": b["lists"],
        "ctr_A": round(a["rate"], 4),
        "ctr_B": round(b["rate"], 4),
        "lift": round(b["lift"], 3),
        "p_value": round(b["p_value"], 4),
        "verdict": b["verdict"],
    }


def run(seeds: int) -> dict:
    pairs, favourite = taste_stream()
    with tempfile.TemporaryDirectory() as tmp, broker_of(Path(tmp) / "b") as broker:
        topic, items_topic, impressions = (f"{n}-{uuid.uuid4().hex[:8]}"
                                           for n in ("events", "items", "impressions"))  # fmt: skip
        for t in (topic, items_topic, impressions):
            ensure_topic(broker.bootstrap_servers, t)
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 5})
        produce(producer, topic, [f"{u}:{i}".encode() for u, i in pairs])
        produce(producer, items_topic, [json.dumps({"id": i, "price": 10.0}).encode()
                                        for i in sorted({i for _, i in pairs})])  # fmt: skip
        model_dir = Path(tmp) / "models"
        builder = start_builder(
            broker.bootstrap_servers, topic, model_dir, "--window", "20000", "--retrain-every",
            "2000", "--catalog-topic", items_topic, "--impressions-topic", impressions,
            "--group-id", f"g-{topic}",
        )  # fmt: skip
        ctx = {"tmp": tmp, "model_dir": model_dir, "bootstrap": broker.bootstrap_servers,
               "topic": topic, "producer": producer, "users": sorted(favourite),
               "impressions": impressions}  # fmt: skip
        try:
            port = free_port()
            plain = serve(model_dir, port, workers=2)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_healthy(url, timeout=120)
                while get(f"{url}/model/info")[1].get("window_size") != len(pairs):
                    time.sleep(0.5)
                latency = catalog_latency(url, producer, items_topic, ctx["users"])
                print(json.dumps({"catalog_update_to_answer": latency}), flush=True)
            finally:
                stop(plain)
            runs = []
            for seed in range(seeds):
                for kind, lift in (("aa", 0.0), ("ab", LIFT)):
                    runs.append(experiment_run(ctx, f"{kind}-{seed}", lift, seed))
                    print(json.dumps(runs[-1]), flush=True)
        finally:
            stop(builder)
    summary = {
        kind: {v: sum(r["verdict"] == v for r in runs if r["experiment"].startswith(kind))
               for v in ("differs", "no_difference", "too_small")}
        for kind in ("aa", "ab")
    }  # fmt: skip
    return {"catalog_update_to_answer": latency, "verdicts": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(run(args.seeds), indent=2))


if __name__ == "__main__":
    main()
