"""Candidate sources: where a list's items come from, before any policy.

* :func:`best_columns` -- the version's items with the highest scores for a user vector:
  exact over the allowed columns when few pass, exact over all columns for small catalogs,
  the HNSW index (vectors/ann.py) otherwise. Masks come in; nothing here knows why.
* :func:`successor_columns` -- the items that most strongly follow the user's recent items
  (the sequence term's own candidates: ALS may rank them far down).
* :func:`new_item_picks` -- items first seen after the refit, scored by their folded-in rows.
* :func:`popular` -- the window's most popular items, for users the version does not know.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..vectors import ann
from ..vectors.sorted_lookup import contains
from ..vectors.top_n import top_n
from .result import Recommendation
from .version import ModelVersion

#: Below this share of allowed columns, the allowed ones are scored exactly (an HNSW search
#: would have to walk past too many that do not pass).
EXACT_BELOW_SHARE = 0.05


def best_columns(
    model: ModelVersion, vector: np.ndarray, seen: np.ndarray, k: int, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns for ``vector`` that ``mask`` allows and ``seen`` does not hold,
    and their scores (one dot product with the version's scoring rows), best first."""
    share = 1.0 if mask is None else float(mask.mean())
    if mask is not None and (model.index is None or share < EXACT_BELOW_SHARE):
        cols = np.flatnonzero(mask)
        scores = model.scoring_matrix[cols] @ vector
        scores[np.isin(cols, seen)] = -np.inf
        best = top_n(scores, k)
        best = best[np.isfinite(scores[best])]
        return cols[best], scores[best]
    if model.index is None:
        scores = model.scoring_matrix @ vector
        scores[seen] = -np.inf
        chosen = top_n(scores, k)
        return chosen, scores[chosen]
    return ann.search(model.index, model.scoring_matrix, vector, seen, k, model.ef, mask, share)


def successor_columns(
    successors: tuple[np.ndarray, np.ndarray], seen: np.ndarray, k: int, mask: np.ndarray | None
) -> np.ndarray:
    """The ``k`` columns of ``successors`` (columns, scores) with the highest scores that
    ``mask`` allows and ``seen`` does not hold, best first."""
    cols, scores = successors
    keep = ~contains(np.sort(seen), cols)
    if mask is not None:
        keep &= mask[cols]
    cols, scores = cols[keep], scores[keep]
    return cols[top_n(scores, k)]


def new_item_picks(
    model: ModelVersion, vector: np.ndarray, k: int, skip, allowed: Callable[[str], bool]
) -> list[tuple[float, str, str]]:
    """The best ``k`` allowed new items not in ``skip``, as (score, id, ``new_item``)."""
    new = model.new_items
    if not new.ids:
        return []
    extra = new.rows @ vector
    picks = []
    for c in np.argsort(-extra).tolist():
        if len(picks) == k:
            break
        if new.ids[c] not in skip and allowed(new.ids[c]):
            picks.append((float(extra[c]), new.ids[c], "new_item"))
    return picks


def popular(model: ModelVersion, k: int, mask: np.ndarray | None = None) -> Recommendation:
    """The window's ``k`` most popular items (those ``mask`` allows)."""
    if mask is None:
        cols, scores = model.popular_items[:k], model.popular_scores[:k]
    else:
        keep = mask[model.popular_items]
        cols, scores = model.popular_items[keep][:k], model.popular_scores[keep][:k]
    return Recommendation(
        model.item_ids.ids_of(cols),
        [float(s) for s in scores],
        "popular",
        reasons=["popular"] * len(cols),
    )
