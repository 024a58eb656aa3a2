"""Diversity: at most ``max_per`` items per value of an attribute.

A greedy re-ranking (the per-value cap of the hosted services' "diversity" knobs): walk the
candidates best first and take an item unless ``max_per`` items with its value of the
attribute (``category`` or a catalog attribute) are already taken; items the cap held back fill
the list after the others, best first, when fewer than ``n`` distinct-enough items exist. Items
without a value are never capped. The candidate pool is ``DIVERSITY_POOL`` times the list
length; when it is nearly all one value (a user whose top items are one category), the stage
asks the pipeline for the best items of the other values, up to three rounds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..data.catalog import CatalogSnapshot
from .request import Query, RecommendRequest
from .result import Recommendation

#: Candidates considered per returned item when diversifying.
DIVERSITY_POOL = 4
#: Rounds of asking for items of values the cap has not filled.
REFILL_ROUNDS = 3


def pool(request: RecommendRequest) -> int:
    """How many candidates the main list should rank for this request."""
    return request.n * (DIVERSITY_POOL if request.shape.diversify is not None else 1)


def value_codes(catalog: CatalogSnapshot | None, attribute: str) -> np.ndarray | None:
    """Per catalog row, the code of its value of ``attribute`` (-1: none)."""
    if catalog is None:
        return None
    if attribute == "category":
        return catalog.category
    attr = catalog.attributes.get(attribute)
    return None if attr is None else attr.codes


def _code(catalog: CatalogSnapshot | None, codes: np.ndarray | None, item: str) -> int:
    row = -1 if codes is None else catalog.row.get(item, -1)
    return int(codes[row]) if row >= 0 else -1


def within_cap(
    items: list[str], catalog: CatalogSnapshot | None, codes: np.ndarray | None, cap: int
) -> tuple[int, set[int]]:
    """How many of ``items`` fit under the cap, and the value codes that reached it."""
    taken: dict[int, int] = {}
    within = 0
    for item in items:
        code = _code(catalog, codes, item)
        if code >= 0 and taken.get(code, 0) >= cap:
            continue
        taken[code] = taken.get(code, 0) + 1
        within += 1
    return within, {c for c, k in taken.items() if c >= 0 and k >= cap}


def cap_per_value(
    items: list[str], catalog: CatalogSnapshot | None, attribute: str, n: int, cap: int
) -> list[int]:
    """Positions of ``items`` (best first) to keep: at most ``cap`` per value first."""
    codes = value_codes(catalog, attribute)
    taken: dict[int, int] = {}
    first, held = [], []
    for k, item in enumerate(items):
        code = _code(catalog, codes, item)
        if code >= 0 and taken.get(code, 0) >= cap:
            held.append(k)
            continue
        taken[code] = taken.get(code, 0) + 1
        first.append(k)
    return (first + held)[:n]


def refill(query: Query, ranked: Recommendation, n: int, more: Callable) -> Recommendation:
    """``ranked`` with the best items of values the cap has not filled, when it has fewer
    than ``n`` items within the cap; ``more(query, k, avoid=...)`` asks the pipeline."""
    shape, catalog = query.request.shape, query.request.catalog
    codes = None if shape.diversify is None else value_codes(catalog, shape.diversify)
    for _ in range(REFILL_ROUNDS if codes is not None else 0):
        within, full = within_cap(ranked.items, catalog, codes, shape.max_per)
        if within >= n or not full:
            break
        extra = more(query, n - within, avoid=(codes, full)).without(set(ranked.items))
        if not extra.items:
            break
        ranked = ranked.extended(extra)
    return ranked


def cap(query: Query, ranked: Recommendation, n: int) -> Recommendation:
    """``ranked`` cut to ``n`` items, capped per value first when the request diversifies."""
    shape = query.request.shape
    if shape.diversify is None:
        return ranked if len(ranked.items) <= n else ranked.take(list(range(n)))
    keep = cap_per_value(ranked.items, query.request.catalog, shape.diversify, n, shape.max_per)
    return ranked.take(keep)
