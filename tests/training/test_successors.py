"""Sequential rules: exact over the window, bounded per item, and each user's recent items."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import scipy.sparse as sp

from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow
from recommendation_service.training.successors import SequenceParams, successors
from recommendation_service.vectors.sequences import (
    SequenceWeights,
    sequence_score_table,
    sequence_scores,
)

from ..streams import series_events


def window_of(pairs, capacity=1000) -> SlidingWindow:
    w = SlidingWindow(capacity)
    for t, (u, i) in enumerate(pairs):
        w.add(Event(u, i, 1.0, float(t)))
    return w


def as_dict(succ, snap) -> dict[str, float]:
    r, ids = succ.rules.toarray(), snap.item_ids
    return {f"{ids[a]}->{ids[b]}": float(r[a, b]) for a, b in zip(*np.nonzero(r))}


def test_each_pair_within_the_distance_adds_one_over_its_distance():
    w = window_of([("u", "a"), ("v", "b"), ("u", "b"), ("u", "c"), ("v", "c"), ("u", "a")])
    snap = w.snapshot()
    succ = successors(snap, SequenceParams(distance=2))
    # u: a b c a -> a>b 1, b>c 1, c>a 1, a>c 1/2, b>a 1/2; v: b c -> b>c 1; no a>a.
    assert as_dict(succ, snap) == {
        "a->b": 1.0, "a->c": 0.5, "b->a": 0.5, "b->c": 2.0, "c->a": 1.0,
    }  # fmt: skip
    recent = {
        u: [snap.item_ids[c] for c in succ.recent_indices[
            succ.recent_indptr[r] : succ.recent_indptr[r + 1]]]
        for r, u in enumerate(snap.user_ids)
    }  # fmt: skip
    assert recent == {"u": ["a", "c", "b"], "v": ["c", "b"]}


def test_the_rules_are_exactly_those_of_the_events_still_in_the_window():
    events = series_events(n_users=40, per_user=30, seed=3)
    w = SlidingWindow(500)
    for e in events:
        w.add(e)
    snap = w.snapshot()
    params = SequenceParams(distance=3, keep=1000)
    expected: dict[str, float] = defaultdict(float)
    by_user: dict[str, list[str]] = defaultdict(list)
    for e in w.events():  # oldest first: the evicted ones are gone
        by_user[e.user].append(e.item)
    for items in by_user.values():
        for i, a in enumerate(items):
            for d in range(1, 4):
                if i + d < len(items) and items[i + d] != a:
                    expected[f"{a}->{items[i + d]}"] += 1 / d
    got = as_dict(successors(snap, params), snap)
    assert got.keys() == expected.keys()
    assert all(got[k] == pytest.approx(v, rel=1e-6) for k, v in expected.items())


def test_each_item_keeps_only_its_strongest_successors():
    pairs = [("u", "a"), ("u", "b")] * 3 + [("v", "a"), ("v", "c")] + [("x", "a"), ("x", "d")]
    snap = window_of(pairs).snapshot()
    succ = successors(snap, SequenceParams(distance=1, keep=1))
    rules = as_dict(succ, snap)
    assert rules["a->b"] == 3.0 and "a->c" not in rules and "a->d" not in rules


def test_sequence_scores_decay_with_how_far_back_an_item_is():
    snap = window_of([("u", "a"), ("u", "b"), ("v", "c"), ("v", "d")]).snapshot()
    succ = successors(snap, SequenceParams(distance=1))
    col = {item: c for c, item in enumerate(snap.item_ids)}
    recent = np.array([col["c"], col["a"]], dtype=np.int32)  # c newest
    cols, scores = sequence_scores(*succ.scorer()[0], recent, 2, 0.5)
    got = {snap.item_ids[c]: float(s) for c, s in zip(cols, scores)}
    assert got == {"d": 1.0, "b": 0.5}
    cols, _ = sequence_scores(*succ.scorer()[0], recent, 1, 0.5)
    assert [snap.item_ids[c] for c in cols] == ["d"]


def test_a_table_of_depths_holds_each_depths_scores_exactly():
    # The rank stage reads several depths from one table; each must be sequence_scores'.
    rng = np.random.default_rng(1)
    m = sp.random(200, 200, density=0.05, format="csr", random_state=2, dtype=np.float32)
    for _ in range(100):
        recent = rng.choice(200, size=int(rng.integers(1, 8)), replace=False)
        depths = (5, 1, 3, 3)
        cols, table = sequence_score_table(m.indptr, m.indices, m.data, recent, depths, 0.7)
        assert table.shape == (len(cols), len(depths))
        for j, depth in enumerate(depths):
            want_cols, want = sequence_scores(m.indptr, m.indices, m.data, recent, depth, 0.7)
            led = table[:, j] != 0
            np.testing.assert_array_equal(cols[led], want_cols)
            np.testing.assert_array_equal(table[led, j], want)


def test_settings_are_checked():
    with pytest.raises(ValueError):
        SequenceParams(distance=0)
    with pytest.raises(ValueError):
        SequenceWeights(weight=-1)
    with pytest.raises(ValueError):
        SequenceParams(weights=SequenceWeights(depth=20))
