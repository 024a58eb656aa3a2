"""The rank stage's trainer: queries from a refit's hold-out, and the choice between rankers."""

from __future__ import annotations

import numpy as np

from recommendation_service.data.window import SlidingWindow
from recommendation_service.ranking.channels import CHANNELS
from recommendation_service.ranking.features import FEATURE_NAMES
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.fold_in import FoldIn, RealtimeParams
from recommendation_service.training.holdout import HoldOut
from recommendation_service.training.ranker_fit import (
    RankerParams,
    fit_rankers,
    ndcg_gains,
)
from recommendation_service.training.ranker_queries import rank_arrays, training_queries
from recommendation_service.training.successors import SequenceParams
from recommendation_service.vectors.sequences import SequenceWeights

from ..conftest import SMALL_ALS
from ..streams import series_events, shuffled


def queries_of(events, holdout: float = 0.2):
    window = SlidingWindow(100_000)
    window.add_many(events)
    snap = window.snapshot()
    split = HoldOut(snap, holdout, 2000, SequenceParams())
    model = ALSTrainer(SMALL_ALS).fit(split.train)
    fold = FoldIn(snap.item_ids, model.item_factors, SMALL_ALS, RealtimeParams())
    ev = snap.events
    # The sum without its sequence term: what an orderless tuning would serve.
    arrays = rank_arrays(fold, split.train.seen, ev.cols[: split.cut], ev.weights[: split.cut],
                         split.rules, SequenceWeights(weight=0.0))  # fmt: skip
    return split, training_queries(split, arrays, fold, model.user_factors)


def test_queries_label_the_next_item_among_the_candidates():
    split, queries = queries_of(series_events(n_users=150, per_user=30))
    assert len(queries) == len(split) > 200
    assert all(f.shape == (len(label), len(FEATURE_NAMES)) for f, label in
               zip(queries.features, queries.labels))  # fmt: skip
    assert all(label.sum() <= 1 for label in queries.labels)
    held = np.array([label.any() for label in queries.labels])
    # A label exactly when some channel brought the item.
    np.testing.assert_array_equal(held, queries.channel_hits.any(axis=1))
    follows = queries.channel_hits[:, CHANNELS.index("follows")].mean()
    assert follows > 0.5  # series: what comes next follows what came before


def test_a_learned_ranker_wins_where_order_predicts_and_the_sum_ignores_it():
    _, queries = queries_of(series_events(n_users=300, per_user=40))
    choice = fit_rankers(queries, RankerParams(trees=40))
    assert choice.chosen in ("linear", "trees"), choice.reason
    assert set(choice.rankers) == {"sum", "linear", "trees"}
    v = choice.validation
    assert v[choice.chosen]["ndcg"] > v["sum"]["ndcg"] + 0.05
    assert choice.as_dict()["features"] == list(FEATURE_NAMES)
    gains = ndcg_gains(choice.rankers[choice.chosen], queries)
    assert gains.shape == (len(queries),) and 0 < gains.mean() <= 1


def test_the_sum_stays_without_enough_queries():
    _, queries = queries_of(shuffled(series_events(n_users=20, per_user=10)))
    choice = fit_rankers(queries, RankerParams())
    assert choice.chosen == "sum" and "too few" in choice.reason
    assert set(choice.rankers) == {"sum"}
