"""Scoring items by sequential rules: what tends to follow a user's most recent items.

The rules are a CSR matrix over item columns (training/successors.py builds them); a user's
score of item ``b`` is ``sum_j decay**j * rule(recent_j -> b)`` over their recent items,
newest first. Shared by the request path, the builder's live quality, tuning and evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .sorted_lookup import run_starts


@dataclass(frozen=True)
class SequenceWeights:
    """How much the sequence term counts in a score, and how far back it looks.

    Parameters
    ----------
    weight
        The term's weight. Its value for an item is its sequence score divided by the best
        sequence score among the user's candidates, times ``weight``: 1 makes the best
        successor of the user's recent items worth about as much as a confident ALS
        prediction (ALS scores of implicit feedback are near 1 for items it is sure of).
        0 turns the term off: the default, which the refit's tuning changes when a weight
        predicts the stream's newest events clearly better (streams with an order).
    depth
        The user's most recent distinct items whose successors count.
    decay
        Each older recent item counts ``decay`` times the one after it.
    """

    weight: float = 0.0
    depth: int = 5
    decay: float = 0.7

    def __post_init__(self) -> None:
        if not (0 <= self.weight <= 1000 and math.isfinite(self.weight)):
            raise ValueError("sequence weight must be 0..1000")
        if not 1 <= self.depth <= 100 or not 0 < self.decay <= 1:
            raise ValueError("sequence depth must be 1..100 and decay in (0, 1]")

    def term(self, scores: np.ndarray) -> np.ndarray:
        """The term's part of each score: its sequence score over the best of ``scores``,
        times the weight (what one weight means on every stream)."""
        return scores * (self.weight / scores.max())

    def as_dict(self) -> dict:
        return {"weight": self.weight, "depth": self.depth, "decay": self.decay}


def sequence_scores(
    indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, recent: np.ndarray,
    depth: int, decay: float,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(columns ascending, scores) of every successor of the ``depth`` first of ``recent``
    (item columns, newest first): ``sum_j decay**j * rule(recent_j -> column)``."""
    parts_cols, parts_scores, _ = _successor_rows(indptr, indices, weights, recent, depth, decay)
    if not parts_cols:
        return _NO_COLUMNS, _NO_SCORES
    if len(parts_cols) == 1:  # one row of rules: already one score per column, ascending
        return parts_cols[0], parts_scores[0]
    return _sum_by_column(np.concatenate(parts_cols), np.concatenate(parts_scores))


def sequence_score_table(
    indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, recent: np.ndarray,
    depths: tuple[int, ...], decay: float,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(columns ascending, scores) of every successor of the ``max(depths)`` first of
    ``recent``, one score column per entry of ``depths``: column ``j`` holds
    :func:`sequence_scores` at ``depths[j]`` (0 for a column only deeper items lead to). The
    rank stage reads several depths of one user's rules: one sort serves them all, and one
    search looks them up."""
    parts_cols, parts_scores, ends = _successor_rows(
        indptr, indices, weights, recent, max(depths), decay
    )
    if not parts_cols:
        return _NO_COLUMNS, np.zeros((0, len(depths)), dtype=np.float32)
    cols = np.concatenate(parts_cols)
    scores = np.concatenate(parts_scores)
    # Rows come newest first, so each depth's rows are a prefix of the concatenation.
    table = np.zeros((len(cols), len(depths)), dtype=np.float32)
    for j, depth in enumerate(depths):
        end = ends[min(depth, len(ends) - 1)]
        table[:end, j] = scores[:end]
    if len(parts_cols) == 1:  # one row of rules: already one score per column, ascending
        return cols, table
    # Adding 0 for the rows past a depth keeps each depth's sums exactly sequence_scores'.
    return _sum_by_column(cols, table)


def _successor_rows(indptr, indices, weights, recent, depth: int, decay: float):
    """The rule rows of the ``depth`` first of ``recent``, newest first: their columns, their
    weights times ``decay**j``, and where each row's entries end in the concatenation (one
    end per recent item, empty rows included; ``ends[j]`` covers the ``j`` newest)."""
    parts_cols, parts_scores, ends = [], [], [0]
    factor = 1.0
    for head in recent[:depth].tolist():
        a, b = int(indptr[head]), int(indptr[head + 1])
        if a < b:
            parts_cols.append(indices[a:b])
            row = weights[a:b]
            parts_scores.append(row if factor == 1.0 else row * np.float32(factor))
        ends.append(ends[-1] + b - a)
        factor *= decay
    return parts_cols, parts_scores, ends


def _sum_by_column(cols: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct ``cols`` ascending, ``values`` summed per column, in their order): a few
    hundred entries at most, so one stable sort and a sum of runs."""
    order = np.argsort(cols, kind="stable")
    cols, values = cols[order], values[order]
    starts = np.flatnonzero(run_starts(cols))
    return cols[starts], np.add.reduceat(values, starts, axis=0)


_NO_COLUMNS = np.zeros(0, dtype=np.int32)
_NO_SCORES = np.zeros(0, dtype=np.float32)
