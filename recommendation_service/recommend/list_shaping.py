"""A recommendation list beyond ranking: promoted slots, a cap per attribute value, and new
catalog items explored -- put together from a served model's ranked candidates.

Order of work: the promoted slots are filled first (best items passing the promotion rule and
the request's rules); the rest is ranked without them, diversified (refilled from values the
cap has not filled when the candidates were nearly all of one value), cut to size; promoted
items go in by score; explored new items take places from the middle on.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from ..data.catalog import CatalogSnapshot
from ..rules.item_rules import NO_RULES, ItemRules, allowed_rows, id_allowed
from .diversity import DIVERSITY_POOL, ListShape, finish, merge_promoted, value_codes, within_cap
from .exploration import ExploreParams, candidates, explored, insert

if TYPE_CHECKING:
    from .served_model import Recommendation, ServedModel

#: Seconds an exploration candidate list is reused before it is recomputed.
EXPLORE_CACHE_SECONDS = 60.0


def shaped_list(
    model: ServedModel,
    user: str,
    n: int,
    rules: ItemRules,
    catalog: CatalogSnapshot | None,
    shape: ListShape,
    explore: ExploreParams,
) -> Recommendation:
    """What ``ServedModel.recommend`` answers."""
    rec = _shaped(model, user, n, rules, catalog, shape)
    if catalog is None or explore.share <= 0:
        return rec
    now = time.time()
    pool = _explore_pool(model, catalog, now, explore)
    rows_ok = None if rules == NO_RULES else allowed_rows(rules, catalog)
    chosen = explored(
        pool, user, now, explore, lambda item: id_allowed(rules, rows_ok, catalog, item),
        set(rec.items),
    )  # fmt: skip
    return insert(rec, chosen, n) if chosen else rec


def _explore_pool(model: ServedModel, catalog: CatalogSnapshot, now: float, explore):
    """Exploration candidates, cached per catalog and new-item table for a minute."""
    cached = model.explore_cache
    if (
        cached is None
        or cached[0] is not catalog
        or cached[1] is not model.new_items
        or cached[2] != explore
        or now - cached[3] > EXPLORE_CACHE_SECONDS
    ):
        new = set(model.new_items.ids)
        pool = candidates(
            catalog, lambda i: i in new or model.item_ids.row_of(i) is not None, now, explore
        )
        cached = model.explore_cache = (catalog, model.new_items, explore, now, pool)
    return cached[4]


def _shaped(
    model: ServedModel,
    user: str,
    n: int,
    rules: ItemRules,
    catalog: CatalogSnapshot | None,
    shape: ListShape,
) -> Recommendation:
    promoted = None
    if shape.promote is not None and shape.promote_slots:
        both = replace(rules, named=(*rules.named, shape.promote))
        promoted = model.ranked(user, min(shape.promote_slots, n), both, catalog)
    taken = set(promoted.items) if promoted else set()
    want = n - len(taken)
    pool = want + len(taken)
    if shape.diversify is not None:
        pool = DIVERSITY_POOL * pool
    rec = model.ranked(user, min(pool, model.n_items + len(model.new_items.ids)), rules, catalog)
    rec = _without(rec, taken) if taken else rec
    if shape.diversify is not None:
        rec = _refill(model, user, rec, want, rules, catalog, shape)
    rest = finish(rec, want, catalog, shape)
    return merge_promoted(rest, promoted) if promoted and promoted.items else rest


def _refill(model, user, rec, n: int, rules, catalog, shape: ListShape) -> Recommendation:
    """Add the best items of values the cap has not filled when the pool had too few (a user
    whose top items are nearly all of one category); at most three rounds."""
    codes = value_codes(catalog, shape.diversify)
    for _ in range(3 if codes is not None else 0):
        within, full = within_cap(rec.items, catalog, codes, shape.max_per)
        if within >= n or not full:
            break
        more = _without(model.ranked(user, n - within, rules, catalog, avoid=(codes, full)),
                        set(rec.items))  # fmt: skip
        if not more.items:
            break
        rec = replace(
            rec,
            items=rec.items + more.items,
            scores=rec.scores + more.scores,
            reasons=rec.reasons + more.reasons,
        )
    return rec


def _without(rec: Recommendation, drop: set[str]) -> Recommendation:
    keep = [k for k, item in enumerate(rec.items) if item not in drop]
    return replace(
        rec,
        items=[rec.items[k] for k in keep],
        scores=[rec.scores[k] for k in keep],
        reasons=[rec.reasons[k] for k in keep],
    )
