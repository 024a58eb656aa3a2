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
