"""Recall channels: where the rank stage's candidates come from, each with its own score.

Every channel returns its top ``k`` item columns for one user, best first, with the user's
seen items left out; no channel knows about the others or about rules and policy:

* ``als`` -- the highest ALS + similarity scores of the user's (fold-in) vector: one dot
  product with the version's scoring rows, exact or through the version's index;
* ``follows`` -- what follows the user's recent items in the window's sequences;
* ``neighbours`` -- items whose users overlap most with those of the user's recent items
  (item-to-item cosine of the window, training/neighbours.py);
* ``popular`` -- the window's most popular items;
* ``trending`` -- the items most popular among the window's newest events.

The channels read a :class:`RankArrays` (the arrays of one version, or of a refit's training
part) and a :class:`UserContext` (what is known of the user now).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ..vectors.sequences import SequenceWeights, sequence_score_table
from ..vectors.sorted_lookup import contains, lookup
from ..vectors.top_n import top_n

CHANNELS = ("als", "follows", "neighbours", "popular", "trending")

#: The per-item counters a version carries (training/item_stats.py), one column each.
ITEM_STATS = (
    "window_count",  # positive events on the item in the window
    "recent_count",  # positive events on it among the window's newest 2,000
    "since_last",  # events in the window after the item's newest event
    "since_first",  # events in the window after its oldest event (its age in the window)
    "norm",  # length of its ALS factors
)

#: How many items each channel contributes (its depth). On Online Retail, 50/50/50/20/20
#: brought the next item for 42.8% of events against 38.7% here, but the ranker hit it 0.1
#: point more often (HR@10 0.2967 against 0.2956): what a channel ranks past 30th rarely
#: makes a top 10, and every candidate costs features and tree walks (docs/ranking.md).
DEPTHS = {"als": 30, "follows": 30, "neighbours": 30, "popular": 10, "trending": 10}

#: Recent items whose neighbours the channel sums (newest first, decayed like the rules).
NEIGHBOUR_DEPTH = 3

_NONE = np.zeros(0, dtype=np.int64)
_NO_SCORES = np.zeros(0, dtype=np.float32)


class RankArrays(NamedTuple):
    """What the rank stage reads of one model version.

    Parameters
    ----------
    scoring_matrix
        Each item's scoring row ``[Y, beta * Y_unit]`` (training/fold_in.py).
    rules
        Sequential rules as CSR arrays (indptr, indices, weights), or None.
    neighbours
        Item-to-item neighbours as CSR arrays (indptr, indices, weights), or None.
    item_stats
        Per-item counters of the window (training/item_stats.py), one row per column.
    popular, trending
        Item columns by window popularity and by recent popularity, best first.
    sequence
        The sequence term's weights the sum ranker scores with.
    item_block
        The features of each item alone, from ``item_stats`` (features.item_block): computed
        once, gathered per request.
    """

    scoring_matrix: np.ndarray
    rules: tuple | None
    neighbours: tuple | None
    item_stats: np.ndarray
    popular: np.ndarray
    trending: np.ndarray
    sequence: SequenceWeights
    item_block: np.ndarray


class RuleTable(NamedTuple):
    """One user's rule sums at several depths (vectors/sequences.py's table): the columns
    their newest items lead to, ascending, and one score column per entry of ``depths``; the
    first is the depth the table's channel ranks by."""

    cols: np.ndarray
    scores: np.ndarray
    depths: tuple[int, ...]

    def best_first(self, seen: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best columns at the first depth that are not in ``seen`` (ascending),
        best first (ties: lower column), and their scores."""
        scores = self.scores[:, 0]
        keep = (scores > 0) & ~contains(seen, self.cols)
        cols, scores = self.cols[keep], scores[keep]
        # A few hundred entries at most: one sort (top_n's partition costs more here).
        best = np.lexsort((cols, -scores))[:k]
        return cols[best].astype(np.int64), scores[best]

    def at(self, queries: np.ndarray) -> np.ndarray:
        """The scores of ``queries`` (columns) at every depth, one column each; 0 where the
        user's items do not lead to the query."""
        return lookup(self.cols, self.scores, queries)


class UserContext:
    """What the rank stage knows of one user at request time; lives for one request, and
    keeps the rule tables its channels and features share (each computed once)."""

    __slots__ = ("_memo", "gap", "recent", "seen", "vector")

    def __init__(self, vector: np.ndarray, seen: np.ndarray, recent: np.ndarray, gap: float):
        self.vector = vector  # [x, q], as the scoring rows expect
        self.seen = seen  # item columns touched in the window, ascending
        self.recent = recent  # their most recent distinct columns, newest first
        self.gap = gap  # seconds since their newest event (0 when unknown)
        self._memo: dict = {}

    def table(
        self, name: str, rules: tuple | None, depths: tuple[int, ...], decay: float
    ) -> RuleTable | None:
        """The sums of ``rules`` (CSR arrays, called ``name``) over the user's newest items at
        each of ``depths``; None without rules or recent items. Computed once per ``name``:
        every caller of one name passes the same depths (:func:`following`, :func:`near`)."""
        if rules is None or not len(self.recent):
            return None
        if name not in self._memo:
            cols, scores = sequence_score_table(*rules, self.recent, depths, decay)
            self._memo[name] = RuleTable(cols, scores, depths)
        return self._memo[name]


def following(arrays: RankArrays, user: UserContext) -> RuleTable | None:
    """What follows the user's newest items: as many as the sum looks back, the newest
    alone and the 3 newest (the order of features.py's columns)."""
    weights = arrays.sequence
    return user.table("rules", arrays.rules, (weights.depth, 1, 3), weights.decay)


def near(arrays: RankArrays, user: UserContext) -> RuleTable | None:
    """The neighbours of the user's :data:`NEIGHBOUR_DEPTH` newest items and of the newest
    alone (the order of features.py's columns)."""
    return user.table("neighbours", arrays.neighbours, (NEIGHBOUR_DEPTH, 1), arrays.sequence.decay)


class ChannelHits(NamedTuple):
    """One channel's candidates for one user: columns best first, and their scores."""

    name: str
    cols: np.ndarray
    scores: np.ndarray


#: ALS retrieval: (vector, seen columns, k) -> (columns, scores), best first.
Search = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def exact_search(scoring_matrix: np.ndarray) -> Search:
    """ALS retrieval by one dot product with every scoring row."""

    def search(vector: np.ndarray, seen: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = scoring_matrix @ vector
        scores[seen] = -np.inf
        best = top_n(scores, k)
        return best, scores[best]

    return search


def als(arrays: RankArrays, user: UserContext, k: int, search: Search) -> ChannelHits:
    cols, scores = search(user.vector, user.seen, k)
    return ChannelHits("als", np.asarray(cols, dtype=np.int64), scores)


def follows(arrays: RankArrays, user: UserContext, k: int) -> ChannelHits:
    table = following(arrays, user)
    if table is None:
        return ChannelHits("follows", _NONE, _NO_SCORES)
    return ChannelHits("follows", *table.best_first(user.seen, k))


def neighbours(arrays: RankArrays, user: UserContext, k: int) -> ChannelHits:
    table = near(arrays, user)
    if table is None:
        return ChannelHits("neighbours", _NONE, _NO_SCORES)
    return ChannelHits("neighbours", *table.best_first(user.seen, k))


def popular(arrays: RankArrays, user: UserContext, k: int) -> ChannelHits:
    return _ranking("popular", arrays.popular, arrays.item_stats[:, 0], user.seen, k)


def trending(arrays: RankArrays, user: UserContext, k: int) -> ChannelHits:
    return _ranking("trending", arrays.trending, arrays.item_stats[:, 1], user.seen, k)


def gather(
    arrays: RankArrays, user: UserContext, search: Search, depths: dict[str, int] = DEPTHS
) -> list[ChannelHits]:
    """Every channel's candidates for ``user``, in :data:`CHANNELS` order."""
    return [
        als(arrays, user, depths["als"], search),
        follows(arrays, user, depths["follows"]),
        neighbours(arrays, user, depths["neighbours"]),
        popular(arrays, user, depths["popular"]),
        trending(arrays, user, depths["trending"]),
    ]


def ranked_columns(counts: np.ndarray, tiebreak: np.ndarray, most: int) -> np.ndarray:
    """The ``most`` columns with the highest ``counts`` (ties: higher ``tiebreak``, then lower
    column), only those counted at all: the popular and trending orders of a version."""
    order = np.lexsort((np.arange(len(counts)), -tiebreak, -counts))[:most]
    return order[counts[order] > 0].astype(np.int64)


def _ranking(name: str, order: np.ndarray, counts: np.ndarray, seen: np.ndarray, k: int):
    # Seen items are few next to the ranking's length: look past at most that many.
    head = order[: k + len(seen)]
    head = head[~contains(seen, head)][:k]
    return ChannelHits(name, head, np.log1p(counts[head]))
