"""Baselines a developer could hand-write in an afternoon, scored beside the service.

* sequential rules alone -- what follows the user's most recent items in the window's
  sequences (training/successors.py, the service's own sequence term without ALS);
* item kNN alone -- "people who interacted with this also interacted with": the cosine of two
  items' user sets in the window, summed over the user's items;
* popularity -- the window's most popular items (the window keeps it current).

Each is refreshed at every refit from the window's snapshot, as the service's model is.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..data.window import WindowSnapshot

#: Neighbours kept per item by item kNN.
KNN_NEIGHBOURS = 50


def item_knn(snap: WindowSnapshot, neighbours: int = KNN_NEIGHBOURS) -> sp.csr_matrix:
    """Items x items cosine similarity of the items' user sets, the ``neighbours`` most
    similar per item (the item itself excluded)."""
    seen = snap.seen.copy().astype(np.float32)
    seen.data[:] = 1.0
    norms = np.sqrt(np.asarray(seen.sum(axis=0)).ravel())
    normalized = seen @ sp.diags(1.0 / np.maximum(norms, 1e-12))
    sim = (normalized.T @ normalized).tocsr()
    sim.setdiag(0)
    sim.eliminate_zeros()
    lengths = np.diff(sim.indptr)
    row = np.repeat(np.arange(sim.shape[0]), lengths)
    order = np.lexsort((sim.indices, -sim.data, row))
    rank = np.arange(len(order)) - np.repeat(sim.indptr[:-1], lengths)
    kept = order[rank < neighbours]
    return sp.csr_matrix((sim.data[kept], (row[kept], sim.indices[kept])), shape=sim.shape)


def top_of(cols: np.ndarray, scores: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best of ``cols`` by ``scores``, leaving out ``exclude`` (ties: lower column)."""
    keep = ~np.isin(cols, exclude) & (scores > 0)
    cols, scores = cols[keep], scores[keep]
    order = np.lexsort((cols, -scores))[:k]
    return cols[order]


def knn_scores(knn: sp.csr_matrix, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(columns, summed similarity) of the neighbours of ``items``."""
    rows = knn[items]
    summed = np.asarray(rows.sum(axis=0)).ravel()
    cols = np.flatnonzero(summed)
    return cols, summed[cols]
