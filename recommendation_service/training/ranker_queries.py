"""Training queries for the rank stage, from a refit's hold-out.

Each held-out event is one query, asked the way a server would have asked it just before
the event: the user's fold-in vector and recent items from their events before it, the
channels and features from the arrays of the window's training part (the events before the
hold-out). The candidates the channels bring are the query's rows; the one the user took
next is labelled 1 -- never a later event, and never an item of the training part's future.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..ranking.channels import (
    CHANNELS,
    DEPTHS,
    RankArrays,
    UserContext,
    gather,
    ranked_columns,
)
from ..ranking.features import FEATURE_NAMES, assemble, candidates, item_block
from ..vectors.sequences import SequenceWeights
from ..vectors.top_n import top_n
from .fold_in import FoldIn, recent_columns
from .holdout import HoldOut
from .item_stats import item_stats
from .neighbours import item_neighbours

#: Items kept in a version's popular and trending orders (a channel reads its top 20 unseen).
RANKING_KEPT = 1_000
#: Neighbours a version keeps per item: the channel sums them over the user's 3 newest items,
#: so 20 each give it up to 60 to choose its 50 from, at 160 bytes an item (50 would make
#: them the largest array of a version on big catalogs).
VERSION_NEIGHBOURS = 20


def rank_arrays(
    fold: FoldIn,
    seen: sp.csr_matrix,
    cols: np.ndarray,
    weights: np.ndarray,
    rules: tuple | None,
    sequence: SequenceWeights,
) -> RankArrays:
    """The rank stage's arrays of a fitted model: its scoring rows (``fold``), the
    neighbours of ``seen`` (users x items), the counters of the events ``cols`` and
    ``weights`` (oldest first), the sequential ``rules`` and the sum's ``sequence`` weights."""
    stats = item_stats(cols, weights, fold.scoring_matrix[:, : fold.factors])
    knn = item_neighbours(seen, VERSION_NEIGHBOURS)
    return RankArrays(
        scoring_matrix=fold.scoring_matrix,
        rules=rules,
        neighbours=(knn.indptr.astype(np.int64), knn.indices.astype(np.int32), knn.data),
        item_stats=stats,
        popular=ranked_columns(stats[:, 0], stats[:, 1], RANKING_KEPT),
        trending=ranked_columns(stats[:, 1], stats[:, 0], RANKING_KEPT),
        sequence=sequence,
        item_block=item_block(stats),
    )


_NO_ROWS = np.zeros((0, len(FEATURE_NAMES)))


@dataclass
class Queries:
    """Feature rows of each query, which row is the event's item, and which channels
    brought it (one row of booleans per query, :data:`CHANNELS` order). A query whose
    candidates lack its item has no rows."""

    features: list[np.ndarray]
    labels: list[np.ndarray]
    channel_hits: np.ndarray

    def __len__(self) -> int:
        return len(self.features)


def training_queries(
    split: HoldOut, arrays: RankArrays, fold: FoldIn, user_factors: np.ndarray
) -> Queries:
    """One query per event of ``split``, its candidates and features from ``arrays`` (those
    of ``split``'s training part), ``fold`` (its fold-in) and ``user_factors`` (its fitted
    users).

    A user's vector is the one a server would hold: folded in from their events when they had
    a held-out event before this one, else the training part's fitted one -- the two score
    differently, and a ranker must learn on what it will be served.
    """
    vectors = np.zeros((len(split), fold.scoring_matrix.shape[1]), dtype=np.float32)
    fresh, stale = np.flatnonzero(split.fresh), np.flatnonzero(~split.fresh)
    if len(fresh):
        vectors[fresh] = fold.vectors_of([split.history[r] for r in fresh.tolist()])
    if len(stale):
        vectors[stale] = fold.base_vectors(user_factors, split.train, split.users[stale])
    features, labels = [], []
    hits_of = np.zeros((len(split), len(CHANNELS)), dtype=bool)
    for start in range(0, len(split), 256):  # bounded memory: 256 score rows at a time
        stop = min(start + 256, len(split))
        scores = vectors[start:stop] @ arrays.scoring_matrix.T
        for r in range(start, stop):
            cols = split.history[r][0]
            seen = np.unique(cols[cols >= 0])
            row = scores[r - start]
            row[seen] = -np.inf
            best = top_n(row, DEPTHS["als"])
            recent = split.recent[r] if split.rules is not None else recent_columns(cols, 10)
            user = UserContext(vectors[r], seen, recent, float(split.gap[r]))
            hits = gather(arrays, user, lambda v, s, k, best=best, row=row: (best, row[best]))
            cands = candidates(hits)
            target = split.targets[r]
            label = cands == target
            hits_of[r] = [bool((h.cols == target).any()) for h in hits]
            if not label.any():
                # No ranker can place an item its candidates lack: such a query scores 0
                # for every ranker and teaches none, so its rows are not worth assembling
                # (most queries, where recall is under a half).
                features.append(_NO_ROWS)
                labels.append(label[:0])
                continue
            features.append(assemble(arrays, user, hits, cands))
            labels.append(label)
    return Queries(features, labels, hits_of)
