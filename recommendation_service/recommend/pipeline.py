"""How a request becomes a list: named stages, read top to bottom in
:meth:`RecommendPipeline.run`.

1. **query** -- the request with the user's state (fresh vector, or the version's row; none
   for an unknown user) and the catalog rows its rules allow, each looked up once
   (request.py).
2. **promote** -- the items of the promoted slots, when the request promotes (promotion.py).
3. **rank** (:meth:`RecommendPipeline.ranked`) -- the best allowed items: the rules as a mask
   over the version's columns (masks.py); then, when the version ranks with a learned ranker
   (or the request asks for one), candidates from every channel ordered by it
   (rank_stage.py); else candidates from the version's best columns and its folded-in new
   items, what follows the user's recent items, or the popular items for an unknown user
   (retrieval.py); their scores, the sum of the score terms (terms.py); and why each is
   there: the term that contributes most (explain.py).
4. **shape** -- diversity: refill from values the cap has not filled, then cap and cut
   (diversity.py); promoted items merged in by score (promotion.py); new catalog items
   explored (exploration.py).

Stages that need more candidates (promotion, diversity's refill) ask this pipeline's rank
step; retrieval never calls back into a shaping stage. Each cache belongs to the stage that
uses it (the masks, the exploration pool) and lives as long as the pipeline, which a served
version owns: a new version starts with empty caches. The pipeline holds no reference to the
version's arrays, so an old version is freed as soon as no request uses it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from operator import itemgetter

import numpy as np

from ..common.id_table import IdTable
from ..rules.item_rules import NO_RULES, id_allowed
from . import diversity, explain, exploration, promotion, rank_stage, retrieval, terms
from .masks import ColumnMasks
from .request import Query, RecommendRequest
from .result import Recommendation
from .version import ModelVersion


class RecommendPipeline:
    """The request path of one model version.

    Parameters
    ----------
    item_ids
        The version's item ids, in column order (what the stages' caches are keyed on).
    """

    def __init__(self, item_ids: IdTable) -> None:
        self.masks = ColumnMasks(item_ids)
        self.explore_pool = exploration.ExplorePool(lambda item: item_ids.row_of(item) is not None)

    def run(self, model: ModelVersion, request: RecommendRequest) -> Recommendation:
        """The list ``request`` gets from ``model``: top ``request.n`` items, best first,
        without the user's seen items and the items the rules do not allow; fewer only when
        fewer pass."""
        sequence = request.sequence or model.sequence
        query = Query(request, model.user_state(request.user), sequence)
        more = partial(self.ranked, model)
        promoted = promotion.reserve(query, more)
        taken = set(promoted.items) if promoted else set()
        want = request.n - len(taken)
        scorable = model.n_items + len(model.new_items.ids)
        ranked = self.ranked(model, query, min(diversity.pool(request), scorable)).without(taken)
        ranked = diversity.refill(query, ranked, want, more)
        ranked = diversity.cap(query, ranked, want)
        ranked = promotion.merge(ranked, promoted)
        return exploration.explore(query, ranked, self.explore_pool, model.new_items)

    def ranked(
        self,
        model: ModelVersion,
        query: Query,
        k: int,
        extra_rule: tuple | None = None,
        avoid: tuple | None = None,
    ) -> Recommendation:
        """The best ``k`` allowed, unseen items for the query, before any shaping.

        ``extra_rule`` is a named rule every item must pass too (promotion); ``avoid`` =
        (value code per catalog row, codes) leaves out items with those values (diversity).
        """
        rules, catalog = query.request.rules, query.request.catalog
        if extra_rule is not None:
            rules = replace(rules, named=(*rules.named, extra_rule))
        state = query.state
        if state is None:
            rows_ok = None if rules == NO_RULES else query.rows(rules)
            mask = self.masks.avoiding(self.masks.allowed(rules, catalog, rows_ok), catalog, avoid)
            return retrieval.popular(model, k, mask)
        # Excluded ids are left out like seen items: no mask over all items for a few ids.
        base = replace(rules, exclude=frozenset()) if rules.exclude else rules
        rows_ok = None if base == NO_RULES else query.rows(base)
        mask = self.masks.avoiding(self.masks.allowed(base, catalog, rows_ok), catalog, avoid)
        seen = state.seen
        if rules.exclude:
            excluded = [c for c in map(model.item_ids.row_of, rules.exclude) if c is not None]
            seen = np.concatenate([seen, np.asarray(excluded, dtype=seen.dtype)])
        learned = rank_stage.learned_picks(
            model, query, k, mask, seen, time.time(), (rules, base)
        )
        if learned is not None:
            return Recommendation(
                [i for _, i, _ in learned], [s for s, _, _ in learned], "model", state.as_of,
                [r for _, _, r in learned],
            )  # fmt: skip
        cols, _ = retrieval.best_columns(model, state.vector, seen, k, mask)
        following = query.successors(model.successors)
        if len(following[0]):
            more = retrieval.successor_columns(following, seen, k, mask)
            have = set(cols.tolist())
            extra = [c for c in more.tolist() if c not in have]
            cols = np.concatenate([cols, np.asarray(extra, dtype=cols.dtype)])
        scores, parts = terms.score(terms.Candidates.of(model, cols), query)
        ids = model.item_ids.ids_of(cols)
        picks = list(zip(scores.tolist(), ids, explain.reasons(parts)))
        if model.new_items.ids:
            rows_new = query.rows(base)
            picks += retrieval.new_item_picks(
                model, state.vector, k, state.seen_new,
                lambda item: id_allowed(rules, rows_new, catalog, item),
            )  # fmt: skip
        # Retrieval ranked by one dot product; the terms' sum may differ from it in the last
        # bit, and new items come from a source of their own: order by the final score.
        picks.sort(key=itemgetter(0), reverse=True)  # stable: ties keep retrieval's order
        picks = picks[:k]
        return Recommendation(
            [i for _, i, _ in picks], [s for s, _, _ in picks], "model", state.as_of,
            [r for _, _, r in picks],
        )  # fmt: skip
