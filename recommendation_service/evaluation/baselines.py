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
from ..training.neighbours import item_neighbours


def item_knn(snap: WindowSnapshot) -> sp.csr_matrix:
    """The window's item-to-item neighbours (training/neighbours.py)."""
    return item_neighbours(snap.seen)


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
