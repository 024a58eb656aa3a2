from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from implicit.cpu.als import calculate_loss

from recommendation_service.data.window import SlidingWindow
from recommendation_service.errors import ModelFitError
from recommendation_service.training.als import ALSTrainer, carried_over
from recommendation_service.training.trained_model import popularity

from ..conftest import SMALL_ALS, category, planted_events, planted_tastes


def test_factors_have_the_snapshot_shape(planted_model):
    snap = planted_model.snapshot
    assert planted_model.user_factors.shape == (snap.n_users, SMALL_ALS.factors)
    assert planted_model.item_factors.shape == (snap.n_items, SMALL_ALS.factors)
    assert planted_model.user_factors.dtype == np.float32
    assert planted_model.training_seconds >= 0


def test_learns_planted_tastes(planted_model):
    tastes = planted_tastes()
    snap = planted_model.snapshot
    hits = 0
    for row, user in enumerate(snap.user_ids):
        scores = planted_model.item_factors @ planted_model.user_factors[row]
        top = [snap.item_ids[c] for c in np.argsort(-scores)[:5]]
        favourite = Counter(category(i) for i in top).most_common(1)[0][0]
        hits += favourite == tastes.favourite[user]
    assert hits / snap.n_users > 0.9


def test_empty_window_is_a_fit_error():
    with pytest.raises(ModelFitError):
        ALSTrainer(SMALL_ALS).fit(SlidingWindow(3).snapshot())


def test_fit_emits_no_blas_warning():
    # filterwarnings=error turns implicit's OpenBLAS thread warning into a failure.
    w = SlidingWindow(100)
    for e in planted_events(100):
        w.add(e)
    ALSTrainer(SMALL_ALS).fit(w.snapshot())


def test_popularity_counts_distinct_users(planted_model):
    order, counts = popularity(planted_model.snapshot)
    users_per_item = planted_model.snapshot.matrix.getnnz(axis=0)
    assert np.array_equal(counts, users_per_item[order])
    assert np.all(np.diff(counts) <= 0)
    assert sorted(order.tolist()) == list(range(planted_model.snapshot.n_items))


def _windows(first: int, moved: int):
    """Two windows of the planted stream: the second moved on by ``moved`` events."""
    events = list(planted_events(first + moved))
    before, after = SlidingWindow(first), SlidingWindow(first)
    for e in events[:first]:
        before.add(e)
    for e in events:
        after.add(e)
    return before.snapshot(), after.snapshot()


def test_a_warm_refit_starts_from_the_previous_factors_and_still_learns():
    before, after = _windows(1500, 300)
    trainer = ALSTrainer(replace(SMALL_ALS, warm_iterations=2))
    previous = trainer.fit(before)
    warm = trainer.fit(after, warm=previous)
    cold = trainer.fit(after)
    assert warm.item_factors.shape == cold.item_factors.shape
    # Two sweeps from the last fit land near a cold fit of all the sweeps, not near two
    # sweeps from random factors.
    # implicit's own training loss, on the confidence matrix it fits.
    short = ALSTrainer(replace(SMALL_ALS, iterations=2, warm_iterations=0)).fit(after)
    confidence = (after.matrix * SMALL_ALS.alpha).astype(np.float32).tocsr()

    def loss(model):
        return calculate_loss(
            confidence, model.user_factors, model.item_factors, SMALL_ALS.regularization,
            num_threads=1,
        )  # fmt: skip

    assert loss(warm) - loss(cold) < 0.25 * (loss(short) - loss(cold))
    tastes = planted_tastes()
    snap = warm.snapshot
    hits = 0
    for row, user in enumerate(snap.user_ids):
        top = np.argsort(-(warm.item_factors @ warm.user_factors[row]))[:5]
        favourite = Counter(category(snap.item_ids[c]) for c in top).most_common(1)[0][0]
        hits += favourite == tastes.favourite[user]
    assert hits / snap.n_users > 0.9


def test_carried_over_keeps_each_ids_row_and_starts_new_ids_small():
    rng = np.random.default_rng(0)
    old = np.arange(6, dtype=np.float32).reshape(3, 2) + 1
    rows = carried_over(old, ["a", "b", "c"], ["c", "x", "a"], rng)
    assert rows[0].tolist() == old[2].tolist() and rows[2].tolist() == old[0].tolist()
    assert (rows[1] >= 0).all() and (rows[1] < 0.01).all()


def test_warm_iterations_are_capped_by_iterations_and_never_negative():
    with pytest.raises(ValueError, match="warm-iterations"):
        replace(SMALL_ALS, warm_iterations=-1)
    before, after = _windows(1500, 300)
    trainer = ALSTrainer(replace(SMALL_ALS, iterations=2, warm_iterations=9))
    warm = trainer.fit(after, warm=trainer.fit(before))
    assert np.isfinite(warm.item_factors).all()
