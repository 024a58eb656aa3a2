"""Item-to-item neighbours: each item keeps its most similar items, ties to the lower column,
whether its row is cut alone (long rows) or in one sort with the others."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommendation_service.training.neighbours import item_neighbours


def best_by_hand(seen: sp.csr_matrix, k: int) -> dict[int, list[int]]:
    """Each item's k most similar others, by (-cosine, column), one item at a time."""
    users = [set(seen[:, i].nonzero()[0].tolist()) for i in range(seen.shape[1])]
    out = {}
    for i, a in enumerate(users):
        sims = [
            (-len(a & b) / np.sqrt(len(a) * len(b)), j)
            for j, b in enumerate(users)
            if j != i and a & b
        ]
        out[i] = sorted(j for _, j in sorted(sims)[:k])
    return out


def exact_window(rng: np.random.Generator, items: int) -> sp.csr_matrix:
    """Users x items 0/1, each item touched by 1, 4 or 16 of 20 users: every cosine is a sum
    of powers of 2 in float32 too, so equal similarities are exactly equal (ties abound)."""
    cols = [rng.choice(20, size=int(rng.choice([1, 4, 16])), replace=False) for _ in range(items)]
    rows = np.concatenate(cols)
    items_of = np.repeat(np.arange(items), [len(c) for c in cols])
    return sp.csr_matrix((np.ones(len(rows)), (rows, items_of)), shape=(20, items))


def test_each_item_keeps_its_most_similar_items_ties_to_the_lower_column():
    rng = np.random.default_rng(0)
    for _ in range(4):
        seen = exact_window(rng, 200)
        # k 1 and 3 cut most rows one at a time; 40 sorts them together.
        for k in (1, 3, 40):
            got = item_neighbours(seen, k)
            expected = best_by_hand(seen, k)
            for i in range(seen.shape[1]):
                assert got.indices[got.indptr[i] : got.indptr[i + 1]].tolist() == expected[i]
