from collections import Counter

import numpy as np
import pytest

from recommendation_service.data.window import SlidingWindow
from recommendation_service.errors import ModelFitError
from recommendation_service.training.als import ALSTrainer
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
