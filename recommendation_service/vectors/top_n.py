"""Picking the best entries of a score vector."""

from __future__ import annotations

import numpy as np


def top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` largest finite scores, best first (ties by lower index)."""
    n = min(n, len(scores))
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    candidates = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    order = candidates[np.lexsort((candidates, -scores[candidates]))]
    return order[np.isfinite(scores[order])]
