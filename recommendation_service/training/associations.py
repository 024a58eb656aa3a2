""" "Frequently bought together": item co-occurrence in baskets, with support, confidence, lift.

A basket is the events sharing a ``basket``/``session`` id, or -- for events without one -- a
user's run of events with no gap longer than ``session_gap`` seconds. With ``B`` the binary
baskets x items matrix, ``C = B'B`` counts the baskets holding both items of each pair in one
sparse product; each item keeps its ``top_k`` partners with at least ``min_support`` shared
baskets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..data.window import EventArrays


@dataclass(frozen=True)
class AssociationParams:
    session_gap: float = 1800.0
    min_support: int = 2
    top_k: int = 50

    def __post_init__(self) -> None:
        if self.session_gap <= 0 or self.min_support < 1 or self.top_k < 1:
            raise ValueError("session gap must be > 0, min support and top-k >= 1")


def basket_ids(events: EventArrays, session_gap: float) -> np.ndarray:
    """A dense basket number per event."""
    n = len(events.rows)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    explicit = events.baskets != 0
    # Sessions: sort by (user, time); a new session starts at a new user or after a long gap.
    order = np.lexsort((events.ts, events.rows))
    users, times = events.rows[order], events.ts[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (users[1:] != users[:-1]) | (times[1:] - times[:-1] > session_gap)
    session = np.empty(n, dtype=np.int64)
    session[order] = np.cumsum(new) - 1
    # Explicit basket keys get their own number space above the sessions'.
    keys = np.where(explicit, events.baskets, -1 - session)
    _, dense = np.unique(keys, return_inverse=True)
    return dense.ravel()


@dataclass(frozen=True)
class Associations:
    """Top partners per item: CSR rows over item columns, with co-occurrence counts."""

    indptr: np.ndarray
    indices: np.ndarray
    counts: np.ndarray
    item_baskets: np.ndarray  # baskets holding each item
    n_baskets: int


def associations(events: EventArrays, n_items: int, params: AssociationParams) -> Associations:
    basket = basket_ids(events, params.session_gap)
    n_baskets = int(basket.max()) + 1 if len(basket) else 0
    b = sp.csr_matrix(
        (np.ones(len(basket), dtype=np.float32), (basket, events.cols)),
        shape=(n_baskets, n_items),
    )
    b.data[:] = 1.0  # an item twice in a basket is still one basket
    b.sum_duplicates()
    b.data[:] = 1.0
    item_baskets = np.asarray(b.sum(axis=0)).ravel().astype(np.int64)
    co = (b.T @ b).tocsr()
    co.setdiag(0)
    co.data[co.data < params.min_support] = 0
    co.eliminate_zeros()
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    indices, counts = [], []
    for i in range(n_items):
        a, z = co.indptr[i], co.indptr[i + 1]
        if z > a:
            keep = np.argsort(-co.data[a:z], kind="stable")[: params.top_k]
            indices.append(co.indices[a:z][keep])
            counts.append(co.data[a:z][keep])
        indptr[i + 1] = indptr[i] + (min(z - a, params.top_k) if z > a else 0)
    return Associations(
        indptr,
        np.concatenate(indices).astype(np.int32) if indices else np.zeros(0, np.int32),
        np.concatenate(counts).astype(np.float32) if counts else np.zeros(0, np.float32),
        item_baskets,
        n_baskets,
    )
