"""The rank stage on the request path: candidates from every channel, ordered by a learned
ranker (ranking/). Versions without one, and requests that ask for the sum, take the sum path
of pipeline.py instead.

The channels are those of ranking/channels.py; the ALS channel searches through the
version's index (retrieval.py) with the request's mask, the others are filtered by it. Items
folded in since the refit have no channel features: each goes where the sum would put it
among the candidates. An item's reason is the channel that ranked it highest.
"""

from __future__ import annotations

import numpy as np

from ..ranking.channels import CHANNELS, DEPTHS, ChannelHits, UserContext, gather
from ..ranking.features import RANK_COLUMNS, SUM, assemble, candidates
from ..rules.item_rules import id_allowed
from . import retrieval
from .request import Query
from .version import ModelVersion

#: The reason a channel gives the items it ranks highest (the sum path's names where they
#: mean the same).
REASONS = {
    "als": "model",
    "follows": "follows_recent",
    "neighbours": "similar_to_recent",
    "popular": "popular",
    "trending": "trending",
}


def learned_picks(
    model: ModelVersion,
    query: Query,
    k: int,
    mask: np.ndarray | None,
    seen: np.ndarray,
    now: float,
    new_item_rules: tuple | None = None,
) -> list[tuple[float, str, str]] | None:
    """The best ``k`` (score, id, reason) by the learned ranker in force for ``query``, or
    None when that ranker is the sum (the caller ranks by the sum).

    ``mask`` allows item columns, ``seen`` (columns) are left out; ``new_item_rules`` =
    (the request's rules, the rules whose catalog rows decide) say which folded-in new items
    may appear; the rows are looked up only when the version has new items.
    """
    stage = model.rank_stage
    name, ranker = stage.ranker(query.request.ranker)
    if stage.arrays is None or name == "sum":
        return None
    state = query.state
    last = state.last_event
    if len(seen) > 1 and not (seen[1:] > seen[:-1]).all():  # excluded ids were appended
        seen = np.unique(seen)
    user = UserContext(state.vector, seen, state.recent,
                       0.0 if last is None else max(0.0, now - last))  # fmt: skip
    depths = DEPTHS if k <= DEPTHS["als"] else {**DEPTHS, "als": k}
    hits = gather(
        stage.arrays, user,
        lambda vector, skip, depth: retrieval.best_columns(model, vector, skip, depth, mask),
        depths,
    )  # fmt: skip
    if mask is not None:
        hits = [h if h.name == "als" else _allowed(h, mask) for h in hits]
    cols = candidates(hits)
    features = assemble(stage.arrays, user, hits, cols)
    scores = ranker.scores(features)
    order = np.argsort(-scores, kind="stable")
    ids = model.item_ids.ids_of(cols[order[:k]])
    channel = features[order[:k], RANK_COLUMNS].argmin(axis=1).tolist()
    picks = [(float(s), i, REASONS[CHANNELS[c]])
             for s, i, c in zip(scores[order[:k]].tolist(), ids, channel)]  # fmt: skip
    if model.new_items.ids and new_item_rules is not None:
        picks = _with_new_items(model, query, k, picks, features[order, SUM], new_item_rules)
    return picks[:k]


def _allowed(hits: ChannelHits, mask: np.ndarray) -> ChannelHits:
    keep = mask[hits.cols]
    return ChannelHits(hits.name, hits.cols[keep], hits.scores[keep])


def _with_new_items(model, query, k, picks, sums, new_item_rules):
    """``picks`` with the best new items, each placed where the sum would rank it among the
    candidates (``sums``: their sum scores, in ``picks``' order and beyond), scored as the
    pick before it so scores never rise down the list."""
    rules, base = new_item_rules
    rows, catalog = query.rows(base), query.request.catalog
    state = query.state
    new = retrieval.new_item_picks(
        model, state.vector, k, state.seen_new, lambda item: id_allowed(rules, rows, catalog, item)
    )
    by_sum = np.sort(sums)[::-1]
    out = list(picks)
    # Insert lowest first: earlier insertions must not shift a later one's place.
    for score, item, reason in sorted(new, key=lambda p: p[0]):
        at = int(np.searchsorted(-by_sum, -score, side="left"))
        if at >= k:
            continue
        at = min(at, len(out))
        value = out[at - 1][0] if at > 0 else (out[0][0] if out else score)
        out.insert(at, (value, item, reason))
    return out
