"""Stable-taste quality, end to end: broker -> builder -> server -> GET /recommend.

    .venv/bin/python -m tests.benchmarks.taste_precision [--tune on off]
    .venv/bin/python -m tests.benchmarks.taste_precision --write-log taste.csv

The stream of the issue that asked for tuned refits: 300 users, 5 categories of 40 items,
each user's 30 events 90% in one favourite category (popularity within a category
exponential), in random order. For each ``--tune`` setting it starts a broker, ``recsvc
builder`` with the defaults except ``--window 20000 --retrain-every 2000`` (and ``--tune``),
and ``recsvc serve``; produces the stream; once the builder's model covers all of it, asks
``GET /recommend?n=10`` for every user and reports taste precision@10: the share of each top
10 (seen items excluded) in the user's favourite category. With ``--write-log`` it writes the
same stream as a CSV log for ``recsvc evaluate`` instead.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
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

CATEGORIES = ("books", "garden", "music", "sports", "toys")


def taste_stream(users=300, per_category=40, events_each=30, focus=0.9, seed=0):
    """(user, item) pairs in random order, and each user's favourite category."""
    rng = np.random.default_rng(seed)
    favourite = {f"user-{u:04d}": CATEGORIES[rng.integers(len(CATEGORIES))] for u in range(users)}
    popularity = np.exp(-np.arange(per_category) / 8.0)
    popularity /= popularity.sum()
    pairs = []
    for user, fav in favourite.items():
        for _ in range(events_each):
            category = fav if rng.random() < focus else CATEGORIES[rng.integers(len(CATEGORIES))]
            pairs.append((user, f"{category}-{rng.choice(per_category, p=popularity):02d}"))
    rng.shuffle(pairs)
    return pairs, favourite


def run(tune: str, pairs, favourite) -> dict:
    with tempfile.TemporaryDirectory() as tmp, broker_of(Path(tmp) / "b") as broker:
        topic = f"taste-{uuid.uuid4().hex[:8]}"
        ensure_topic(broker.bootstrap_servers, topic)
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 5})
        for user, item in pairs:
            producer.produce(topic, f"{user}:{item}".encode())
        assert producer.flush(60) == 0
        model_dir = Path(tmp) / "models"
        args = ["--window", "20000", "--retrain-every", "2000", "--tune", tune]
        builder = start_builder(
            broker.bootstrap_servers, topic, model_dir, *args, "--group-id", f"g-{topic}"
        )
        port = free_port()
        server = serve(model_dir, port)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, timeout=120)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                status, info = get(f"{url}/model/info")
                if status == 200 and info["window_size"] == len(pairs):
                    break
                time.sleep(0.5)
            else:
                raise TimeoutError("no model over the whole stream within 300 s")
            shares = []
            for user, fav in favourite.items():
                items = get(f"{url}/recommend?user={user}&n=10")[1]["items"]
                shares.append(np.mean([i.startswith(fav + "-") for i in items]))
        finally:
            stop(server)
            stop(builder)
    return {
        "tune": tune,
        "taste_precision_at_10": round(float(np.mean(shares)), 4),
        "version": info["version"],
        "params": {k: info["params"][k] for k in ("factors", "regularization", "alpha")},
        "realtime": info["realtime"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", nargs="+", default=["on", "off"], choices=["on", "off"])
    parser.add_argument("--write-log", type=Path, help="write the stream as a CSV log and exit")
    args = parser.parse_args()
    pairs, favourite = taste_stream()
    if args.write_log:
        with open(args.write_log, "w", encoding="utf-8") as fh:
            fh.write("timestamp,user,item\n")
            for t, (user, item) in enumerate(pairs):
                fh.write(f"{t},{user},{item}\n")
        print(f"wrote {len(pairs)} events to {args.write_log}")
        return
    results = [run(tune, pairs, favourite) for tune in args.tune]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
