"""Synthetic trained models of any size, for serving benchmarks.

Item factors are drawn around a few hundred topic centres (as ALS factors of real catalogs
cluster by taste), users near one or two topics, each user with a few seen items. No training
is involved, so a 1,000,000-item model takes seconds to make.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommendation_service.data.window import WindowSnapshot
from recommendation_service.training.params import ALSParams
from recommendation_service.training.trained_model import TrainedModel


def synthetic_model(n_items: int, n_users: int, factors: int = 64, seed: int = 0) -> TrainedModel:
    rng = np.random.default_rng(seed)
    topics = max(8, int(np.sqrt(n_items) / 2))
    centres = rng.normal(0, 1, size=(topics, factors)).astype(np.float32)
    item_topic = rng.integers(topics, size=n_items)
    items = centres[item_topic] + rng.normal(0, 0.6, size=(n_items, factors)).astype(np.float32)
    items *= rng.lognormal(0, 0.3, size=(n_items, 1)).astype(np.float32)  # popularity spread
    user_topic = rng.integers(topics, size=n_users)
    users = 0.1 * centres[user_topic] + 0.05 * rng.normal(size=(n_users, factors))
    seen_per_user = 5
    cols = rng.integers(n_items, size=n_users * seen_per_user)
    rows = np.repeat(np.arange(n_users), seen_per_user)
    matrix = sp.csr_matrix(
        (np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(n_users, n_items)
    )
    matrix.sum_duplicates()
    snapshot = WindowSnapshot(
        matrix=matrix,
        seen=matrix.copy(),
        user_ids=[f"user-{u}" for u in range(n_users)],
        item_ids=[f"item-{i}" for i in range(n_items)],
        n_events=len(cols),
        last_ts=0.0,
    )
    return TrainedModel(users.astype(np.float32), items, snapshot, ALSParams(factors=factors), 0.0)
