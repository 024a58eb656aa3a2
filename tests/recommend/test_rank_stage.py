"""The rank stage at request time: a version published with learned rankers ranks its
candidates by the one its refit chose; requests may ask for another, or for the sum."""

from __future__ import annotations

import numpy as np
import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.artifacts.update_files import UserVector, update_arrays
from recommendation_service.recommend.rank_stage import REASONS
from recommendation_service.recommend.served_model import ServedModel
from recommendation_service.rules.item_rules import ItemRules

from ..conftest import SMALL_ALS
from ..streams import ranked_series_model


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    window, model, fold, succ, stage = ranked_series_model(3, SMALL_ALS, trees=40)
    store = ModelStore(tmp_path_factory.mktemp("models"))
    store.publish(model, fold, successors=succ, rank_stage=stage)
    plain = ModelStore(tmp_path_factory.mktemp("plain"))
    plain.publish(model, fold, successors=succ)
    return store, plain, window, fold


def load(store: ModelStore) -> ServedModel:
    return ServedModel(*store.read_version())


def next_item_hits(model: ServedModel, window, ranker: str | None) -> tuple[int, int]:
    """(lists whose first item is the next of the user's series, users asked)."""
    hits = asked = 0
    for user in list(model.user_ids)[:120]:
        items = window.user_history(user).items
        series, k = items[-1][1:].split("-")
        nxt = f"s{series}-{int(k) + 1}"
        if int(k) == 7 or nxt in items:
            continue
        asked += 1
        hits += model.recommend(user, 10, ranker=ranker).items[0] == nxt
    return hits, asked


def test_the_version_ranks_by_the_learned_ranker_its_refit_chose(published):
    store, _, window, _ = published
    model = load(store)
    info = model.manifest["ranker"]
    assert info["chosen"] in ("trees", "linear"), info["reason"]
    assert model.rank_stage.chosen == info["chosen"]
    learned, asked = next_item_hits(model, window, None)
    summed, _ = next_item_hits(model, window, "sum")
    # The sum here has no sequence term: the learned ranker found the order anyway.
    assert asked >= 30 and learned >= 0.7 * asked and learned > summed + 0.3 * asked


def test_lists_leave_out_seen_items_and_say_which_channel_brought_each(published):
    store, _, window, _ = published
    model = load(store)
    for user in list(model.user_ids)[:20]:
        rec = model.recommend(user, 15)
        assert len(rec.items) == 15 == len(set(rec.items))
        assert not set(rec.items) & set(window.user_history(user).items)
        assert set(rec.reasons) <= set(REASONS.values())
        assert rec.scores == sorted(rec.scores, reverse=True)
        assert rec.source == "model"


def test_rules_hold_under_the_learned_ranker(published):
    store, _, _, _ = published
    model = load(store)
    user = model.user_ids[0]
    rec = model.recommend(user, 10, ItemRules(exclude=frozenset(model.recommend(user, 3).items)))
    assert len(rec.items) == 10 and not set(rec.items) & set(model.recommend(user, 3).items)


def test_a_request_may_ask_for_the_sum_or_a_kind(published):
    store, plain, _, _ = published
    model, old = load(store), load(plain)
    user = model.user_ids[5]
    # The sum over a version with a rank stage is the list of a version without one.
    assert model.recommend(user, 10, ranker="sum").items == old.recommend(user, 10).items
    # A version without a rank stage answers every ranker with the sum.
    assert old.recommend(user, 10, ranker="trees").items == old.recommend(user, 10).items
    for kind in ("linear", "trees", "learned"):
        assert len(model.recommend(user, 10, ranker=kind).items) == 10


def test_new_items_are_placed_where_the_sum_would_put_them(published):
    store, _, _, fold = published
    model = load(store)
    user = model.user_ids[7]
    state = model.user_state(user)
    # A brand-new item whose row is the user's own direction: the sum ranks it first.
    row = np.concatenate([state.vector[: fold.factors] * 10, np.zeros(fold.factors)])
    vector = UserVector(state.vector, state.seen, 1.0, state.recent)
    arrays = update_arrays([user], [vector], None, ["brand-new"], [row.astype(np.float32)])
    model.apply_update(1, arrays)
    rec = model.recommend(user, 10)
    assert "brand-new" in rec.items[:3]
    assert rec.reasons[rec.items.index("brand-new")] == "new_item"
    assert rec.scores == sorted(rec.scores, reverse=True)
