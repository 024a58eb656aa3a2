"""What the sequence term costs: version bytes, refit seconds and request latency.

    .venv/bin/python -m tests.benchmarks.sequence_cost [--events 300000] [--items 100000]

Trains the load benchmark's real-factor model (taste stream, 300,000 events, 30,000 users,
100,000-item catalog, HNSW index) through the builder's window, computes the window's
sequential rules as a refit does, and publishes the version twice: without and with them.
Prints the bytes of each version, the seconds the rules add to a refit, and p50/p99 of an
in-process ``ServedModel.recommend`` (2,000 users, n = 10) without rules, with rules but the
term off, and with the term on. Builder catch-up with and without the rules is measured by
``tests.benchmarks.builder_throughput`` (its ``--sequence-distance 0`` variant).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.recommend.served_model import ServedModel
from recommendation_service.training.fold_in import FoldIn, RealtimeParams
from recommendation_service.training.successors import SequenceParams, successors
from recommendation_service.vectors.ann import ANNParams, build_index
from recommendation_service.vectors.sequences import SequenceWeights

from .real_factors import events_of, train


def version_bytes(store: ModelStore) -> int:
    directory = store.versions_dir / store.current_name()
    return sum(p.stat().st_size for p in directory.iterdir())


def latencies(model: ServedModel, users: list[str], sequence: SequenceWeights | None) -> dict:
    for user in users[:200]:  # warm-up
        model.recommend(user, 10, sequence=sequence)
    times = []
    for user in users:
        start = time.perf_counter()
        model.recommend(user, 10, sequence=sequence)
        times.append(time.perf_counter() - start)
    return {
        "p50_ms": round(1000 * float(np.percentile(times, 50)), 3),
        "p99_ms": round(1000 * float(np.percentile(times, 99)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    model = train(events_of("taste", args.events, args.users, args.items), 10**8)
    snap = model.snapshot
    fold = FoldIn(snap.item_ids, model.item_factors, model.params, RealtimeParams())
    index = build_index(fold.scoring_matrix, ANNParams())
    start = time.perf_counter()
    rules = successors(snap, SequenceParams(weights=SequenceWeights(weight=4.0)))
    rules_seconds = time.perf_counter() - start
    rng = np.random.default_rng(3)
    users = rng.choice(snap.user_ids, size=args.requests).tolist()
    result = {"items": snap.n_items, "users": snap.n_users, "window_events": snap.n_events}
    with tempfile.TemporaryDirectory() as tmp:
        plain, ordered = ModelStore(Path(tmp) / "plain"), ModelStore(Path(tmp) / "ordered")
        plain.publish(model, fold, index=index)
        ordered.publish(model, fold, index=index, successors=rules)
        without, with_rules = version_bytes(plain), version_bytes(ordered)
        result["version_bytes"] = {
            "without rules": without,
            "with rules": with_rules,
            "growth": round(with_rules / without - 1, 4),
            "rules": int(rules.rules.nnz),
        }
        result["refit_seconds_for_rules"] = round(rules_seconds, 3)
        result["fit_seconds"] = round(model.training_seconds, 3)
        no_rules = ServedModel(*plain.read_version(), index=index)
        served = ServedModel(*ordered.read_version(), index=index)
        result["recommend"] = {
            "version without rules": latencies(no_rules, users, None),
            "rules, term off (weight 0)": latencies(served, users, SequenceWeights(weight=0.0)),
            "rules, term on (weight 4)": latencies(served, users, None),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
