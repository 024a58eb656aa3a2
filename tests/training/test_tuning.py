"""Tuned refits: the search picks settings that predict held-out events, within its limits."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.fold_in import FoldIn, RealtimeParams
from recommendation_service.training.params import ALSParams
from recommendation_service.training.successors import SequenceParams
from recommendation_service.training.tuning import (
    ALS_KNOBS,
    REALTIME_KNOBS,
    TuneParams,
    TuneResult,
    tune,
)

from ..conftest import category, planted_tastes
from ..streams import series_events, shuffled

#: The library defaults, with one thread so the test is steady on a shared machine.
DEFAULTS = ALSParams(num_threads=1)


@pytest.fixture(scope="module")
def taste_window():
    """The issue's stable-taste stream: 300 users, 5 categories of 40 items, 30 events each."""
    tastes = planted_tastes(n_users=300, n_items=200, categories=5)
    window = SlidingWindow(20_000)
    for k, (user, item) in enumerate(tastes.events(9000)):
        window.add(Event(user, item, 1.0, float(k)))
    return tastes, window


def taste_precision(tastes, window, als: ALSParams, realtime: RealtimeParams) -> float:
    """Share of each user's top 10 (seen excluded) in their favourite category."""
    snap = window.snapshot()
    model = ALSTrainer(als).fit(snap)
    fold = FoldIn(snap.item_ids, model.item_factors, als, realtime)
    shares = []
    for user in tastes.users:
        vector = fold.user_vector(window.user_history(user))
        scores = fold.scoring_matrix @ vector.vector
        scores[vector.seen] = -np.inf
        top = np.argsort(-scores)[:10]
        shares.append(np.mean([category(snap.item_ids[c]) == tastes.favourite[user] for c in top]))
    return float(np.mean(shares))


def test_tuning_finds_the_capacity_a_small_stable_window_needs(taste_window):
    tastes, window = taste_window
    trainer = ALSTrainer(DEFAULTS)
    result = tune(window.snapshot(), DEFAULTS, RealtimeParams(), TuneParams(), trainer.fit)
    assert result.skipped is None
    assert result.als.factors < DEFAULTS.factors
    fits = {(t["factors"], t["regularization"], t["alpha"]) for t in result.trials}
    assert len(fits) <= TuneParams().max_fits
    # The incumbent is the first trial; the winner scores better on the held-out events.
    first, best = result.trials[0], max(result.trials, key=lambda t: t["ndcg"])
    assert first["factors"] == 64 and best["ndcg"] > first["ndcg"]
    before = taste_precision(tastes, window, DEFAULTS, RealtimeParams())
    after = taste_precision(tastes, window, result.als, result.realtime)
    assert after >= 0.95 > before


def test_pinned_settings_are_never_searched(taste_window):
    _, window = taste_window
    trainer = ALSTrainer(DEFAULTS)
    pinned = TuneParams(pinned=frozenset({"factors", "recent_boost"}))
    result = tune(window.snapshot(), DEFAULTS, RealtimeParams(), pinned, trainer.fit)
    assert {t["factors"] for t in result.trials} == {64}
    assert {t["recent_boost"] for t in result.trials} == {RealtimeParams().recent_boost}
    assert result.als.factors == 64
    # The other settings are still searched.
    assert len({t["regularization"] for t in result.trials}) > 1


def test_fits_are_capped(taste_window):
    _, window = taste_window
    trainer = ALSTrainer(DEFAULTS)
    result = tune(
        window.snapshot(), DEFAULTS, RealtimeParams(), TuneParams(max_fits=2), trainer.fit
    )
    assert len({(t["factors"], t["regularization"], t["alpha"]) for t in result.trials}) == 2


def test_a_window_too_small_to_judge_keeps_the_configured_settings():
    window = SlidingWindow(1000)
    for k in range(40):
        window.add(Event(f"u{k % 7}", f"i{k % 5}", 1.0, float(k)))
    trainer = ALSTrainer(DEFAULTS)
    result = tune(window.snapshot(), DEFAULTS, RealtimeParams(), TuneParams(), trainer.fit)
    assert result.skipped and "held-out events" in result.skipped
    assert result.als == DEFAULTS and result.trials == []


def test_noise_does_not_move_the_settings():
    # Every user picks items uniformly at random: no setting predicts better than another,
    # and the incumbent must stay.
    rng = np.random.default_rng(3)
    window = SlidingWindow(20_000)
    for k in range(8000):
        window.add(Event(f"u{rng.integers(400)}", f"i{rng.integers(300)}", 1.0, float(k)))
    trainer = ALSTrainer(DEFAULTS)
    result = tune(window.snapshot(), DEFAULTS, RealtimeParams(), TuneParams(), trainer.fit)
    assert result.skipped is None and len(result.trials) > 3
    assert result.als == DEFAULTS


def test_noise_keeps_the_served_settings_too():
    # The last tuning chose 32 factors: on a hold-out that favours nothing, the next tuning
    # keeps them (no swing back to the configured 64), though it tries the configured value.
    rng = np.random.default_rng(3)
    window = SlidingWindow(20_000)
    for k in range(8000):
        window.add(Event(f"u{rng.integers(400)}", f"i{rng.integers(300)}", 1.0, float(k)))
    served = TuneResult(replace(DEFAULTS, factors=32), RealtimeParams(recent_boost=4.0))
    trainer = ALSTrainer(DEFAULTS)
    result = tune(window.snapshot(), DEFAULTS, RealtimeParams(), TuneParams(), trainer.fit,
                  incumbent=served)  # fmt: skip
    assert result.trials[0]["factors"] == 32 and result.trials[0]["recent_boost"] == 4.0
    assert {t["factors"] for t in result.trials} >= {64, 32, 16}
    assert result.als == served.als and result.realtime == served.realtime


def test_a_second_tuning_from_the_first_one_agrees(taste_window):
    _, window = taste_window
    trainer = ALSTrainer(DEFAULTS)
    snap = window.snapshot()
    first = tune(snap, DEFAULTS, RealtimeParams(), TuneParams(), trainer.fit)
    second = tune(snap, DEFAULTS, RealtimeParams(), TuneParams(), trainer.fit, incumbent=first)
    assert first.als.factors < DEFAULTS.factors
    assert second.as_dict()["winner"] == first.as_dict()["winner"]
    # Its steps are the configured value's, so the way back to 64 stays open.
    assert DEFAULTS.factors in {t["factors"] for t in second.trials}


@pytest.mark.parametrize(
    "kwargs",
    [{"every": 0}, {"holdout": 0.6}, {"max_fits": 9}, {"pinned": frozenset({"iterations"})}],
)
def test_tune_params_reject_nonsense(kwargs):
    with pytest.raises(ValueError):
        TuneParams(**kwargs)


def test_a_candidate_that_fails_to_fit_is_skipped(taste_window):
    from recommendation_service.errors import ModelFitError

    _, window = taste_window
    trainer = ALSTrainer(DEFAULTS)

    def fit(snapshot, params):
        if params.factors == 32:
            raise ModelFitError("ALS produced non-finite factors")
        return trainer.fit(snapshot, params)

    result = tune(window.snapshot(), DEFAULTS, RealtimeParams(), TuneParams(), fit)
    failed = [t for t in result.trials if "error" in t]
    assert len(failed) == 1 and failed[0]["factors"] == 32
    assert result.als.factors == 16  # the search went on past it


def test_when_no_candidate_fits_the_configured_settings_stay(taste_window):
    from recommendation_service.errors import ModelFitError

    _, window = taste_window

    def fit(snapshot, params):
        raise ModelFitError("no")

    result = tune(window.snapshot(), DEFAULTS, RealtimeParams(), TuneParams(), fit)
    assert result.skipped == "no candidate could be fitted"
    assert result.als == DEFAULTS and result.realtime == RealtimeParams()


def sequence_trials(result) -> dict[float, float]:
    """NDCG of each sequence weight tried (with the winning ALS and real-time settings)."""
    return {
        t["sequence_weight"]: t["ndcg"]
        for t in result.trials
        if "sequence_weight" in t and t.get("sequence_depth") == result.sequence.depth
    }


def tuned_sequence(events):
    window = SlidingWindow(20_000)
    for e in events:
        window.add(e)
    trainer = ALSTrainer(DEFAULTS)
    result = tune(window.snapshot(), DEFAULTS, RealtimeParams(), TuneParams(), trainer.fit,
                  SequenceParams())  # fmt: skip
    return result, window


def test_a_stream_with_planted_order_ends_with_a_high_sequence_weight():
    result, _ = tuned_sequence(series_events(n_users=600, per_user=40, noise=0.1, seed=4))
    assert result.sequence.weight >= 4.0, result.trials[-8:]
    tried = sequence_trials(result)
    assert tried[result.sequence.weight] > tried[0.0]
    # The same events with each user's order shuffled: what is left is which items go
    # together, not which comes next, and the weight chosen is lower.
    unordered, _ = tuned_sequence(shuffled(series_events(n_users=600, per_user=40, noise=0.1,
                                                         seed=4), seed=5))  # fmt: skip
    assert unordered.sequence.weight < result.sequence.weight


def test_a_stream_without_order_loses_nothing_to_the_term(taste_window):
    tastes, ordered = taste_window
    result, window = tuned_sequence(shuffled(ordered.events(), seed=5))
    # Whatever weight wins, it predicts the held-out events at least as well as none.
    tried = sequence_trials(result)
    assert tried.get(result.sequence.weight, tried[0.0]) >= tried.get(0.0, 0.0)
    assert taste_precision(tastes, window, result.als, result.realtime) >= 0.95


def test_pinned_sequence_settings_are_not_searched(taste_window):
    _, window = taste_window
    trainer = ALSTrainer(DEFAULTS)
    pinned = frozenset({"sequence_weight", "sequence_depth", *ALS_KNOBS, *REALTIME_KNOBS})
    result = tune(window.snapshot(), DEFAULTS, RealtimeParams(), TuneParams(pinned=pinned),
                  trainer.fit, SequenceParams())  # fmt: skip
    assert result.sequence == SequenceParams().weights and len(result.trials) == 1
