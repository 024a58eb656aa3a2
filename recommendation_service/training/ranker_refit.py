"""The rank stage of one refit: the version's rank arrays, and rankers fitted on its hold-out.

At a refit the window's newest events are held out (``RankerParams.holdout``), ALS is fitted
on the rest with the refit's own settings (a model fitted with fewer sweeps scores on another
scale, and the trees learn thresholds on that scale) and started, as the served model is, from
the last such fit (``warm``: fitted on events older than this hold-out, so no feature sees the
events it is trained to predict), and the hold-out's events become the
rankers' training queries (training/ranker_queries.py, training/ranker_fit.py). The version's
own arrays come from the model fitted on the whole window. Both the builder and
``recsvc evaluate``'s replay go through :func:`fit_rank_stage`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..data.window import WindowSnapshot
from ..ranking.channels import RankArrays
from ..ranking.rankers import SumRanker
from ..vectors.sequences import SequenceWeights
from .fold_in import FoldIn, RealtimeParams
from .holdout import HoldOut
from .params import ALSParams
from .ranker_fit import RankerChoice, RankerParams, fit_rankers
from .ranker_queries import rank_arrays, training_queries
from .successors import SequenceParams


class _Factors(Protocol):
    """What the hold-out's fit gives back (a TrainedModel, which imports this module)."""

    item_factors: np.ndarray
    user_factors: np.ndarray


#: The hold-out's fit: (training part, settings, the fit to start from or None) -> factors.
HoldoutFit = Callable[[WindowSnapshot, ALSParams, "_Factors | None"], _Factors]


#: Fewest held-out events worth fitting a model for (the rankers need 50 of them to learn
#: from and 50 to be chosen on, and not every event's item is among its candidates).
MIN_QUERIES = 150


@dataclass
class RankStage:
    """What a version carries for its rank stage."""

    arrays: RankArrays
    choice: RankerChoice
    #: Each user's newest event time in the window (the ``user_gap`` feature of users
    #: without a fresh vector).
    user_last_ts: np.ndarray
    #: Wall seconds of the whole stage (hold-out fit, queries, rankers, arrays).
    seconds: float = 0.0
    #: Whether the rankers were fitted at this refit (False: the last refit's were kept).
    fitted_now: bool = True
    #: The hold-out's ALS fit (None when the rankers were kept): the next fit starts from it.
    holdout_model: _Factors | None = None

    def version_arrays(self) -> dict[str, np.ndarray]:
        """The stage's arrays by file stem (ranking/rank_arrays.py reads them back)."""
        a = self.arrays
        out = {
            "rank_item_stats": a.item_stats,
            "rank_popular": a.popular,
            "rank_trending": a.trending,
            "rank_user_last_ts": self.user_last_ts,
        }
        if a.neighbours is not None:
            out |= {
                "neighbours_indptr": a.neighbours[0],
                "neighbours_indices": a.neighbours[1],
                "neighbours_weights": a.neighbours[2],
            }
        for ranker in self.choice.rankers.values():
            out |= ranker.arrays()
        return out

    def manifest(self) -> dict:
        return {
            **self.choice.as_dict(),
            "stage_seconds": round(self.seconds, 3),
            "fitted_at_this_refit": self.fitted_now,
        }


def fit_rank_stage(
    snap: WindowSnapshot,
    fold: FoldIn,
    rules: tuple | None,
    weights: SequenceWeights,
    fit: HoldoutFit,
    als: ALSParams,
    realtime: RealtimeParams,
    sequence: SequenceParams | None,
    params: RankerParams,
    keep: RankerChoice | None = None,
    warm: _Factors | None = None,
) -> RankStage:
    """The rank stage of a refit of ``snap`` whose fitted model has fold-in ``fold`` and
    sequential ``rules`` (CSR arrays, or None), the sum weighing them by ``weights``.

    ``fit`` fits ALS on the hold-out's training part with ``als``, starting from ``warm`` (the
    last stage's ``holdout_model``), and ``realtime`` folds its users in. With ``keep``, no
    ranker is fitted: the version carries ``keep``'s rankers.
    """
    start = time.perf_counter()
    ev = snap.events
    if ev is None or ev.weights is None:
        raise ValueError("the snapshot carries no events to hold out")
    choice, holdout_model = (
        (keep, None)
        if keep is not None
        else _fit_choice(snap, weights, fit, als, realtime, sequence, params, warm)
    )
    arrays = rank_arrays(fold, snap.seen, ev.cols, ev.weights, rules, weights)
    last_ts = np.zeros(snap.n_users)
    np.maximum.at(last_ts, ev.rows, ev.ts)
    seconds = time.perf_counter() - start
    return RankStage(arrays, choice, last_ts, seconds, keep is None, holdout_model)


def _fit_choice(
    snap, weights, fit, als, realtime, sequence, params, warm
) -> tuple[RankerChoice, _Factors | None]:
    """Rankers fitted on the queries of ``snap``'s hold-out (see the module), and the
    hold-out's ALS fit."""
    ev = snap.events
    split = HoldOut(snap, params.holdout, params.max_queries, sequence)
    if len(split) < MIN_QUERIES:
        reason = f"{len(split)} held-out events to learn from: too few"
        return RankerChoice("sum", {"sum": SumRanker()}, queries=len(split), reason=reason), None
    train_model = fit(split.train, als, warm)
    train_fold = FoldIn(snap.item_ids, train_model.item_factors, als, realtime)
    train_arrays = rank_arrays(
        train_fold, split.train.seen, ev.cols[: split.cut], ev.weights[: split.cut],
        split.rules, weights,
    )  # fmt: skip
    queries = training_queries(split, train_arrays, train_fold, train_model.user_factors)
    return fit_rankers(queries, params), train_model
