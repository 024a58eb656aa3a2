"""Why each item is in a list: the score term that contributes most to it (terms.py).

Items that come from elsewhere carry their source's reason instead: ``new_item`` (folded in
since the refit, or explored), ``promoted``, ``popular`` (the unknown-user fallback).
"""

from __future__ import annotations

import numpy as np

from .terms import TERMS


def reasons(parts: np.ndarray) -> list[str]:
    """Per candidate (column of ``parts``, one row per term), the reason of its largest term."""
    if not parts.shape[1]:
        return []
    return [TERMS[k][0] for k in parts.argmax(axis=0).tolist()]
