"""What tends to come next: sequential rules over each user's events in the window.

ALS sees a user's window as a bag of items. Much of what a user does next follows what they
did just before (the next item of a basket, the next episode, the next part of a series), so
every version also carries *sequential rules* (SR, from Ludewig and Jannach's evaluations of
session-based recommenders): in each user's events, in the order they arrived, every pair
(``a`` earlier, ``b`` later, ``a != b``) at most ``distance`` events apart adds ``1 / d`` to the
rule ``a -> b``, ``d`` being how far apart they are. A user's sequence score of ``b`` is then
``sum_j decay**j * rule(recent_j -> b)`` over their most recent distinct items
(vectors/sequences.py; the request path's sequence term in recommend/terms.py).

The rules are computed from the refit's snapshot -- exactly the window the version is built
on, with numpy, at no cost per consumed event -- and each item keeps its ``keep`` strongest
successors, so a version's rules take at most ``n_items * keep`` entries. Between refits the
rules of the served version stand; what changes is each user's recent items, which the update
files carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..data.window import WindowSnapshot
from ..vectors.sequences import SequenceWeights


@dataclass(frozen=True)
class SequenceParams:
    """How the builder learns the order of events.

    Parameters
    ----------
    distance
        Events of a user at most this far apart form a rule (weight 1 / distance).
    keep
        Successors kept per item in a version (the strongest).
    recent
        A user's most recent distinct items kept in a version and in each update: the
        deepest the request-time term can look.
    weights
        The request-time weight, depth and decay published with each version (the refit's
        tuning starts from them and may choose others).
    """

    distance: int = 5
    keep: int = 50
    recent: int = 10
    weights: SequenceWeights = field(default_factory=SequenceWeights)

    def __post_init__(self) -> None:
        if not 1 <= self.distance <= 50:
            raise ValueError("sequence distance must be 1..50 events")
        if not 1 <= self.keep <= 1000 or not 1 <= self.recent <= 100:
            raise ValueError("sequence keep must be 1..1000 and recent 1..100")
        if self.weights.depth > self.recent:
            raise ValueError("sequence depth cannot exceed the recent items kept (10)")


@dataclass(frozen=True)
class Successors:
    """A version's sequential rules and each user's recent items, as published arrays, with
    the request-time weights the refit chose for them."""

    rules: sp.csr_matrix  # items x items, float32, at most ``keep`` entries a row
    recent_indptr: np.ndarray  # int64, users + 1
    recent_indices: np.ndarray  # int32 item columns, newest first per user
    params: SequenceParams = field(default_factory=SequenceParams)
    #: The weights in force for this version: the configured ones, or the tuning's choice.
    weights: SequenceWeights = field(default_factory=SequenceWeights)

    def manifest(self) -> dict:
        """What the manifest says of them (servers take the weights as their defaults)."""
        return {
            "distance": self.params.distance,
            "keep": self.params.keep,
            "rules": int(self.rules.nnz),
            **self.weights.as_dict(),
        }

    def scorer(self) -> tuple:
        """(rules as CSR arrays, weights): what scoring with them takes
        (vectors/sequences.py)."""
        return (self.rules.indptr, self.rules.indices, self.rules.data), self.weights

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "succ_indptr": self.rules.indptr.astype(np.int64),
            "succ_indices": self.rules.indices.astype(np.int32),
            "succ_weights": self.rules.data.astype(np.float32),
            "recent_indptr": self.recent_indptr,
            "recent_indices": self.recent_indices,
        }


def _by_user(snap: WindowSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """Users and items of the snapshot's positive events, grouped by user, in arrival order."""
    ev = snap.events
    keep = ev.weights > 0 if ev.weights is not None else np.ones(len(ev.rows), dtype=bool)
    rows, cols = ev.rows[keep], ev.cols[keep]
    order = np.argsort(rows, kind="stable")  # window order within each user
    return rows[order], cols[order]


def successors(
    snap: WindowSnapshot, params: SequenceParams, weights: SequenceWeights | None = None
) -> Successors:
    """The rules and recent items of ``snap`` (which must carry its events)."""
    if snap.events is None:
        raise ValueError("the snapshot carries no events to learn an order from")
    users, items = _by_user(snap)
    return Successors(
        rules(users, items, snap.n_items, params),
        *recent_items(users, items, snap.n_users, params.recent),
        params,
        weights or params.weights,
    )


def rules(
    users: np.ndarray, items: np.ndarray, n_items: int, params: SequenceParams
) -> sp.csr_matrix:
    """Sequential rules of events grouped by user in arrival order (see the module)."""
    heads, tails, weights = [], [], []
    for d in range(1, params.distance + 1):
        same = (users[:-d] == users[d:]) & (items[:-d] != items[d:])
        heads.append(items[:-d][same])
        tails.append(items[d:][same])
        weights.append(np.full(int(same.sum()), 1.0 / d, dtype=np.float32))
    matrix = sp.csr_matrix(
        (np.concatenate(weights), (np.concatenate(heads), np.concatenate(tails))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    matrix.sum_duplicates()
    return _strongest(matrix, params.keep)


def _strongest(matrix: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """``matrix`` with at most ``keep`` entries a row, the largest, sorted by column."""
    lengths = np.diff(matrix.indptr)
    if not len(lengths) or lengths.max() <= keep:
        matrix.sort_indices()
        return matrix
    row = np.repeat(np.arange(matrix.shape[0]), lengths)
    # Within each row, strongest first; ties by column so the choice is deterministic.
    order = np.lexsort((matrix.indices, -matrix.data, row))
    rank = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], lengths)
    kept = order[rank < keep]
    out = sp.csr_matrix((matrix.data[kept], (row[kept], matrix.indices[kept])), shape=matrix.shape)
    out.sort_indices()
    return out


def recent_items(
    users: np.ndarray, items: np.ndarray, n_users: int, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per user row, their ``depth`` most recent distinct items, newest first, as CSR arrays
    (events grouped by user in arrival order)."""
    n = len(users)
    newest_first = np.lexsort((-np.arange(n), users))
    u, i = users[newest_first], items[newest_first]
    # The first (newest) event of each (user, item) pair.
    _, first = np.unique(u.astype(np.int64) * (int(i.max()) + 1 if n else 1) + i,
                         return_index=True)  # fmt: skip
    first = np.sort(first)
    u, i = u[first], i[first]
    starts = np.searchsorted(u, u, side="left")
    keep = (np.arange(len(u)) - starts) < depth
    u, i = u[keep], i[keep]
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.add.at(indptr, u.astype(np.int64) + 1, 1)
    return np.cumsum(indptr), i.astype(np.int32)
