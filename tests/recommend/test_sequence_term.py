"""The sequence term at request time: what follows a user's recent items, from the version's
rules and the user's fresh recent items."""

from __future__ import annotations

import numpy as np
import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.artifacts.update_files import UserVector, update_arrays
from recommendation_service.recommend.served_model import ServedModel
from recommendation_service.training.successors import SequenceParams, successors
from recommendation_service.vectors.sequences import SequenceWeights

from ..conftest import SMALL_ALS
from ..streams import series_model


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    window, model, fold = series_model(1, SMALL_ALS)
    snap = model.snapshot
    root = tmp_path_factory.mktemp("models")
    store = ModelStore(root)
    params = SequenceParams(weights=SequenceWeights(weight=4.0))
    store.publish(model, fold, successors=successors(snap, params))
    plain = ModelStore(tmp_path_factory.mktemp("plain"))
    plain.publish(model, fold)
    return store, plain, window, fold


def load(store: ModelStore) -> ServedModel:
    return ServedModel(*store.read_version())


def test_the_next_item_of_a_series_comes_first_and_says_why(published):
    store, _, window, _ = published
    model = load(store)
    assert model.sequence == SequenceWeights(weight=4.0)
    assert model.manifest["sequence"]["rules"] > 0
    hits = follows = 0
    users = list(model.user_ids)[:100]
    for user in users:
        last = window.user_history(user).items[-1]
        series, k = last[1:].split("-")
        if int(k) == 7:
            continue  # a series' last item has no next one
        rec = model.recommend(user, 10)
        nxt = f"s{series}-{int(k) + 1}"
        if nxt in window.user_history(user).items:
            continue
        hits += rec.items[0] == nxt
        follows += rec.reasons[0] == "follows_recent"
    assert hits >= 0.8 * follows and follows >= 30


def test_weight_zero_turns_the_term_off(published):
    store, _, _, _ = published
    model = load(store)
    off = SequenceWeights(weight=0.0)
    for user in list(model.user_ids)[:30]:
        rec = model.recommend(user, 10, sequence=off)
        assert "follows_recent" not in rec.reasons


def test_a_version_without_rules_serves_without_the_term(published):
    _, plain, _, _ = published
    model = load(plain)
    assert model.successors is None and model.sequence.weight == 0
    rec = model.recommend(next(iter(model.user_ids)), 10, sequence=SequenceWeights(weight=9))
    assert len(rec.items) == 10 and "follows_recent" not in rec.reasons


def test_fresh_recent_items_move_the_list_before_the_next_refit(published):
    store, _, window, fold = published
    model = load(store)
    user = next(iter(model.user_ids))
    done = set(window.user_history(user).items)
    start = next(f"s{j}-0" for j in range(60) if f"s{j}-0" in fold.item_col
                 and f"s{j}-0" not in done and f"s{j}-1" not in done)  # fmt: skip
    series = start.split("-")[0]
    history = window.user_history(user)
    cols = np.array([fold.item_col[i] for i in [*history.items, start]], dtype=np.int64)
    fresh = fold.vector_of(cols, np.ones(len(cols)), 1e9)
    assert fresh.recent[0] == fold.item_col[start]
    model.apply_update(1, update_arrays([user], [fresh]))
    rec = model.recommend(user, 10)
    assert rec.items[0] == f"{series}-1" and rec.reasons[0] == "follows_recent"


def test_updates_without_recent_items_still_apply(published):
    store = published[0]
    model = load(store)
    user = next(iter(model.user_ids))
    vector = UserVector(np.zeros(model.scoring_matrix.shape[1], np.float32),
                        np.zeros(0, np.int32), 5.0)  # fmt: skip
    arrays = update_arrays([user], [vector])
    del arrays["recent_indptr"], arrays["recent_indices"]  # as an earlier release wrote them
    model.apply_update(1, arrays)
    assert model.user_state(user).recent.size == 0
