"""Live quality: would the service have recommended the item a user just interacted with?

Before the builder applies an event of a user it already has in the window, it asks what the
service would have answered that user at that moment -- the served model, the user's fresh
vector from their window history and what follows their recent items, their seen items
excluded -- and whether the event's item is in that top 10. When the version has a rank stage
(ranking/), the service's list is its channels' candidates ordered by the ranker the version
ranks by, and the sum and the best learned ranker are scored on the same candidates, side by
side (the two variants a version carries). The same question goes to the service's ALS part
alone, its sequential rules alone and the popularity baseline (the window's most popular items
the user has not seen). Hit rate and NDCG@10 over the last ``size`` scored
events, side by side, are the service's quality on its own stream, with no held-out data and
no delay.

Scoring costs one fold-in solve and one pass over the catalog per event, so it is sampled to
stay within a share of the consumer thread's time (``budget``): on small catalogs every event
is scored; on large ones a steady sample is.
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np

from ...config.builder import LiveQualityParams
from ...data.events import Event
from ...data.window import SlidingWindow
from ...ranking.channels import DEPTHS, UserContext
from ...ranking.rankers import top_lists
from ...training.fold_in import FoldIn
from ...training.ranker_refit import RankStage
from ...vectors.sequences import sequence_scores
from ...vectors.top_n import top_n

#: Discount of a hit at each rank (NDCG with one relevant item: its DCG is the score).
_DISCOUNT = [1.0 / math.log2(rank + 2) for rank in range(1000)]


#: What is scored, side by side: the service, the sum and the learned ranker over the rank
#: stage's candidates (both the service's list when the version has no rank stage), its ALS
#: part alone, its sequence part alone, and the popularity baseline.
METHODS = (
    "service", "sum ranker", "learned ranker", "ALS fold-in", "sequential rules", "popularity",
)  # fmt: skip
_AT = {method: k for k, method in enumerate(METHODS)}


class LiveQuality:
    """Rolling HR@k and NDCG@k of the served model, its parts and popularity on the incoming
    events.

    Not thread-safe: the builder calls :meth:`score` and :meth:`summary` under its lock.
    """

    def __init__(self, params: LiveQualityParams | None = None) -> None:
        self.params = params or LiveQualityParams()
        # One row per scored event: a gain per method (0 = miss, else 1/log2(rank + 2)).
        self._gains: deque[tuple[float, ...]] = deque(maxlen=self.params.size)
        self._dcg = np.zeros(len(METHODS))
        self._hits = np.zeros(len(METHODS), dtype=np.int64)
        self.scored = 0
        self.skipped = 0
        self._spent = 0.0
        self._started = time.monotonic()
        self._stage: RankStage | None = None

    def serve(self, stage: RankStage | None) -> None:
        """Score lists as the version with this rank stage (None: none) answers them."""
        self._stage = stage

    def due(self) -> bool:
        """Whether scoring the next event keeps the time spent within the budget."""
        budget = self.params.budget
        if budget <= 0:
            return False
        return self._spent <= budget * (time.monotonic() - self._started)

    def score(
        self,
        event: Event,
        window: SlidingWindow,
        fold: FoldIn | None,
        sequence: tuple | None = None,
    ) -> bool:
        """Score ``event`` before it enters ``window``; False if it was not scored.

        ``sequence`` is the served version's sequential rules (indptr, indices, weights) and
        the sequence term's weights, as the servers score with them (None: no such term).
        Events of users the window does not have (nothing to recommend from), of items the
        model does not know (no model could have ranked them: they count as misses for every
        method all the same, so a catalog of new items shows as lower quality), and events
        over the time budget are not scored.
        """
        if fold is None or event.weight <= 0:
            return False
        if not self.due():
            self.skipped += 1
            return False
        start = time.monotonic()
        history = window.user_history(event.user)
        if history is None:
            self._spent += time.monotonic() - start
            return False
        k = self.params.k
        gains = [0.0] * len(METHODS)
        vector = fold.user_vector(history)
        target = fold.item_col.get(event.item)
        if vector is not None and target is not None:
            scores = fold.scoring_matrix @ vector.vector
            scores[vector.seen] = -np.inf
            als_top = top_n(scores, max(k, DEPTHS["als"]))
            gains[_AT["ALS fold-in"]] = _gain(als_top[:k], target)
            following = None
            if sequence is not None and len(vector.recent):
                rules, weights = sequence
                following = sequence_scores(*rules, vector.recent, weights.depth, weights.decay)
            if following is not None and len(following[0]):
                cols, values = following
                rules_only = np.full(fold.scoring_matrix.shape[0], -np.inf)
                rules_only[cols] = values
                rules_only[vector.seen] = -np.inf
                gains[_AT["sequential rules"]] = _gain(top_n(rules_only, k), target)
            als_scores = scores[als_top]
            if following is not None and len(following[0]) and weights.weight > 0:
                scores[cols] += weights.term(values)
                scores[vector.seen] = -np.inf
            summed = _gain(top_n(scores, k), target)
            gains[0] = gains[_AT["sum ranker"]] = gains[_AT["learned ranker"]] = summed
            if self._stage is not None:
                gap = float(event.ts - history.ts[-1])
                user = UserContext(vector.vector, vector.seen, vector.recent, max(gap, 0.0))
                self._rank(user, (als_top, als_scores), target, gains)
        popular = window.popular_items(k, set(history.items))
        gains[_AT["popularity"]] = (
            _DISCOUNT[popular.index(event.item)] if event.item in popular else 0.0
        )
        self._add(tuple(gains))
        self._spent += time.monotonic() - start
        return True

    def _rank(self, user: UserContext, als: tuple, target: int, gains: list[float]) -> None:
        """The rank stage's lists from one gathering of candidates: the version's ranker
        (the service), the sum and the best learned ranker."""
        stage, k = self._stage, self.params.k
        best, scores = als  # the ALS channel's search, done once for every list
        choice = stage.choice
        wanted = {
            "service": choice.chosen,
            "sum ranker": "sum",
            "learned ranker": choice.best_learned(),
        }
        rankers = {n: choice.rankers[n] for n in wanted.values() if n in choice.rankers}
        _, lists = top_lists(
            stage.arrays, user, lambda _v, _s, depth: (best[:depth], scores[:depth]), rankers, k
        )
        for method, name in wanted.items():
            if name in lists:
                gains[_AT[method]] = _gain(lists[name], target)

    def _add(self, gains: tuple[float, ...]) -> None:
        if len(self._gains) == self._gains.maxlen:
            old = np.array(self._gains[0])
            self._dcg -= old
            self._hits -= old > 0
        self._gains.append(gains)
        new = np.array(gains)
        self._dcg += new
        self._hits += new > 0
        self.scored += 1

    def summary(self) -> dict:
        """The rolling figures, as the status file and ``/model/info`` show them."""
        n = len(self._gains)
        if n == 0:
            return {"k": self.params.k, "events": 0, "scored_total": 0}
        elapsed = max(time.monotonic() - self._started, 1e-9)
        return {
            "k": self.params.k,
            "events": n,
            "scored_total": self.scored,
            "skipped_for_budget": self.skipped,
            "time_share": round(self._spent / elapsed, 4),
            **{
                method: {
                    "hit_rate": round(int(self._hits[m]) / n, 4),
                    "ndcg": round(max(float(self._dcg[m]), 0.0) / n, 4),
                }
                for m, method in enumerate(METHODS)
            },
        }


def _gain(ranked: np.ndarray, target: int) -> float:
    """The NDCG gain of ``target`` in ``ranked`` (0 when it is not there)."""
    hits = np.flatnonzero(ranked == target)
    return _DISCOUNT[int(hits[0])] if len(hits) else 0.0
