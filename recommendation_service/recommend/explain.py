"""Why each item is in a list: the score term that contributes most to it.

Items that come from elsewhere carry their source's reason instead: ``new_item`` (folded in
since the refit, or explored), ``promoted``, ``popular`` (the unknown-user fallback).
"""

from __future__ import annotations

import numpy as np

from .terms import TERMS


def reasons(rows: np.ndarray, vector: np.ndarray) -> list[str]:
    """Per scoring row, the reason of the term that dominates its score for ``vector``."""
    if not len(rows):
        return []
    values = np.stack([term(rows, vector) for _, term in TERMS])
    return [TERMS[k][0] for k in values.argmax(axis=0).tolist()]
