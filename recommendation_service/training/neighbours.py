"""Item-to-item neighbours from the window: "people who touched this also touched".

Two items are as similar as the cosine of their user sets in the window. Each item keeps its
``neighbours`` most similar items, a CSR matrix over item columns: the item kNN baseline of
``recsvc evaluate`` and the neighbours channel of the rank stage (ranking/channels.py) read it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

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
    lengths = np.diff(sim.indptr)
    row = np.repeat(np.arange(sim.shape[0]), lengths)
    # lexsort is stable: equal similarities keep column order (indices are sorted).
    order = np.lexsort((-sim.data, row))
    rank = np.arange(len(order)) - np.repeat(sim.indptr[:-1], lengths)
    kept = order[rank < neighbours]
    out = sp.csr_matrix(
        (sim.data[kept].astype(np.float32), (row[kept], sim.indices[kept])), shape=sim.shape
    )
    out.sort_indices()
    return out
