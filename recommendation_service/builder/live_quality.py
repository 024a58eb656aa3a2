"""Live quality: would the service have recommended the item a user just interacted with?

Before the builder applies an event of a user it already has in the window, it asks what the
service would have answered that user at that moment -- the served model, the user's fresh
vector from their window history, their seen items excluded -- and whether the event's item is
in that top 10. The same question goes to the popularity baseline (the window's most popular
items the user has not seen). Hit rate and NDCG@10 over the last ``size`` scored events, side
by side, are the service's quality on its own stream, with no held-out data and no delay.

Scoring costs one fold-in solve and one pass over the catalog per event, so it is sampled to
stay within a share of the consumer thread's time (``budget``): on small catalogs every event
is scored; on large ones a steady sample is.
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np

from ..config.builder import LiveQualityParams
from ..data.events import Event
from ..data.window import SlidingWindow
from ..training.fold_in import FoldIn
from ..vectors.top_n import top_n

#: Discount of a hit at each rank (NDCG with one relevant item: its DCG is the score).
_DISCOUNT = [1.0 / math.log2(rank + 2) for rank in range(1000)]


class LiveQuality:
    """Rolling HR@k and NDCG@k of the served model and of popularity on the incoming events.

    Not thread-safe: the builder calls :meth:`score` and :meth:`summary` under its lock.
    """

    def __init__(self, params: LiveQualityParams | None = None) -> None:
        self.params = params or LiveQualityParams()
        # One row per scored event: service gain, popularity gain (0 = miss, else 1/log2(r+2)).
        self._gains: deque[tuple[float, float]] = deque(maxlen=self.params.size)
        self._sums = [0.0, 0.0, 0, 0]  # service dcg, popularity dcg, service hits, pop hits
        self.scored = 0
        self.skipped = 0
        self._spent = 0.0
        self._started = time.monotonic()

    def _due(self) -> bool:
        """Whether scoring the next event keeps the time spent within the budget."""
        budget = self.params.budget
        if budget <= 0:
            return False
        return self._spent <= budget * (time.monotonic() - self._started)

    def score(self, event: Event, window: SlidingWindow, fold: FoldIn | None) -> bool:
        """Score ``event`` before it enters ``window``; False if it was not scored.

        Events of users the window does not have (nothing to recommend from), of items the
        model does not know (no model could have ranked them: they count as misses for both
        methods all the same, so a catalog of new items shows as lower quality), and events
        over the time budget are not scored.
        """
        if fold is None or event.weight <= 0:
            return False
        if not self._due():
            self.skipped += 1
            return False
        start = time.monotonic()
        history = window.user_history(event.user)
        if history is None:
            self._spent += time.monotonic() - start
            return False
        k = self.params.k
        service = 0.0
        vector = fold.user_vector(history)
        target = fold.item_col.get(event.item)
        if vector is not None and target is not None:
            scores = fold.scoring_matrix @ vector.vector
            scores[vector.seen] = -np.inf
            ranked = top_n(scores, k).tolist()
            if target in ranked:
                service = _DISCOUNT[ranked.index(target)]
        popular = window.popular_items(k, set(history.items))
        baseline = _DISCOUNT[popular.index(event.item)] if event.item in popular else 0.0
        self._add(service, baseline)
        self._spent += time.monotonic() - start
        return True

    def _add(self, service: float, baseline: float) -> None:
        if len(self._gains) == self._gains.maxlen:
            old_s, old_p = self._gains[0]
            self._sums[0] -= old_s
            self._sums[1] -= old_p
            self._sums[2] -= old_s > 0
            self._sums[3] -= old_p > 0
        self._gains.append((service, baseline))
        self._sums[0] += service
        self._sums[1] += baseline
        self._sums[2] += service > 0
        self._sums[3] += baseline > 0
        self.scored += 1

    def summary(self) -> dict:
        """The rolling figures, as the status file and ``/model/info`` show them."""
        n = len(self._gains)
        if n == 0:
            return {"k": self.params.k, "events": 0, "scored_total": 0}
        dcg_s, dcg_p, hits_s, hits_p = self._sums
        elapsed = max(time.monotonic() - self._started, 1e-9)
        return {
            "k": self.params.k,
            "events": n,
            "scored_total": self.scored,
            "skipped_for_budget": self.skipped,
            "time_share": round(self._spent / elapsed, 4),
            "service": {"hit_rate": round(hits_s / n, 4), "ndcg": round(max(dcg_s, 0.0) / n, 4)},
            "popularity": {
                "hit_rate": round(hits_p / n, 4),
                "ndcg": round(max(dcg_p, 0.0) / n, 4),
            },
        }
