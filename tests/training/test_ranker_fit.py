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


def test_the_holdout_fit_starts_from_the_last_one_which_saw_no_held_out_event():
    from recommendation_service.training.ranker_refit import fit_rank_stage
    from recommendation_service.training.successors import successors

    events = series_events(n_users=200, per_user=40, noise=0.05)
    window = SlidingWindow(6_000)
    trainer = ALSTrainer(SMALL_ALS)
    calls = []

    def fit(snapshot, params, warm=None):
        calls.append(warm)
        return trainer.fit(snapshot, params, warm=warm)

    stages, cuts = [], []
    for end in (6_000, 6_400):  # a refit, then another after fewer events than it held out
        window.add_many(events[6_000 if stages else 0 : end])
        snap = window.snapshot()
        model = trainer.fit(snap)
        fold = FoldIn(snap.item_ids, model.item_factors, SMALL_ALS, RealtimeParams())
        rules, weights = successors(snap, SequenceParams(), SequenceWeights()).scorer()
        params = RankerParams(trees=10)
        stages.append(fit_rank_stage(snap, fold, rules, weights, fit, SMALL_ALS, fold.params,
                                     SequenceParams(), params,
                                     warm=stages[-1].holdout_model if stages else None))
        cut = HoldOut(snap, params.holdout, params.max_queries).cut
        cuts.append((snap.events.ts[cut - 1], snap.events.ts[cut]))  # newest fitted, oldest held
    first, second = stages
    assert calls == [None, first.holdout_model] and first.holdout_model is not None
    # What the first hold-out fit learnt from is older than anything the second holds out.
    assert first.holdout_model.snapshot.n_events < len(first.holdout_model.snapshot.events.ts)
    assert cuts[0][0] < cuts[1][1]
    assert second.holdout_model is not None and second.fitted_now
    kept = fit_rank_stage(snap, fold, rules, weights, fit, SMALL_ALS, fold.params,
                          SequenceParams(), params, keep=second.choice)  # fmt: skip
    assert kept.holdout_model is None and len(calls) == 2
