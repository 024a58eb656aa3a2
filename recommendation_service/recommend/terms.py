"""Score terms: what a candidate's score is made of, each a function of its own.

The builder publishes each item's scoring row as ``[Y, beta * Y_unit]`` and each user's
vector as ``[x, q]`` (training/fold_in.py), so the score retrieval ranks by is one dot
product, the sum of two terms:

* :func:`als` -- ``Y_i . x``, the user's ALS preference for the item;
* :func:`similarity` -- ``beta * Y_unit_i . q``, the item's similarity to the user's recent
  items.

Each term carries the reason it gives an item whose score it dominates (explain.py).
"""

from __future__ import annotations

import numpy as np


def als(rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """The ALS preference of each scoring row for the user ``vector``."""
    half = rows.shape[1] // 2
    return rows[:, :half] @ vector[:half]


def similarity(rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """The similarity of each scoring row to the user's recent items."""
    half = rows.shape[1] // 2
    return rows[:, half:] @ vector[half:]


#: The terms of a score, each with the reason it stands for, first wins a tie.
TERMS = (("model", als), ("similar_to_recent", similarity))
