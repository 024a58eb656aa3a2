"""New items between refits: folded in from their users, recommended to similar users."""

from __future__ import annotations

import numpy as np
import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.builder.fresh.state import fresh_state
from recommendation_service.data.catalog import (
    CATALOG_FILE,
    CatalogEntry,
    CatalogSnapshot,
    write_catalog,
)
from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow
from recommendation_service.recommend.served_model import ServedModel
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.fold_in import FoldIn, RealtimeParams
from recommendation_service.training.params import ALSParams

from ..conftest import SMALL_ALS, category, planted_events, planted_tastes

N_USERS = 200


@pytest.fixture
def served(tmp_path):
    """A published model of planted tastes, its window, and a fold-in that places items."""
    window = SlidingWindow(100_000)
    for e in planted_events(8000, n_users=N_USERS):
        window.add(e)
    model = ALSTrainer(SMALL_ALS).fit(window.snapshot())
    snap = model.snapshot
    fold = FoldIn(
        snap.item_ids, model.item_factors, model.params, RealtimeParams(), model.user_factors
    )
    store = ModelStore(tmp_path)
    manifest = store.publish(model, fold)
    return store, manifest, window, fold


def test_a_new_item_reaches_users_of_its_taste_before_the_next_refit(served):
    store, manifest, window, fold = served
    tastes = planted_tastes(n_users=N_USERS)
    fans_taste = tastes.favourite["user-00000"]
    same = [u for u in tastes.users if tastes.favourite[u] == fans_taste]
    other = [u for u in tastes.users if tastes.favourite[u] != fans_taste]
    fans, others_of_taste = same[:20], same[20:]
    assert len(others_of_taste) >= 10
    new_item = f"{fans_taste}-brand-new"
    for k, user in enumerate(fans):
        window.add(Event(user, new_item, 1.0, 1e6 + k))
    arrays = fresh_state(window, fold, fans, [new_item])
    store.write_update(manifest["name"], 1, arrays)

    model = ServedModel(*store.read_version())
    model.apply_update(1, store.read_update(manifest["name"], 1))
    assert model.new_items.ids == (new_item,)
    reached = sum(new_item in model.recommend(u, 10).items for u in others_of_taste)
    # 20 fans make it about as strong as an item of middling popularity in that category.
    assert reached / len(others_of_taste) >= 0.6
    assert not any(new_item in model.recommend(u, 10).items for u in other)
    # Its fans touched it: never recommended back to them.
    assert not any(new_item in model.recommend(u, 10).items for u in fans)
    # The rest of the list still follows the taste.
    reached_user = next(u for u in others_of_taste if new_item in model.recommend(u, 10).items)
    picked = model.recommend(reached_user, 10)
    assert picked.reasons[picked.items.index(new_item)] == "new_item"
    # Out of stock in the catalog: a new item is filtered like any other.
    write_catalog(store.root, {new_item: CatalogEntry(available=False)}, {})
    catalog = CatalogSnapshot.read(store.root / CATALOG_FILE)
    assert new_item not in model.recommend(reached_user, 10, catalog=catalog).items
    rec = model.recommend(others_of_taste[0], 10)
    assert sum(category(i) == fans_taste for i in rec.items) >= 8
    assert rec.scores == sorted(rec.scores, reverse=True)


def test_items_the_version_knows_get_no_new_row_and_unplaceable_items_are_skipped(served):
    _, _, window, fold = served
    known = window.snapshot().item_ids[0]
    window.add(Event("user-00001", known, 1.0, 1e6))
    # A new item whose only user is a newcomer with nothing else: no vector to place it by.
    window.add(Event("newcomer", "mystery-item", 1.0, 1e6))
    arrays = fresh_state(window, fold, ["user-00001", "newcomer"], [known, "mystery-item"])
    assert len(arrays["new_item_rows"]) == 0
    assert len(arrays["vectors"]) == 1  # the newcomer cannot be placed either


def test_nothing_to_write_gives_none(served):
    _, _, window, fold = served
    assert fresh_state(window, fold, ["nobody"], ["nothing"]) is None


def test_a_fold_in_without_user_factors_places_no_items(served):
    _, _, window, fold = served
    plain = FoldIn(list(fold.item_col), fold._y, fold.als, fold.params)
    window.add(Event("user-00002", "another-new-item", 1.0, 1e6))
    arrays = fresh_state(window, plain, ["user-00002"], ["another-new-item"])
    assert len(arrays["new_item_rows"]) == 0
    assert np.isfinite(arrays["vectors"]).all()


def test_new_items_with_few_events_do_not_flood_other_tastes(tmp_path):
    # A refit on 2,000 events, then 900 more bring a few dozen items with one or two events.
    events = planted_events(3000)
    window = SlidingWindow(10_000)
    for e in events[:2000]:
        window.add(e)
    # The default 64 factors: with few events per item, long one-event rows come out.
    als = ALSParams(factors=64, iterations=15, regularization=0.05, num_threads=1)
    model = ALSTrainer(als).fit(window.snapshot())
    fold = FoldIn(model.snapshot.item_ids, model.item_factors, model.params, RealtimeParams(),
                  model.user_factors)  # fmt: skip
    store = ModelStore(tmp_path)
    manifest = store.publish(model, fold)
    for e in events[2000:2900]:
        window.add(e)
    later = events[2000:2900]
    users, items = sorted({e.user for e in later}), sorted({e.item for e in later})
    store.write_update(manifest["name"], 1, fresh_state(window, fold, users, items))
    served = ServedModel(*store.read_version())
    served.apply_update(1, store.read_update(manifest["name"], 1))
    assert len(served.new_items.ids) >= 10
    # No new row is longer than the refit's 95th-percentile item row...
    factors = served.item_factors.shape[1]
    cap = np.percentile(np.linalg.norm(served.item_factors, axis=1), 95)
    assert np.linalg.norm(served.new_items.rows[:, :factors], axis=1).max() <= cap * 1.0001
    # ...so new items of other categories stay out of the users' lists (uncapped, the rows
    # came out six times longer and took 250 of the 600 places; capped, 30).
    tastes = planted_tastes()
    off_taste = sum(
        i in served.new_items.ids and category(i) != tastes.favourite[u]
        for u in tastes.users
        for i in served.recommend(u, 10).items
    )
    assert off_taste <= len(tastes.users)
