"""What one update file carries: fresh vectors of users with new events, rows of new items.

Between refits the item factors are fixed, so an item first seen after the last refit has no
row to be scored by. Its row is folded in from the users who touched it (the item side of the
ALS normal equations, against those users' current vectors), recomputed whenever it has new
events, and published with the users' vectors: a new item can be recommended to similar users
within a second of its first events, instead of after the next refit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from ...artifacts.update_files import UserVector, update_arrays
from ...data.window import SlidingWindow, UserHistory
from ...training.fold_in import FoldIn


def fresh_state(
    window: SlidingWindow, fold: FoldIn, users: Iterable[str], items: Iterable[str]
) -> dict[str, np.ndarray] | None:
    """Update arrays for ``users`` and for those of ``items`` the fold-in's version lacks.

    Returns None when there is nothing to write (no user or item could be placed).
    """
    vectors: dict[str, UserVector | None] = {}
    histories: dict[str, UserHistory] = {}

    def vector(user: str) -> UserVector | None:
        if user not in vectors:
            history = window.user_history(user)
            vectors[user] = fold.user_vector(history) if history is not None else None
            if history is not None:
                histories[user] = history
        return vectors[user]

    placed = [(u, v) for u in users if (v := vector(u)) is not None]
    # Made after this many erasures: servers hide it from users erased since (data/erasures.py).
    placed = [(u, replace(v, erasures=window.erasures_applied)) for u, v in placed]
    new_items, new_rows = [], []
    factors = fold.factors
    for item in items if fold.places_items else ():
        if item in fold.item_col:
            continue
        touched = window.item_history(item)
        if touched is None:
            continue
        ids, weights = touched
        known = [(vector(u), w) for u, w in zip(ids, weights.tolist())]
        known = [(v.vector[:factors], w) for v, w in known if v is not None]
        if not known:
            continue  # only users the version cannot place yet
        row = fold.item_row(np.stack([x for x, _ in known]), np.array([w for _, w in known]))
        if row is not None:
            new_items.append(item)
            new_rows.append(row)
    if not placed and not new_items:
        return None
    item_col = fold.item_col
    seen_new = [sorted({i for i in histories[u].items if i not in item_col}) for u, _ in placed]
    return update_arrays(
        [u for u, _ in placed], [v for _, v in placed], seen_new, new_items, new_rows
    )
