"""Fold-in, recency, negative feedback, decay: the per-event update path."""

from collections import Counter

import numpy as np
import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.artifacts.update_files import update_arrays
from recommendation_service.data.events import Event
from recommendation_service.data.window import Decay, SlidingWindow
from recommendation_service.server.model_watcher import ModelWatcher
from recommendation_service.training.fold_in import FoldIn, RealtimeParams
from recommendation_service.training.params import ALSParams

from ..conftest import SMALL_ALS, category, planted_events, train_window

PLAIN = RealtimeParams(recent_boost=0.0, recent_half_life=1.0, similarity_weight=0.0)


@pytest.fixture(scope="module")
def fitted():
    events = planted_events(4000)
    window = SlidingWindow(100_000)
    for e in events:
        window.add(e)
    return window, train_window(events)


def top_items(fold: FoldIn, vector, seen, item_ids, n=10):
    scores = fold.scoring_matrix @ vector
    scores[seen] = -np.inf
    return [item_ids[c] for c in np.argsort(-scores)[:n]]


def test_fold_in_of_a_known_user_reproduces_the_fitted_factors(fitted):
    window, model = fitted
    fold = FoldIn(model.snapshot.item_ids, model.item_factors, model.params, PLAIN)
    for row in (0, 7, 21):
        user = model.snapshot.user_ids[row]
        vector = fold.user_vector(window.user_history(user)).vector[: SMALL_ALS.factors]
        fitted_factors = model.user_factors[row]
        cosine = vector @ fitted_factors / np.linalg.norm(vector) / np.linalg.norm(fitted_factors)
        assert cosine > 0.99


def test_a_new_user_is_personalised_from_their_first_events(fitted):
    _, model = fitted
    fold = FoldIn(model.snapshot.item_ids, model.item_factors, model.params, RealtimeParams())
    items = model.snapshot.item_ids
    garden = [i for i in items if category(i) == "garden"][:3]
    user_window = SlidingWindow(10)
    for item in garden:
        user_window.add(Event("brand-new", item))
    fresh = fold.user_vector(user_window.user_history("brand-new"))
    assert sorted(items[c] for c in fresh.seen) == sorted(garden)
    recommended = top_items(fold, fresh.vector, fresh.seen, items)
    assert Counter(map(category, recommended)).most_common(1)[0][0] == "garden"
    assert not set(garden) & set(recommended)


def test_unknown_items_only_give_no_vector(fitted):
    _, model = fitted
    fold = FoldIn(model.snapshot.item_ids, model.item_factors, model.params, RealtimeParams())
    w = SlidingWindow(5)
    w.add(Event("u", "never-seen-item"))
    assert fold.user_vector(w.user_history("u")) is None


def test_recent_events_steer_the_user_vector(fitted):
    """A user who long liked books and just now clicked games gets games first."""
    _, model = fitted
    items = model.snapshot.item_ids
    books = [i for i in items if category(i) == "books"][:12]
    games = [i for i in items if category(i) == "games"][:2]
    w = SlidingWindow(100)
    for item in books + games:
        w.add(Event("switcher", item))
    history = w.user_history("switcher")
    boosted = FoldIn(items, model.item_factors, model.params, RealtimeParams())
    plain = FoldIn(items, model.item_factors, model.params, PLAIN)
    b = boosted.user_vector(history)
    p = plain.user_vector(history)
    boosted_top = Counter(map(category, top_items(boosted, b.vector, b.seen, items)))
    plain_top = Counter(map(category, top_items(plain, p.vector, p.seen, items)))
    assert boosted_top.most_common(1)[0][0] == "games"
    assert plain_top.most_common(1)[0][0] == "books"


def test_negative_feedback_is_excluded_and_pushes_away(fitted):
    _, model = fitted
    items = model.snapshot.item_ids
    fold = FoldIn(items, model.item_factors, model.params, PLAIN)
    games = [i for i in items if category(i) == "games"]
    w = SlidingWindow(100)
    for item in games[:5]:
        w.add(Event("critic", item))
    liked = fold.user_vector(w.user_history("critic"))
    target = top_items(fold, liked.vector, liked.seen, items, 1)[0]
    w.add(Event("critic", target, -4.0))
    after = fold.user_vector(w.user_history("critic"))
    assert items.index(target) in after.seen.tolist()
    assert target not in top_items(fold, after.vector, after.seen, items, 50)
    col = items.index(target)
    assert fold.scoring_matrix[col] @ after.vector < fold.scoring_matrix[col] @ liked.vector


def test_decay_halves_weights_per_half_life():
    w = SlidingWindow(10, Decay(half_life_events=2))
    for k in range(5):
        w.add(Event("u", f"i{k}", 8.0))
    history = w.user_history("u")
    assert np.allclose(history.weights, [8 / 4, 8 / 2**1.5, 8 / 2, 8 / 2**0.5, 8.0])
    snap = w.snapshot()
    assert np.isclose(snap.matrix.sum(), history.weights.sum())

    timed = SlidingWindow(10, Decay(half_life_seconds=60))
    timed.add(Event("u", "old", 1.0, 0.0))
    timed.add(Event("u", "new", 1.0, 120.0))
    assert np.allclose(timed.user_history("u").weights, [0.25, 1.0])


def test_cancelled_pairs_stay_seen_but_leave_training():
    w = SlidingWindow(10)
    w.add(Event("u", "a", 4.0))
    w.add(Event("u", "a", -4.0))
    w.add(Event("u", "b", 1.0))
    snap = w.snapshot()
    assert snap.matrix.nnz == 1 and snap.seen.nnz == 2


def test_server_applies_updates_in_order_and_resets_on_a_new_version(tmp_path, fitted):
    _, model = fitted
    store = ModelStore(tmp_path)
    manifest = store.publish(model)
    fold = FoldIn(model.snapshot.item_ids, model.item_factors, model.params, RealtimeParams())
    watcher = ModelWatcher(store)
    watcher.refresh()
    assert watcher.model.recommend("newcomer", 5).source == "popular"

    w = SlidingWindow(10)
    w.add(Event("newcomer", model.snapshot.item_ids[0], 1.0, 1000.0))
    first = fold.user_vector(w.user_history("newcomer"))
    store.write_update(manifest["name"], 1, update_arrays(["newcomer"], [first]))
    w.add(Event("newcomer", model.snapshot.item_ids[1], 1.0, 2000.0))
    second = fold.user_vector(w.user_history("newcomer"))
    store.write_update(manifest["name"], 2, update_arrays(["newcomer"], [second]))
    watcher.refresh()
    result = watcher.model.recommend("newcomer", 5)
    assert result.source == "model" and result.as_of == 2000.0
    assert not {model.snapshot.item_ids[0], model.snapshot.item_ids[1]} & set(result.items)

    store.publish(model)
    assert watcher.refresh()
    assert watcher.model.recommend("newcomer", 5).source == "popular"


def test_a_corrupt_update_is_skipped_not_fatal(tmp_path, fitted):
    _, model = fitted
    store = ModelStore(tmp_path)
    name = store.publish(model)["name"]
    (tmp_path / "updates" / name).mkdir(parents=True)
    (tmp_path / "updates" / name / "00000001.npz").write_bytes(b"not a zip")
    watcher = ModelWatcher(store)
    watcher.refresh()
    assert watcher.model is not None and "bad update" in watcher.last_error


def test_als_params_reject_nonsense():
    with pytest.raises(ValueError):
        RealtimeParams(recent_boost=-1)
    with pytest.raises(ValueError):
        ALSParams(alpha=0)


def test_batched_fold_in_matches_one_user_at_a_time(fitted):
    _, model = fitted
    fold = FoldIn(model.snapshot.item_ids, model.item_factors, model.params, RealtimeParams())
    rng = np.random.default_rng(5)
    histories = []
    for n in (1, 3, 17, 40):
        cols = rng.integers(-1, len(model.snapshot.item_ids), size=n)
        histories.append((cols, rng.choice([1.0, 2.0, -1.0], size=n)))
    histories.append((np.array([-1, -1]), np.array([1.0, 1.0])))  # nothing known
    batched = fold.vectors_of(histories)
    for (cols, weights), row in zip(histories, batched):
        single = fold.vector_of(cols, weights, 0.0)
        expected = single.vector if single is not None else np.zeros_like(row)
        np.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-5)
