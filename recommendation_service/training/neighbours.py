"""Item-to-item neighbours from the window: "people who touched this also touched".

Two items are as similar as the cosine of their user sets in the window. Each item keeps its
``neighbours`` most similar items, a CSR matrix over item columns: the item kNN baseline of
``recsvc evaluate`` and the neighbours channel of the rank stage (ranking/channels.py) read it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..vectors.sorted_lookup import run_starts

#: Neighbours kept per item.
NEIGHBOURS = 50


def item_neighbours(seen: sp.csr_matrix, neighbours: int = NEIGHBOURS) -> sp.csr_matrix:
    """Items x items cosine similarity of the items' user sets in ``seen`` (users x items),
    the ``neighbours`` most similar per item (the item itself excluded), float32."""
    binary = seen.copy().astype(np.float32)
    binary.data[:] = 1.0
    norms = np.sqrt(np.asarray(binary.sum(axis=0)).ravel())
    normalized = (binary @ sp.diags(1.0 / np.maximum(norms, 1e-12))).tocsc()
    sim = (normalized.T @ normalized).tocsr()
    sim.setdiag(0)
    sim.eliminate_zeros()
    sim.sort_indices()
    row = np.repeat(np.arange(sim.shape[0]), np.diff(sim.indptr))
    kept = _best_per_row(sim.indptr, row, sim.data, neighbours)
    out = sp.csr_matrix(
        (sim.data[kept].astype(np.float32), (row[kept], sim.indices[kept])), shape=sim.shape
    )
    out.sort_indices()
    return out


#: Rows longer than this many times the neighbours kept are cut one at a time (a partition
#: per row); shorter ones in one sort of all their entries. On Online Retail's window (2,843
#: items, 3.5 million similarities) one sort of everything took 0.44 s, the rows one at a
#: time 0.04 s; on long-tailed catalogs most rows are short.
_LONG_ROW = 4


def _best_per_row(indptr: np.ndarray, row: np.ndarray, data: np.ndarray, k: int) -> np.ndarray:
    """Positions of each CSR row's ``k`` largest entries (ties: lower position first, which
    is the lower column in a row with sorted indices), rows in order; ``row`` is each entry's
    row."""
    lengths = np.diff(indptr)
    length = lengths[row]  # of each entry's row
    short = length <= _LONG_ROW * k
    picked = [np.flatnonzero(short & (length <= k))]
    cut = np.flatnonzero(short & (length > k))
    if len(cut):
        # lexsort is stable: equal similarities keep column order.
        order = cut[np.lexsort((-data[cut], row[cut]))]
        at = np.arange(len(order))
        starts = run_starts(row[order])
        rank = at - np.maximum.accumulate(np.where(starts, at, 0))
        picked.append(order[rank < k])
    for r in np.flatnonzero(lengths > _LONG_ROW * k).tolist():
        a, b = int(indptr[r]), int(indptr[r + 1])
        values = data[a:b]
        kth = np.partition(values, len(values) - k)[len(values) - k]
        above = np.flatnonzero(values > kth)
        picked += [above + a, np.flatnonzero(values == kth)[: k - len(above)] + a]
    return np.sort(np.concatenate(picked))
