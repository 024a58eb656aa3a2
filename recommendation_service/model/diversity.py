"""Shaping a ranked list: why each item is there, and at most k items per category.

Diversity is a greedy re-ranking (the per-value cap of the hosted services' "diversity" knobs):
walk the candidates best first and take an item unless ``max_per_category`` items of its
catalog category are already taken; items the cap held back fill the list after the others,
best first, when fewer than ``n`` distinct-enough items exist. Items without a category are
never capped. The candidate pool is ``DIVERSITY_POOL`` times the list length.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .catalog import CatalogSnapshot

if TYPE_CHECKING:
    from .served_model import Recommendation

#: Candidates considered per returned item when diversifying.
DIVERSITY_POOL = 4


def reasons_of(rows: np.ndarray, vector: np.ndarray) -> list[str]:
    """``model`` or ``similar_to_recent`` per scoring row: which term of the score is larger.

    The scoring rows are ``[Y, beta * Y_unit]`` and the vector ``[x, q]`` (realtime.py): the
    first half is the ALS preference, the second the similarity to the user's recent items.
    """
    half = rows.shape[1] // 2
    als = rows[:, :half] @ vector[:half]
    similar = rows[:, half:] @ vector[half:]
    return ["similar_to_recent" if s > a else "model" for a, s in zip(als, similar)]


def cap_per_category(
    items: list[str], catalog: CatalogSnapshot | None, n: int, cap: int
) -> list[int]:
    """Positions of ``items`` (best first) to keep: at most ``cap`` per category first."""
    taken: dict[int, int] = {}
    first, held = [], []
    for k, item in enumerate(items):
        row = -1 if catalog is None else catalog.row.get(item, -1)
        code = int(catalog.category[row]) if row >= 0 else -1
        if code >= 0 and taken.get(code, 0) >= cap:
            held.append(k)
            continue
        taken[code] = taken.get(code, 0) + 1
        first.append(k)
    return (first + held)[:n]


def finish(
    rec: Recommendation, n: int, catalog: CatalogSnapshot | None, cap: int | None
) -> Recommendation:
    """``rec`` cut to ``n`` items, diversified first when ``cap`` is given."""
    if cap is None:
        return rec if len(rec.items) <= n else _take(rec, list(range(n)))
    return _take(rec, cap_per_category(rec.items, catalog, n, cap))


def _take(rec: Recommendation, keep: list[int]) -> Recommendation:
    return replace(
        rec,
        items=[rec.items[k] for k in keep],
        scores=[rec.scores[k] for k in keep],
        reasons=[rec.reasons[k] for k in keep] if rec.reasons else [],
    )
