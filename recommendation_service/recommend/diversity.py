"""Shaping a ranked list: why each item is there, at most k items per attribute value, and
promoted slots.

Diversity is a greedy re-ranking (the per-value cap of the hosted services' "diversity" knobs):
walk the candidates best first and take an item unless ``max_per`` items with its value of the
attribute (``category`` or a catalog attribute) are already taken; items the cap held back fill
the list after the others, best first, when fewer than ``n`` distinct-enough items exist. Items
without a value are never capped. The candidate pool is ``DIVERSITY_POOL`` times the list length.

Promotion: ``promote_slots`` of the list go to the best-scored items passing the promotion rule
(and the request's rules); they are marked ``promoted`` and sorted into the list by score.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..data.catalog import CatalogSnapshot

if TYPE_CHECKING:
    from .served_model import Recommendation

#: Candidates considered per returned item when diversifying.
DIVERSITY_POOL = 4


@dataclass(frozen=True)
class ListShape:
    """How a request wants its list shaped beyond filtering.

    Parameters
    ----------
    diversify
        ``"category"`` or a catalog attribute name; None = no cap.
    max_per
        Most items per value of ``diversify`` before the others.
    promote
        A named rule with the request's parameters, ``(rule, ((name, value), ...))``.
    promote_slots
        Places in the list for items passing ``promote``.
    """

    diversify: str | None = None
    max_per: int = 2
    promote: tuple | None = None
    promote_slots: int = 0


NO_SHAPE = ListShape()


def reasons_of(rows: np.ndarray, vector: np.ndarray) -> list[str]:
    """``model`` or ``similar_to_recent`` per scoring row: which term of the score is larger.

    The scoring rows are ``[Y, beta * Y_unit]`` and the vector ``[x, q]`` (realtime.py): the
    first half is the ALS preference, the second the similarity to the user's recent items.
    """
    half = rows.shape[1] // 2
    als = rows[:, :half] @ vector[:half]
    similar = rows[:, half:] @ vector[half:]
    return ["similar_to_recent" if s > a else "model" for a, s in zip(als, similar)]


def value_codes(catalog: CatalogSnapshot | None, attribute: str) -> np.ndarray | None:
    """Per catalog row, the code of its value of ``attribute`` (-1: none)."""
    if catalog is None:
        return None
    if attribute == "category":
        return catalog.category
    attr = catalog.attributes.get(attribute)
    return None if attr is None else attr.codes


def within_cap(
    items: list[str], catalog: CatalogSnapshot | None, codes: np.ndarray | None, cap: int
) -> tuple[int, set[int]]:
    """How many of ``items`` fit under the cap, and the value codes that reached it."""
    taken: dict[int, int] = {}
    within = 0
    for item in items:
        row = -1 if codes is None else catalog.row.get(item, -1)
        code = int(codes[row]) if row >= 0 else -1
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
        row = -1 if codes is None else catalog.row.get(item, -1)
        code = int(codes[row]) if row >= 0 else -1
        if code >= 0 and taken.get(code, 0) >= cap:
            held.append(k)
            continue
        taken[code] = taken.get(code, 0) + 1
        first.append(k)
    return (first + held)[:n]


def finish(
    rec: Recommendation, n: int, catalog: CatalogSnapshot | None, shape: ListShape = NO_SHAPE
) -> Recommendation:
    """``rec`` cut to ``n`` items, diversified first when ``shape`` asks."""
    if shape.diversify is None:
        return rec if len(rec.items) <= n else _take(rec, list(range(n)))
    return _take(rec, cap_per_value(rec.items, catalog, shape.diversify, n, shape.max_per))


def merge_promoted(rest: Recommendation, promoted: Recommendation) -> Recommendation:
    """``rest`` (already without the promoted items) with ``promoted``, marked so, each placed
    before the first item of ``rest`` that scores lower (``rest`` keeps its own order, which
    diversity may have changed)."""
    picks = list(zip(rest.scores, rest.items, rest.reasons or [""] * len(rest.items)))
    for score, item in zip(promoted.scores, promoted.items):
        at = next((k for k, p in enumerate(picks) if p[0] < score and p[2] != "promoted"),
                  len(picks))  # fmt: skip
        picks.insert(at, (score, item, "promoted"))
    return replace(
        rest,
        items=[i for _, i, _ in picks],
        scores=[s for s, _, _ in picks],
        reasons=[r for _, _, r in picks],
    )


def _take(rec: Recommendation, keep: list[int]) -> Recommendation:
    return replace(
        rec,
        items=[rec.items[k] for k in keep],
        scores=[rec.scores[k] for k in keep],
        reasons=[rec.reasons[k] for k in keep] if rec.reasons else [],
    )
