"""Fitting the rank stage's rankers, and choosing the one a version ranks by.

The hold-out's queries (training/ranker_queries.py) are split by time: the older
``1 - validation`` share trains a linear fusion and boosted trees, the newer share scores
them against the sum, each query's NDCG@10 over its candidates. A learned ranker is chosen
only if it beats the sum by more than two standard errors of the paired difference (the
tuning's rule); the better of the two learned ones wins, as fitted. (Refitting it on every
query cost a third of the stage's time and moved Online Retail's HR@10 by 0.001, within
noise.) Otherwise the version ranks by the sum and says why.

Trees: LightGBM's LambdaRank -- a well-kept, fast library for exactly this objective -- with
a shallow depth, so a served version evaluates them as complete trees in a few numpy steps
(ranking/rankers.py). Linear: a softmax over each query's candidates with an L2 penalty,
fitted by scipy's L-BFGS on standardized features.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from ..ranking.features import FEATURE_NAMES, SUM
from ..ranking.rankers import LinearRanker, Ranker, SumRanker, TreeRanker, best_learned
from .ranker_queries import Queries

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankerParams:
    """How the rank stage's rankers are fitted.

    Parameters
    ----------
    enabled
        Off: versions rank by the sum and carry no learned ranker.
    every
        Fit the rankers at every ``every``-th refit and at every tuned one; the refits between
        keep the last ones (with their own arrays: fresh popularity, neighbours and factors).
        3: on Online Retail's replay, fitting them at every refit, every 2nd or every 3rd gave
        the same HR@10 (0.2954, 0.2951, 0.2962), and the stage is most of an untuned refit.
    holdout
        Share of the window's newest events turned into queries.
    max_queries
        Most held-out events turned into queries (a seeded sample beyond that).
    validation
        Newest share of the queries that chooses between the rankers.
    trees, depth, learning_rate, min_rows
        The boosted trees: rounds, most levels, shrinkage, fewest rows per leaf.
    l2
        The linear fusion's penalty on its (standardized) weights.
    """

    enabled: bool = True
    every: int = 3
    holdout: float = 0.1
    max_queries: int = 8_000
    validation: float = 0.3
    trees: int = 50
    depth: int = 4
    learning_rate: float = 0.1
    min_rows: int = 200
    l2: float = 1.0

    def __post_init__(self) -> None:
        if self.max_queries < 100 or not 0.1 <= self.validation <= 0.5:
            raise ValueError("ranker needs max-queries >= 100 and validation in [0.1, 0.5]")
        if self.every < 1 or not 0 < self.holdout < 0.5:
            raise ValueError("ranker needs every >= 1 and a hold-out in (0, 0.5)")
        if not 1 <= self.trees <= 1000 or not 1 <= self.depth <= 8:
            raise ValueError("ranker trees must be 1..1000 and depth 1..8")

    def due(self, refits: int, retuned: bool, have_rankers: bool) -> bool:
        """Whether the refit after ``refits`` earlier ones fits rankers: the first, every
        ``every``-th, and every tuned one (new settings change what the features mean); the
        builder and ``recsvc evaluate``'s replay both ask this."""
        return not have_rankers or retuned or refits % self.every == 0


@dataclass
class RankerChoice:
    """The rankers of one refit, and which one it ranks by."""

    chosen: str
    rankers: dict[str, Ranker]
    #: Per ranker kind, its HR@10 and NDCG@10 on the validation queries.
    validation: dict[str, dict[str, float]] = field(default_factory=dict)
    queries: int = 0
    reason: str = ""
    seconds: float = 0.0

    def best_learned(self) -> str | None:
        """The learned ranker the validation preferred, chosen or not (None: none fitted)."""
        return best_learned(self.rankers, self.validation)

    def as_dict(self) -> dict:
        """As the manifest and ``/model`` show it."""
        return {
            "chosen": self.chosen,
            "reason": self.reason,
            "features": list(FEATURE_NAMES),
            "queries": self.queries,
            "validation": self.validation,
            "seconds": round(self.seconds, 3),
        }


def ndcg_gains(ranker: Ranker, queries: Queries, k: int = 10) -> np.ndarray:
    """Each query's NDCG@``k`` gain when ``ranker`` orders its candidates (0: the event's
    item not among its top ``k``, or not among the candidates at all)."""
    gains = np.zeros(len(queries))
    for q, (features, label) in enumerate(zip(queries.features, queries.labels)):
        if not label.any():
            continue
        scores = ranker.scores(features)
        target = scores[label][0]
        # Ties count against it, as the tuning's gains do.
        rank = int((scores >= target).sum()) - 1
        if rank < k:
            gains[q] = 1.0 / math.log2(rank + 2)
    return gains


def fit_rankers(queries: Queries, params: RankerParams) -> RankerChoice:
    """Fit both learned rankers on the older queries, score them and the sum on the newer
    ones, and choose (see the module's docstring)."""
    start = time.perf_counter()
    choice = RankerChoice("sum", {"sum": SumRanker()}, queries=len(queries))
    cut = int(len(queries) * (1 - params.validation))
    train, valid = _subset(queries, range(cut)), _subset(queries, range(cut, len(queries)))
    learnable = sum(bool(label.any()) for label in train.labels)
    if learnable < 50 or len(valid) < 50:
        choice.reason = f"{learnable} training and {len(valid)} validation queries: too few"
        choice.seconds = time.perf_counter() - start
        return choice
    fitted = {"linear": fit_linear(train, params), "trees": fit_trees(train, params)}
    gains = {kind: ndcg_gains(r, valid) for kind, r in {"sum": SumRanker(), **fitted}.items()}
    choice.validation = {
        kind: {"hit_rate": round(float((g > 0).mean()), 4), "ndcg": round(float(g.mean()), 4)}
        for kind, g in gains.items()
    }
    best = max(fitted, key=lambda kind: gains[kind].mean())
    diff = gains[best] - gains["sum"]
    se = diff.std(ddof=1) / math.sqrt(len(diff))
    choice.rankers.update(fitted)
    if diff.mean() > 2 * se and diff.mean() > 0:
        choice.chosen = best
        choice.reason = (
            f"{best} beats the sum on the hold-out by {diff.mean():.4f} NDCG (2 SE {2 * se:.4f})"
        )
    else:
        choice.reason = (
            f"{best} does not beat the sum by two standard errors "
            f"({diff.mean():+.4f} NDCG, 2 SE {2 * se:.4f})"
        )
    choice.seconds = time.perf_counter() - start
    logger.info(
        "ranker: %s on %d queries in %.1f s (%s)",
        choice.chosen, len(queries), choice.seconds, choice.reason,
    )  # fmt: skip
    return choice


def fit_trees(queries: Queries, params: RankerParams) -> TreeRanker:
    """LambdaRank trees on the queries that hold their event's item."""
    import lightgbm

    features, labels, groups = _stacked(queries)
    data = lightgbm.Dataset(features, labels.astype(np.float64), group=groups,
                            params={"max_bin": 63, "verbose": -1})  # fmt: skip
    booster = lightgbm.train(
        {
            "objective": "lambdarank",
            "lambdarank_truncation_level": 20,
            "num_leaves": 2**params.depth,
            "max_depth": params.depth,
            "learning_rate": params.learning_rate,
            "min_data_in_leaf": params.min_rows,
            "feature_fraction": 0.9,
            "feature_fraction_seed": 7,
            # No missing values are ever fed, and the served evaluator has no missing branch.
            "use_missing": False,
            "deterministic": True,
            "num_threads": 1,
            "verbose": -1,
        },
        data,
        num_boost_round=params.trees,
    )
    return TreeRanker.from_lightgbm(booster.dump_model(), params.depth)


def fit_linear(queries: Queries, params: RankerParams) -> LinearRanker:
    """A weight per feature: the softmax over each query's candidates, L2-penalized."""
    features, labels, groups = _stacked(queries)
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale < 1e-9] = 1.0
    x = (features - mean) / scale
    starts = np.concatenate([[0], np.cumsum(groups)[:-1]])
    owner = np.repeat(np.arange(len(groups)), groups)
    target = labels.astype(np.float64)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = x @ w
        top = np.maximum.reduceat(s, starts)
        e = np.exp(s - top[owner])
        total = np.add.reduceat(e, starts)
        p = e / total[owner]
        value = float((np.log(total) + top).sum() - s[labels].sum()) + 0.5 * params.l2 * w @ w
        return value, x.T @ (p - target) + params.l2 * w

    w0 = np.zeros(x.shape[1])
    w0[SUM] = 1.0
    result = minimize(loss, w0, jac=True, method="L-BFGS-B", options={"maxiter": 200})
    return LinearRanker(result.x / scale)


def _stacked(queries: Queries) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The queries that hold their item, as one matrix, labels and group sizes."""
    keep = [q for q, label in enumerate(queries.labels) if label.any()]
    features = np.vstack([queries.features[q] for q in keep])
    labels = np.concatenate([queries.labels[q] for q in keep])
    groups = np.array([len(queries.labels[q]) for q in keep])
    return features, labels, groups


def _subset(queries: Queries, rows: range) -> Queries:
    return Queries(
        [queries.features[q] for q in rows],
        [queries.labels[q] for q in rows],
        queries.channel_hits[rows.start : rows.stop],
    )
