"""Promoted slots: ``promote_slots`` places of the list go to the best-scored items passing the
promotion rule (and the request's rules), marked ``promoted`` and sorted into the list by
score, without undoing what diversity did to the rest."""

from __future__ import annotations

from collections.abc import Callable

from .request import Query
from .result import Recommendation


def reserve(query: Query, more: Callable) -> Recommendation | None:
    """The promoted items of this request (None: it promotes nothing); ``more(query, k,
    extra_rule=...)`` asks the pipeline for the best items passing the promotion rule too."""
    shape = query.request.shape
    if shape.promote is None or not shape.promote_slots:
        return None
    return more(query, min(shape.promote_slots, query.request.n), extra_rule=shape.promote)


def merge(rest: Recommendation, promoted: Recommendation | None) -> Recommendation:
    """``rest`` (already without the promoted items) with ``promoted``, marked so, each placed
    before the first item of ``rest`` that scores lower (``rest`` keeps its own order, which
    diversity may have changed)."""
    if promoted is None or not promoted.items:
        return rest
    picks = list(zip(rest.scores, rest.items, rest.reasons or [""] * len(rest.items)))
    for score, item in zip(promoted.scores, promoted.items):
        at = next((k for k, p in enumerate(picks) if p[0] < score and p[2] != "promoted"),
                  len(picks))  # fmt: skip
        picks.insert(at, (score, item, "promoted"))
    return rest.with_picks(picks)
