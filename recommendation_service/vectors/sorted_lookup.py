"""Looking values up among sorted item columns: a request's few dozen candidates against a
user's seen items, or against the columns a rule sum scored (np.isin, np.unique and dict
lookups cost more in set-up than the work itself at this size)."""

from __future__ import annotations

import numpy as np


def _matches(sorted_values: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query (``sorted_values`` non-empty): where it would sit, and whether it is there."""
    at = np.minimum(np.searchsorted(sorted_values, queries), len(sorted_values) - 1)
    return at, sorted_values[at] == queries


def contains(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Per query, whether it is in ``sorted_values`` (ascending)."""
    if not len(sorted_values) or not len(queries):
        return np.zeros(len(queries), dtype=bool)
    return _matches(sorted_values, queries)[1]


def positions(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The positions in ``sorted_values`` (ascending) of the queries it holds (``queries`` in
    any order)."""
    if not len(sorted_values) or not len(queries):
        return np.zeros(0, dtype=np.int64)
    at, hit = _matches(sorted_values, queries)
    return at[hit]


def lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Per query, its value in (``keys`` ascending, ``values``: one entry or one row per key);
    0 where it is not a key."""
    out = np.zeros((len(queries), *values.shape[1:]), dtype=np.result_type(values, np.float32))
    if not len(keys) or not len(queries):
        return out
    at, hit = _matches(keys, queries)
    out[hit] = values[at[hit]]
    return out


def run_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Per entry of ``sorted_values`` (ascending), whether it starts a run of equal values:
    the first of each distinct value."""
    starts = np.empty(len(sorted_values), dtype=bool)
    if len(sorted_values):
        starts[0] = True
        np.not_equal(sorted_values[1:], sorted_values[:-1], out=starts[1:])
    return starts
