"""Per-item counters of the window, published with a version for the rank stage's features.

Computed from the window's events at a refit (oldest first). Each is a column of one float32
array, in the order of ``ranking.channels.ITEM_STATS`` (servers read them without importing
training code).
"""

from __future__ import annotations

import numpy as np

from ..ranking.channels import ITEM_STATS

#: Events at the end of the window whose counts make an item's recent popularity (its trend).
RECENT_EVENTS = 2_000


def item_stats(
    cols: np.ndarray, weights: np.ndarray, item_factors: np.ndarray, recent: int = RECENT_EVENTS
) -> np.ndarray:
    """The counters of every item column (``len(item_factors)`` rows, one column per
    :data:`ITEM_STATS` entry) from the window's events ``cols`` and ``weights``, oldest first.
    Items without events count 0, and are as old as the window."""
    n_items = len(item_factors)
    n = len(cols)
    positive = weights > 0
    out = np.zeros((n_items, len(ITEM_STATS)), dtype=np.float32)
    out[:, 0] = np.bincount(cols[positive], minlength=n_items)[:n_items]
    tail = positive.copy()
    tail[: max(0, n - recent)] = False
    out[:, 1] = np.bincount(cols[tail], minlength=n_items)[:n_items]
    position = np.arange(n)
    last = np.full(n_items, -1, dtype=np.int64)
    np.maximum.at(last, cols, position)
    first = np.full(n_items, n, dtype=np.int64)
    np.minimum.at(first, cols, position)
    out[:, 2] = np.where(last >= 0, n - 1 - last, n)
    out[:, 3] = np.where(first < n, n - 1 - first, n)
    out[:, 4] = np.linalg.norm(np.asarray(item_factors, dtype=np.float32), axis=1)
    return out
