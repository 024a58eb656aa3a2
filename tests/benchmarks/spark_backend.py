"""Spark MLlib against implicit on the same window: fit seconds and recall@10.

    .venv/bin/python -m tests.benchmarks.spark_backend [--events 1000000] [--master local[2]]
        [--log ../shared/data/online_retail_events.csv.gz | --no-log]

For each window -- a synthetic taste stream of ``--events`` events, and the Online Retail log
(real purchases) when present -- the newest 10% of events are held out and each held-out event
is predicted from that user's earlier events through the served fold-in (as ``recsvc
evaluate`` and the builder's tuning do). Both trainers fit the same older 90% with the same
parameters; reported: fit seconds (Spark's first fit also starts its JVM, reported apart),
HR@10 (recall@10 of single held-out events) and NDCG@10 of each and of popularity, and how
much their top-10 lists overlap.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.fold_in import FoldIn, RealtimeParams
from recommendation_service.training.holdout import HoldOut
from recommendation_service.training.params import ALSParams
from recommendation_service.training.spark_als import SparkALSTrainer
from recommendation_service.training.trained_model import popularity

from .real_factors import RETAIL_LOG, retail_events


def quality(holdout: HoldOut, model) -> dict:
    fold = FoldIn(model.snapshot.item_ids, model.item_factors, model.params, RealtimeParams())
    gains = holdout.gains(fold, 10)
    return {"hr@10": round(float(np.mean(gains > 0)), 4), "ndcg@10": round(float(gains.mean()), 4)}


def popularity_hr(holdout: HoldOut) -> float:
    order, _ = popularity(holdout.train)
    hits = 0
    for target, (seen, _) in zip(holdout.targets.tolist(), holdout.history):
        top = [c for c in order[: 10 + len(seen)].tolist() if c not in set(seen.tolist())][:10]
        hits += target in top
    return round(hits / max(1, len(holdout)), 4)


def overlap(a, b, users: int = 1000) -> float:
    """Mean share of the same items in both models' top 10 (seen items excluded)."""
    seen, shared = a.snapshot.seen, []
    for u in np.random.default_rng(0).choice(a.snapshot.n_users, min(users, a.snapshot.n_users),
                                             replace=False):  # fmt: skip
        tops = []
        for m in (a, b):
            scores = m.item_factors @ m.user_factors[u]
            scores[seen[u].indices] = -np.inf
            tops.append(set(np.argpartition(-scores, 10)[:10].tolist()))
        shared.append(len(tops[0] & tops[1]) / 10)
    return round(float(np.mean(shared)), 3)


def compare(name: str, events: list[Event], spark: SparkALSTrainer, params: ALSParams) -> dict:
    window = SlidingWindow(len(events))
    for e in events:
        window.add(e)
    holdout = HoldOut(window.snapshot(), 0.1, 1000)
    train = holdout.train
    local = ALSTrainer(params).fit(train)
    remote = spark.fit(train)
    return {
        "window": name,
        "events": train.n_events,
        "users": train.n_users,
        "items": train.n_items,
        "held_out_predictions": len(holdout),
        "implicit": {"fit_s": round(local.training_seconds, 2), **quality(holdout, local)},
        "spark": {"fit_s": round(remote.training_seconds, 2), **quality(holdout, remote)},
        "popularity_hr@10": popularity_hr(holdout),
        "top10_overlap": overlap(local, remote),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--log", type=Path, default=RETAIL_LOG)
    parser.add_argument("--no-log", action="store_true")
    args = parser.parse_args()
    params = ALSParams()
    spark = SparkALSTrainer(params, args.master)
    start = time.perf_counter()
    spark.session()
    jvm_seconds = time.perf_counter() - start
    tastes = TasteModel(make_catalog(20_000, 16, 7), 50_000, seed=7)
    synthetic = [Event(u, i, 1.0, float(k)) for k, (u, i) in enumerate(tastes.events(args.events))]
    results = {"master": args.master, "spark_session_start_s": round(jvm_seconds, 1),
               "params": vars(params), "windows": []}  # fmt: skip
    results["windows"].append(compare("taste stream", synthetic, spark, params))
    if not args.no_log and args.log.exists():
        results["windows"].append(compare("online retail", retail_events(args.log), spark, params))
    spark.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
