"""Features of (user, candidate) pairs: what a ranker sees of each candidate.

Every feature comes from the version's arrays (ranking/channels.py's :class:`RankArrays`) and
the user's state at request time; the builder computes the same ones for its training queries
from the arrays of the refit's training part. :data:`FEATURES` is the one table of them, in
column order (docs/ranking.md is generated from it); a version records the names its rankers
were trained on, and a server whose table differs ranks with the sum instead.

Counts and ranks enter as ``log1p``; a candidate a channel did not bring has that channel's
score 0 and rank :data:`ABSENT_RANK`.
"""

from __future__ import annotations

import math

import numpy as np

from ..vectors.sorted_lookup import run_starts
from .channels import (
    CHANNELS,
    ChannelHits,
    RankArrays,
    UserContext,
    following,
    near,
)

#: The rank a channel gives a candidate it did not bring.
ABSENT_RANK = 1000

FEATURES: tuple[tuple[str, str], ...] = (
    ("als", "ALS preference of the user for the item: Y_i . x"),
    ("similarity", "Cosine of the item to the user's positive items, summed: Y_i . q / norm(Y_i)"),
    (
        "sum",
        "The sum ranker's score: ALS + similarity term + sequence term, as the version weighs "
        "them (what earlier releases ranked by)",
    ),
    ("follows", "Sequential-rule score from the user's recent items, at the version's depth"),
    ("follows_last1", "Sequential-rule score from the user's newest item alone"),
    ("follows_last3", "Sequential-rule score from the user's 3 newest items, decayed"),
    ("neighbours", "Item-to-item similarity to the user's 3 newest items, decayed"),
    ("neighbours_last1", "Item-to-item similarity to the user's newest item alone"),
    ("window_count", "log1p of the item's positive events in the window"),
    ("recent_count", "log1p of its positive events among the window's newest 2,000"),
    ("trend", "log((recent + 1) / (window x recent share + 1)): above 0 when rising"),
    ("since_last", "log1p of the events in the window after the item's newest one"),
    ("age", "log1p of the events in the window after the item's oldest one"),
    ("norm", "Length of the item's ALS factors"),
    *(
        (f"rank_{c}", f"log1p of the item's rank in the {c} channel (absent: 1,000)")
        for c in CHANNELS
    ),
    ("channels", "How many channels brought the item"),
    ("user_items", "log1p of the distinct items the user touched in the window"),
    ("user_gap", "log1p of the seconds since the user's previous event"),
)
FEATURE_NAMES = tuple(name for name, _ in FEATURES)
#: Column of the sum ranker's score: the baseline every learned ranker must beat.
SUM = FEATURE_NAMES.index("sum")
_COLUMN = {name: k for k, name in enumerate(FEATURE_NAMES)}
#: The columns of the channels' ranks, in CHANNELS order.
RANK_COLUMNS = slice(_COLUMN[f"rank_{CHANNELS[0]}"], _COLUMN[f"rank_{CHANNELS[-1]}"] + 1)
#: The features of the item alone, contiguous in the table: computed once per version
#: (:func:`item_block`), gathered per request.
ITEM_FEATURES = ("window_count", "recent_count", "trend", "since_last", "age", "norm")
_ITEM_BLOCK = slice(_COLUMN[ITEM_FEATURES[0]], _COLUMN[ITEM_FEATURES[-1]] + 1)
_NORM = ITEM_FEATURES.index("norm")
_LOG_RANK = np.log1p(np.arange(ABSENT_RANK + 1, dtype=np.float64))
_POSITIONS = np.arange(ABSENT_RANK, dtype=np.int64)
_CHANNEL_NUMBERS = np.arange(len(CHANNELS))
assert FEATURE_NAMES[_ITEM_BLOCK] == ITEM_FEATURES
#: The columns of the rule tables' depths (channels.following and channels.near, in order).
_FOLLOWS = slice(_COLUMN["follows"], _COLUMN["follows_last3"] + 1)
_NEIGHBOURS = slice(_COLUMN["neighbours"], _COLUMN["neighbours_last1"] + 1)
assert FEATURE_NAMES[_FOLLOWS] == ("follows", "follows_last1", "follows_last3")
assert FEATURE_NAMES[_NEIGHBOURS] == ("neighbours", "neighbours_last1")


def item_block(item_stats: np.ndarray) -> np.ndarray:
    """The :data:`ITEM_FEATURES` of every item column, from its counters (ITEM_STATS order)."""
    stats = np.asarray(item_stats, dtype=np.float64)
    window, recent = stats[:, 0], stats[:, 1]
    share = float(recent.sum()) / max(float(window.sum()), 1.0)
    return np.column_stack([
        np.log1p(window),
        np.log1p(recent),
        np.log((recent + 1.0) / (window * share + 1.0)),
        np.log1p(stats[:, 2]),
        np.log1p(stats[:, 3]),
        np.maximum(stats[:, 4], 1e-12),
    ])  # fmt: skip


def candidates(hits: list[ChannelHits]) -> np.ndarray:
    """The union of the channels' columns, ascending."""
    if not hits:
        return np.zeros(0, np.int64)
    # A hundred columns or so: a sort and a mask (np.unique's set-up costs more).
    cols = np.sort(np.concatenate([h.cols for h in hits]))
    return cols[run_starts(cols)]


def assemble(
    arrays: RankArrays, user: UserContext, hits: list[ChannelHits], cols: np.ndarray
) -> np.ndarray:
    """The feature matrix of candidates ``cols`` (ascending; one row each, one column per
    :data:`FEATURES` entry) for ``user``, whose channels brought ``hits``."""
    # Column-major: every feature is written as a column, and the tree evaluator reads the
    # matrix feature by feature (its transpose is then contiguous, no copy).
    out = np.zeros((len(cols), len(FEATURES)), dtype=np.float64, order="F")
    if not len(cols):
        return out
    rows = arrays.scoring_matrix[cols]
    half = rows.shape[1] // 2
    item = arrays.item_block[cols]
    out[:, _ITEM_BLOCK] = item
    # One product gives ALS (Y.x), the similarity's numerator (Y.q) and the sum's
    # similarity term (beta Y_unit.q) for every candidate.
    x, q = user.vector[:half], user.vector[half:]
    by = np.zeros((2 * half, 3), dtype=rows.dtype)
    by[:half, 0], by[:half, 1], by[half:, 2] = x, q, q
    als, numerator, similarity_term = (rows @ by).T
    out[:, _COLUMN["als"]] = als
    out[:, _COLUMN["similarity"]] = numerator / item[:, _NORM]
    weights = arrays.sequence
    rules = following(arrays, user)
    term = 0.0
    if rules is not None:
        found = rules.at(cols)
        out[:, _FOLLOWS] = found
        best = float(rules.scores[:, 0].max(initial=0.0))
        if weights.weight > 0 and best > 0:
            # Scaled by the best successor of all, seen ones included, as the request path's
            # sequence term is (recommend/terms.py).
            term = found[:, 0] * (weights.weight / best)
    out[:, SUM] = als + similarity_term + term
    neighbours = near(arrays, user)
    if neighbours is not None:
        out[:, _NEIGHBOURS] = neighbours.at(cols)
    # Every channel's ranks in one scatter: (candidate row, channel) <- position in it.
    lengths = [len(h.cols) for h in hits]
    at = np.searchsorted(cols, np.concatenate([h.cols for h in hits]))
    ranks = np.full((len(cols), len(CHANNELS)), ABSENT_RANK, dtype=np.int64)
    ranks[at, np.repeat(_CHANNEL_NUMBERS, lengths)] = np.concatenate(
        [_POSITIONS[:n] if n <= ABSENT_RANK else _deep_positions(n) for n in lengths]
    )
    out[:, RANK_COLUMNS] = _LOG_RANK[ranks]
    out[:, _COLUMN["channels"]] = np.bincount(at, minlength=len(cols))
    out[:, _COLUMN["user_items"]] = math.log1p(len(user.seen))
    out[:, _COLUMN["user_gap"]] = math.log1p(max(user.gap, 0.0))
    return out


def _deep_positions(n: int) -> np.ndarray:
    # A request for more than ABSENT_RANK items searches the ALS channel that deep; past it,
    # every position counts as the last one (rankers learn from channels 30 deep).
    return np.minimum(np.arange(n), ABSENT_RANK - 1)


def feature_table() -> str:
    """:data:`FEATURES` as a Markdown table (docs/ranking.md holds it; a test checks)."""
    rows = [f"| {k} | `{name}` | {text} |" for k, (name, text) in enumerate(FEATURES)]
    return "\n".join(["| column | feature | what it is |", "| ---: | --- | --- |", *rows]) + "\n"
