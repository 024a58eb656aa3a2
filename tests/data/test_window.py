import numpy as np
import pytest

from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow


def dense(snapshot):
    m = snapshot.matrix.toarray()
    return {
        (u, i): float(m[r, c])
        for r, u in enumerate(snapshot.user_ids)
        for c, i in enumerate(snapshot.item_ids)
        if m[r, c]
    }


def test_repeated_pairs_add_their_weights_exactly_once():
    w = SlidingWindow(10)
    for weight in (1.0, 2.0, 3.5):
        w.add(Event("u", "i", weight))
    w.add(Event("u", "j"))
    assert dense(w.snapshot()) == {("u", "i"): 6.5, ("u", "j"): 1.0}


def test_keeps_only_the_last_w_events():
    w = SlidingWindow(3)
    for k in range(5):
        w.add(Event(f"u{k}", "i", 1.0, float(k)))
    assert [e.user for e in w.events()] == ["u2", "u3", "u4"]
    snap = w.snapshot()
    assert snap.n_events == 3 and sorted(snap.user_ids) == ["u2", "u3", "u4"]
    assert snap.last_ts == 4.0


def test_evicted_weights_leave_the_sum():
    w = SlidingWindow(3)
    for weight in (1.0, 2.0, 4.0, 8.0):
        w.add(Event("u", "i", weight))
    assert dense(w.snapshot()) == {("u", "i"): 14.0}


def test_ids_that_leave_the_window_free_their_slots():
    w = SlidingWindow(2)
    for k in range(1000):
        w.add(Event(f"user{k}", f"item{k}"))
    assert len(w.users) == 2 and len(w.items) == 2
    # Slots are recycled: capacity never exceeds what the window can reference at once.
    assert w.users.capacity <= 3 and w.items.capacity <= 3
    assert "user0" not in w.users and "user999" in w.users


def test_snapshot_is_compact_and_consistent_after_recycling():
    rng = np.random.default_rng(0)
    w = SlidingWindow(500)
    events = [
        Event(f"u{rng.integers(50)}", f"i{rng.integers(80)}", float(rng.integers(1, 4)))
        for _ in range(3000)
    ]
    for e in events:
        w.add(e)
    expected: dict = {}
    for e in events[-500:]:
        expected[(e.user, e.item)] = expected.get((e.user, e.item), 0.0) + e.weight
    snap = w.snapshot()
    assert dense(snap) == expected
    assert snap.matrix.shape == (len(snap.user_ids), len(snap.item_ids))
    assert np.all(np.diff(snap.matrix.indptr) > 0), "every user row has an event"
    assert np.all(snap.matrix.getnnz(axis=0) > 0), "every item column has an event"


def test_snapshot_is_a_copy():
    w = SlidingWindow(5)
    w.add(Event("u", "i"))
    snap = w.snapshot()
    w.add(Event("u", "i"))
    assert snap.matrix[0, 0] == 1.0


def test_empty_window_snapshot():
    snap = SlidingWindow(5).snapshot()
    assert snap.matrix.shape == (0, 0) and snap.n_events == 0


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        SlidingWindow(0)
