"""Live quality: each event is checked against what the service would have answered."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommendation_service.builder.observability.live_quality import LiveQuality
from recommendation_service.config.builder import LiveQualityParams
from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow
from recommendation_service.training.fold_in import FoldIn, RealtimeParams
from recommendation_service.vectors.top_n import top_n

from ..conftest import planted_events


@pytest.fixture(scope="module")
def served(planted_model):
    snap = planted_model.snapshot
    return FoldIn(snap.item_ids, planted_model.item_factors, planted_model.params, RealtimeParams())


@pytest.fixture
def window():
    w = SlidingWindow(100_000)
    for e in planted_events():
        w.add(e)
    return w


def service_top(fold: FoldIn, window: SlidingWindow, user: str, k: int = 10) -> list[str]:
    vector = fold.user_vector(window.user_history(user))
    scores = fold.scoring_matrix @ vector.vector
    scores[vector.seen] = -np.inf
    return [fold_items(fold)[c] for c in top_n(scores, k).tolist()]


def fold_items(fold: FoldIn) -> list[str]:
    return sorted(fold.item_col, key=fold.item_col.get)


def test_a_hit_counts_with_its_rank_and_a_miss_counts_zero(served, window):
    quality = LiveQuality(LiveQualityParams(budget=1.0))
    top = service_top(served, window, "user-00001")
    assert quality.score(Event("user-00001", top[2], 1.0, 1e9), window, served)
    seen = set(window.user_history("user-00001").items)
    miss = next(i for i in reversed(fold_items(served)) if i not in top and i not in seen)
    assert quality.score(Event("user-00001", miss, 1.0, 1e9), window, served)
    summary = quality.summary()
    assert summary["events"] == 2
    assert summary["service"]["hit_rate"] == 0.5
    assert summary["service"]["ndcg"] == pytest.approx(0.5 / math.log2(4), abs=1e-4)


def test_popularity_is_scored_side_by_side(served, window):
    quality = LiveQuality(LiveQualityParams(budget=1.0))
    seen = set(window.user_history("user-00002").items)
    best = window.popular_items(1, seen)[0]
    quality.score(Event("user-00002", best, 1.0, 1e9), window, served)
    assert quality.summary()["popularity"] == {"hit_rate": 1.0, "ndcg": 1.0}


def test_unknown_users_negative_events_and_no_model_are_not_scored(served, window):
    quality = LiveQuality(LiveQualityParams(budget=1.0))
    assert not quality.score(Event("someone-new", "x", 1.0, 0.0), window, served)
    assert not quality.score(Event("user-00001", "x", -1.0, 0.0), window, served)
    assert not quality.score(Event("user-00001", "x", 1.0, 0.0), window, None)
    assert quality.summary() == {"k": 10, "events": 0, "scored_total": 0}


def test_budget_zero_turns_scoring_off(served, window):
    quality = LiveQuality(LiveQualityParams(budget=0.0))
    assert not quality.score(Event("user-00001", "x", 1.0, 0.0), window, served)
    assert quality.skipped == 1


def test_figures_cover_only_the_last_size_events(served, window):
    quality = LiveQuality(LiveQualityParams(size=3, budget=1.0))
    top = service_top(served, window, "user-00003")
    for _ in range(3):
        quality.score(Event("user-00003", top[0], 1.0, 1e9), window, served)
    seen = set(window.user_history("user-00003").items)
    miss = next(i for i in reversed(fold_items(served)) if i not in top and i not in seen)
    for _ in range(3):
        quality.score(Event("user-00003", miss, 1.0, 1e9), window, served)
    summary = quality.summary()
    assert summary["events"] == 3 and summary["scored_total"] == 6
    assert summary["service"] == {"hit_rate": 0.0, "ndcg": 0.0}


def test_params_reject_nonsense():
    with pytest.raises(ValueError):
        LiveQualityParams(budget=2)


def test_a_rank_stage_scores_its_rankers_side_by_side():
    """On a series stream, with a sum that has no sequence term, the learned ranker the
    version ranks by finds the next item of the series live more often than the sum."""
    from recommendation_service.training.als import ALSTrainer
    from recommendation_service.training.ranker_fit import RankerParams
    from recommendation_service.training.ranker_refit import fit_rank_stage
    from recommendation_service.training.successors import SequenceParams, successors
    from recommendation_service.vectors.sequences import SequenceWeights

    from ..conftest import SMALL_ALS
    from ..streams import series_events

    events = series_events(n_users=200, per_user=40, noise=0.05, seed=6)
    window = SlidingWindow(100_000)
    window.add_many(events[:7000])
    snap = window.snapshot()
    model = ALSTrainer(SMALL_ALS).fit(snap)
    fold = FoldIn(snap.item_ids, model.item_factors, SMALL_ALS, RealtimeParams())
    succ = successors(snap, SequenceParams(), SequenceWeights(weight=0.0))
    rules, weights = succ.scorer()
    stage = fit_rank_stage(snap, fold, rules, weights, ALSTrainer(SMALL_ALS).fit, SMALL_ALS,
                           RealtimeParams(), SequenceParams(), RankerParams(trees=30))  # fmt: skip
    assert stage.choice.chosen in ("trees", "linear"), stage.choice.reason
    quality = LiveQuality(LiveQualityParams(budget=1.0))
    quality.serve(stage)
    for e in events[7000:7600]:
        quality.score(e, window, fold, (rules, weights))
        window.add(e)
    summary = quality.summary()
    assert summary["events"] > 300
    assert summary["service"] == summary["learned ranker"]
    assert summary["service"]["hit_rate"] > summary["sum ranker"]["hit_rate"] + 0.02
    # No sequence term in the sum: it finds what ALS finds (ties may order differently).
    assert summary["sum ranker"]["hit_rate"] == summary["ALS fold-in"]["hit_rate"]
