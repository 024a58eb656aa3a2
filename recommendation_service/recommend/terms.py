"""Score terms: what a candidate's score is made of, each a function of its own.

A candidate's score is the sum of the terms in :data:`TERMS`; the term that contributes most
names the reason it is in the list (explain.py). The builder publishes each item's scoring row
as ``[Y, beta * Y_unit]`` and each user's vector as ``[x, q]`` (training/fold_in.py), so the
first two terms add up to one dot product -- which is what retrieval ranks the whole catalog
by, before the terms score the candidates it returns:

* :func:`als` -- ``Y_i . x``, the user's ALS preference for the item;
* :func:`similarity` -- ``beta * Y_unit_i . q``, the item's similarity to the user's recent
  items;
* :func:`sequence` -- how strongly the item follows the user's most recent items in the
  window's sequences (vectors/sequences.py), scaled to the best such item and weighted by
  the request's (or the refit's) sequence weight.

A new term is one more function here and one more entry in :data:`TERMS`; it sees the
candidates (columns and scoring rows of a version) and the query (the request's settings and
the user's state).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ..vectors.sorted_lookup import lookup
from .request import Query
from .version import ModelVersion


class Candidates(NamedTuple):
    """The items one rank step scores: columns of the version, and their scoring rows."""

    model: ModelVersion
    cols: np.ndarray
    rows: np.ndarray

    @classmethod
    def of(cls, model: ModelVersion, cols: np.ndarray) -> Candidates:
        return cls(model, cols, model.scoring_matrix[cols])


def als(candidates: Candidates, query: Query) -> np.ndarray:
    """The ALS preference of each candidate for the user."""
    half = candidates.rows.shape[1] // 2
    return candidates.rows[:, :half] @ query.state.vector[:half]


def similarity(candidates: Candidates, query: Query) -> np.ndarray:
    """The similarity of each candidate to the user's recent items."""
    half = candidates.rows.shape[1] // 2
    return candidates.rows[:, half:] @ query.state.vector[half:]


def sequence(candidates: Candidates, query: Query) -> np.ndarray:
    """How strongly each candidate follows the user's recent items: its sequence score over
    the best one among everything that follows them, times the sequence weight (0 for an item
    that follows none of them, or when the term is off)."""
    cols, scores = query.successors(candidates.model.successors)
    if not len(cols):
        return np.zeros(len(candidates.cols), dtype=np.float32)
    return lookup(cols, query.sequence.term(scores), candidates.cols)


Term = Callable[[Candidates, Query], np.ndarray]
#: The terms of a score, each with the reason it gives the items it dominates (first wins ties).
TERMS: tuple[tuple[str, Term], ...] = (
    ("model", als),
    ("similar_to_recent", similarity),
    ("follows_recent", sequence),
)


def score(candidates: Candidates, query: Query) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's score, and every term's part of it (one row per term of TERMS)."""
    parts = np.empty((len(TERMS), len(candidates.cols)), dtype=np.float32)
    for k, (_, term) in enumerate(TERMS):
        parts[k] = term(candidates, query)
    total = parts[0].copy()
    for part in parts[1:]:  # a loop, not parts.sum(): a few terms of a few dozen items
        total += part
    return total, parts
