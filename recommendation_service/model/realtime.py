"""Fresh user vectors between refits: ALS fold-in plus an item-similarity term.

After a refit the item factors ``Y`` are fixed until the next one, but a user's events keep
arriving. For any user -- known or first seen after the refit -- one small least-squares solve
against ``Y`` (implicit's own normal equations) gives the ALS user vector for their current
window history, with the user's latest events weighted up. A second term adds the cosine
similarity, in item-factor space, between each candidate and the user's recent items, so
"what goes with what I just did" ranks high.

Both terms are one dot product with a published *scoring matrix* ``[Y, beta * Y_normalised]``
and a user vector ``[x, q]``: servers stay generic and never solve anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from .window import UserHistory, WindowSnapshot

if TYPE_CHECKING:
    from ..config import ALSParams


@dataclass(frozen=True)
class RealtimeParams:
    """How a user's recent events shape their vector.

    Parameters
    ----------
    recent_boost
        Extra weight of the user's newest event in the fold-in (1 + boost); it halves every
        ``recent_half_life`` older events of that user.
    recent_half_life
        In events of this user.
    similarity_weight
        beta, the weight of the item-similarity term against the ALS term.
    """

    recent_boost: float = 50.0
    recent_half_life: float = 1.0
    similarity_weight: float = 0.05

    def __post_init__(self) -> None:
        if self.recent_boost < 0 or self.recent_half_life <= 0 or self.similarity_weight < 0:
            raise ValueError("recent-boost and similarity-weight must be >= 0, half-life > 0")


@dataclass(frozen=True)
class UserVector:
    vector: np.ndarray  # float32, length 2 * factors
    seen: np.ndarray  # int32 columns of the items the user touched (known to the model)
    last_ts: float


class FoldIn:
    """Computes user vectors against one fitted model.

    Parameters
    ----------
    item_ids
        Column order of ``item_factors``.
    item_factors
        ``Y`` from the last refit.
    als
        The parameters ``Y`` was fitted with (regularization and alpha matter here).
    params
        Recency and similarity settings.
    """

    def __init__(
        self, item_ids: list[str], item_factors: np.ndarray, als: ALSParams, params: RealtimeParams
    ) -> None:
        self.item_col = {item: c for c, item in enumerate(item_ids)}
        self.als = als
        self.params = params
        y = np.asarray(item_factors, dtype=np.float64)
        self._y = y
        self._gram = y.T @ y + als.regularization * np.eye(y.shape[1])
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        self._y_unit = y / np.maximum(norms, 1e-12)
        self.scoring_matrix = np.ascontiguousarray(
            np.hstack([y, params.similarity_weight * self._y_unit]), dtype=np.float32
        )

    @property
    def factors(self) -> int:
        return self._y.shape[1]

    def user_vector(self, history: UserHistory) -> UserVector | None:
        """The vector of a user with this window history, or None if no item is known."""
        cols = np.fromiter((self.item_col.get(i, -1) for i in history.items), dtype=np.int64)
        n = len(cols)
        # The newest events of this user count more: boost halves every recent_half_life events.
        rank = np.arange(n - 1, -1, -1, dtype=np.float64)
        p = self.params
        weights = history.weights * (1.0 + p.recent_boost * np.exp2(-rank / p.recent_half_life))
        known = cols >= 0
        if not known.any():
            return None
        seen, inverse = np.unique(cols[known], return_inverse=True)
        summed = np.bincount(inverse, weights=weights[known], minlength=len(seen))
        return UserVector(self._solve(seen, summed), seen.astype(np.int32), float(history.ts[-1]))

    def _solve(self, cols: np.ndarray, weights: np.ndarray) -> np.ndarray:
        # implicit's normal equations: C = alpha * r; (Y'Y + reg I + Y_u'(|C|-1)Y_u) x = Y_u'C+
        conf = self.als.alpha * weights
        yu = self._y[cols]
        a = self._gram + yu.T @ ((np.abs(conf) - 1.0)[:, None] * yu)
        positive = np.where(conf > 0, conf, 0.0)
        x = np.linalg.solve(a, yu.T @ positive)
        q = self._y_unit[cols].T @ np.where(weights > 0, weights, 0.0)
        return np.concatenate([x, q]).astype(np.float32)

    def base_vectors(self, user_factors: np.ndarray, snapshot: WindowSnapshot) -> np.ndarray:
        """Vectors of every user of the refit: fitted ``x`` plus the similarity term ``q``."""
        positive = snapshot.matrix.multiply(snapshot.matrix > 0)
        q = sp.csr_matrix(positive) @ self._y_unit
        return np.ascontiguousarray(np.hstack([user_factors, q]), dtype=np.float32)
