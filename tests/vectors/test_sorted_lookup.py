"""Lookups among sorted item columns (vectors/sorted_lookup.py)."""

from __future__ import annotations

import numpy as np

from recommendation_service.vectors.sorted_lookup import contains, lookup, positions, run_starts


def test_lookups_agree_with_plain_python():
    keys = np.array([2, 5, 9, 14])
    queries = np.array([14, 0, 5, 20, 9, 5])  # any order, repeats, outside both ends
    assert contains(keys, queries).tolist() == [q in keys.tolist() for q in queries.tolist()]
    assert positions(keys, queries).tolist() == [3, 1, 2, 1]
    values = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    assert lookup(keys, values, queries).tolist() == [
        [4, 40], [0, 0], [2, 20], [0, 0], [3, 30], [2, 20]
    ]  # fmt: skip
    empty = np.zeros(0, dtype=np.int64)
    assert not contains(empty, queries).any() and len(positions(empty, queries)) == 0
    assert len(positions(keys, empty)) == 0
    assert run_starts(np.array([1, 1, 3, 4, 4, 4])).tolist() == [1, 0, 1, 1, 0, 0]
