"""Item-level queries on a served model: rank candidates, predict, similar items, bought together.

Score meaning for ``predict``: the item's percentile rank among all items of the model for that
user -- the share of items that score lower -- in [0, 1], 1 being the best item. It depends
only on the order of scores, so it means the same across model versions. Users without events
are ranked by window popularity instead.
"""

from __future__ import annotations

import numpy as np

from ..data.catalog import CatalogSnapshot
from ..rules.item_rules import NO_RULES, ItemRules
from ..vectors.top_n import top_n
from . import terms
from .request import Query, RecommendRequest
from .served_model import ServedModel


def _all_scores(model: ServedModel, user: str) -> tuple[np.ndarray, bool]:
    """Every item's score for ``user``, and whether it came from the model (vs. popularity)."""
    state = model.user_state(user)
    if state is None:
        return model.popularity_by_column, False
    return model.scoring_matrix @ state.vector, True


def rank_candidates(
    model: ServedModel, user: str, candidates: list[str], k: int, exclude_seen: bool = False
) -> dict:
    """The candidates best first for ``user``; ids the model does not know come last, marked.

    A candidate's score is the one ``GET /recommend`` gives the same item for this user (same
    vector, same scoring), so the two orders agree. Unlike ``GET /recommend``, items the user
    already interacted with in the window are ranked too -- they usually score high, since the
    model reconstructs what it saw -- and marked ``"seen": true``; ``exclude_seen`` drops them.
    """
    cols = [model.item_ids.row_of(c) for c in candidates]
    known = [(c, col) for c, col in zip(candidates, cols) if col is not None]
    unknown = [c for c, col in zip(candidates, cols) if col is None]
    state = model.user_state(user)
    seen = set() if state is None else set(state.seen.tolist())
    if exclude_seen:
        known = [(c, col) for c, col in known if col not in seen]
    if known:
        idx = np.array([col for _, col in known], dtype=np.int64)
        if state is None:
            scores = model.popularity_by_column[idx]
        else:
            # The terms GET /recommend scores its candidates with, so the two agree exactly.
            query = Query(RecommendRequest(user, k), state, model.sequence)
            scores, _ = terms.score(terms.Candidates.of(model, idx), query)
        order = np.argsort(-scores, kind="stable")
        ranked = []
        for i in order:
            entry = {"item_id": known[i][0], "score": float(scores[i])}
            if known[i][1] in seen:
                entry["seen"] = True
            ranked.append(entry)
    else:
        ranked = []
    ranked += [{"item_id": c, "score": None, "unknown": True} for c in unknown]
    return {"source": "popular" if state is None else "model", "ranked": ranked[:k]}


def predict(model: ServedModel, user: str, items: list[str]) -> tuple[list[float | None], str]:
    """Percentile rank in [0, 1] of each item for ``user`` (None for unknown items)."""
    scores, personal = _all_scores(model, user)
    sorted_scores = np.sort(scores)
    denominator = max(1, len(scores) - 1)
    out: list[float | None] = []
    for item in items:
        col = model.item_ids.row_of(item)
        if col is None:
            out.append(None)
        else:
            below = int(np.searchsorted(sorted_scores, scores[col], side="left"))
            out.append(round(below / denominator, 6))
    return out, "model" if personal else "popular"


def similar_items(
    model: ServedModel,
    item: str,
    n: int,
    rules: ItemRules = NO_RULES,
    catalog: CatalogSnapshot | None = None,
) -> list[dict] | None:
    """Items closest to ``item`` by cosine of the ALS item factors (those ``rules`` allow),
    or None if ``item`` is unknown."""
    col = model.item_ids.row_of(item)
    if col is None:
        return None
    factors, norms = model.item_factors, model.item_norms
    scores = (factors @ factors[col]) / (norms * norms[col])
    scores[col] = -np.inf
    mask = model.allowed_columns(rules, catalog)
    if mask is not None:
        scores[~mask] = -np.inf
    best = top_n(scores, n)
    return [
        {"item_id": model.item_ids[c], "score": float(scores[c])}
        for c in best.tolist()
        if np.isfinite(scores[c])
    ]


def bought_together(model: ServedModel, item: str, n: int) -> dict | None:
    """Partners of ``item`` in the window's baskets with support, confidence and lift."""
    col = model.item_ids.row_of(item)
    if col is None:
        return None
    n_baskets = model.manifest.get("n_baskets") or 0
    if model.assoc is None or n_baskets == 0:
        return {"item_id": item, "baskets": 0, "associations": []}
    indptr, indices, counts, item_baskets = model.assoc
    a, b = int(indptr[col]), int(indptr[col + 1])
    mine = int(item_baskets[col])
    rows = []
    for partner, count in zip(indices[a:b][:n].tolist(), counts[a:b][:n].tolist()):
        support = count / n_baskets
        confidence = count / mine if mine else 0.0
        partner_share = item_baskets[partner] / n_baskets
        rows.append(
            {
                "item_id": model.item_ids[partner],
                "baskets": int(count),
                "support": round(support, 6),
                "confidence": round(confidence, 6),
                "lift": round(confidence / partner_share, 6) if partner_share else None,
            }
        )
    return {"item_id": item, "baskets": mine, "associations": rows}
