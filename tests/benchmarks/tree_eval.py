"""The rank stage's tree evaluator against LightGBM's own predict, on one request's candidates.

    .venv/bin/python -m tests.benchmarks.tree_eval [--rows 150] [--trees 100] [--depth 4]

Fits LambdaRank trees of the rank stage's shape (ranking/rankers.py, training/ranker_fit.py)
on random features with a planted order, then times scoring ``--rows`` candidates (one
request) many times over: ``TreeRanker.scores`` (complete trees as arrays, numpy), and
``Booster.predict`` with one thread, its call overhead included, as a server calling LightGBM
per request would pay it. Checks that both give the same scores. Prints p50 and p99 in µs.
"""

from __future__ import annotations

import argparse
import time

import lightgbm
import numpy as np

from recommendation_service.ranking.features import FEATURE_NAMES
from recommendation_service.ranking.rankers import TreeRanker


def timings(score, x: np.ndarray, repeats: int) -> tuple[float, float]:
    for _ in range(50):
        score(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        score(x)
        times.append(time.perf_counter() - t)
    us = np.array(times) * 1e6
    return float(np.percentile(us, 50)), float(np.percentile(us, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=150)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    width = len(FEATURE_NAMES)
    x = rng.normal(size=(40_000, width))
    relevance = (x[:, 0] + 0.5 * x[:, 3] - 0.3 * x[:, 7] > 1).astype(float)
    params = {
        "objective": "lambdarank", "num_leaves": 2**args.depth, "max_depth": args.depth,
        "min_data_in_leaf": 20, "use_missing": False, "verbose": -1, "num_threads": 1,
    }  # fmt: skip
    data = lightgbm.Dataset(x, relevance, group=[100] * 400)
    booster = lightgbm.train(params, data, num_boost_round=args.trees)
    ranker = TreeRanker.from_lightgbm(booster.dump_model(), args.depth)
    request = rng.normal(size=(args.rows, width))
    assert np.allclose(ranker.scores(request), booster.predict(request, num_threads=1))
    ours = timings(ranker.scores, request, args.repeats)
    theirs = timings(lambda r: booster.predict(r, num_threads=1), request, args.repeats)
    print(f"{args.trees} trees of depth {args.depth}, {args.rows} rows per call")
    print(f"{'evaluator':<28}{'p50 µs':>9}{'p99 µs':>9}")
    print(f"{'TreeRanker (numpy arrays)':<28}{ours[0]:>9.0f}{ours[1]:>9.0f}")
    print(f"{'LightGBM Booster.predict':<28}{theirs[0]:>9.0f}{theirs[1]:>9.0f}")
    print(f"ratio p50: {theirs[0] / ours[0]:.2f}x")


if __name__ == "__main__":
    main()
