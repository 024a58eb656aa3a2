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

import numpy as np
import scipy.sparse as sp

from ..artifacts.update_files import UserVector
from ..data.window import UserHistory, WindowSnapshot
from .params import ALSParams


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
    user_factors
        ``X`` from the same refit; needed only to place new items (:meth:`item_row`).
    recent_depth
        How many of a user's most recent distinct items each vector carries (for the sequence
        term; see training/successors.py).
    """

    def __init__(
        self,
        item_ids: list[str],
        item_factors: np.ndarray,
        als: ALSParams,
        params: RealtimeParams,
        user_factors: np.ndarray | None = None,
        recent_depth: int = 10,
    ) -> None:
        self.recent_depth = recent_depth
        self.item_col = {item: c for c, item in enumerate(item_ids)}
        self.als = als
        self.params = params
        y = np.asarray(item_factors, dtype=np.float64)
        self._y = y
        self._gram = y.T @ y + als.regularization * np.eye(y.shape[1])
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        self._y_unit = y / np.maximum(norms, 1e-12)
        # A new item's row is bounded by the refit's large item rows (see item_row).
        self._item_norm_cap = float(np.percentile(norms, 95)) if len(norms) else np.inf
        self.scoring_matrix = np.ascontiguousarray(
            np.hstack([y, params.similarity_weight * self._y_unit]), dtype=np.float32
        )
        self._user_gram = None
        if user_factors is not None:
            x = np.asarray(user_factors, dtype=np.float64)
            self._user_gram = x.T @ x + als.regularization * np.eye(x.shape[1])

    @property
    def factors(self) -> int:
        return self._y.shape[1]

    def user_vector(self, history: UserHistory) -> UserVector | None:
        """The vector of a user with this window history, or None if no item is known."""
        cols = np.fromiter((self.item_col.get(i, -1) for i in history.items), dtype=np.int64)
        return self.vector_of(cols, history.weights, float(history.ts[-1]))

    def vector_of(self, cols: np.ndarray, weights: np.ndarray, last_ts: float) -> UserVector | None:
        """The vector of a user whose events, oldest first, are on these columns (-1: unknown)."""
        n = len(cols)
        # The newest events of this user count more: boost halves every recent_half_life events.
        rank = np.arange(n - 1, -1, -1, dtype=np.float64)
        p = self.params
        weights = weights * (1.0 + p.recent_boost * np.exp2(-rank / p.recent_half_life))
        known = cols >= 0
        if not known.any():
            return None
        seen, inverse = np.unique(cols[known], return_inverse=True)
        summed = np.bincount(inverse, weights=weights[known], minlength=len(seen))
        recent = recent_columns(cols, self.recent_depth)
        return UserVector(self._solve(seen, summed), seen.astype(np.int32), last_ts, recent)

    def vectors_of(self, histories: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """:meth:`vector_of` for many users at once (zeros where no item is known).

        The same normal equations, set up and solved as stacked arrays: for the hundreds of
        users a tuning trial folds in, several times faster than one solve each.
        """
        out = np.zeros((len(histories), self.scoring_matrix.shape[1]), dtype=np.float32)
        p = self.params
        # Chunks of users with similar history lengths, so padding costs little.
        order = np.argsort([len(c) for c, _ in histories], kind="stable")
        for start in range(0, len(histories), 64):
            chunk = [histories[k] for k in order[start : start + 64].tolist()]
            rows, cols, weights = [], [], []
            for r, (c, w) in enumerate(chunk):
                rank = np.arange(len(c) - 1, -1, -1, dtype=np.float64)
                boosted = w * (1.0 + p.recent_boost * np.exp2(-rank / p.recent_half_life))
                known = c >= 0
                seen, inverse = np.unique(c[known], return_inverse=True)
                rows.append(np.full(len(seen), r))
                cols.append(seen)
                weights.append(np.bincount(inverse, boosted[known], minlength=len(seen)))
            lengths = np.array([len(c) for c in cols])
            if not lengths.any():
                continue
            # Pad every user's items to the longest list of the chunk (padding weighs 0).
            width = lengths.max()
            slot = np.concatenate([np.arange(n) for n in lengths])
            row = np.concatenate(rows).astype(np.int64)
            col = np.zeros((len(chunk), width), dtype=np.int64)
            weight = np.zeros((len(chunk), width))
            col[row, slot] = np.concatenate(cols)
            weight[row, slot] = np.concatenate(weights)
            conf = self.als.alpha * weight
            yu = self._y[col]  # (users, width, f)
            scaled = yu * np.where(weight != 0, np.abs(conf) - 1.0, 0.0)[..., None]
            a = self._gram + np.swapaxes(yu, 1, 2) @ scaled
            b = np.einsum("uwf,uw->uf", yu, np.where(conf > 0, conf, 0.0))
            x = np.linalg.solve(a, b[..., None])[..., 0]
            q = np.einsum("uwf,uw->uf", self._y_unit[col], np.where(weight > 0, weight, 0.0))
            has = lengths > 0
            out[order[start : start + len(chunk)][has]] = np.hstack([x, q])[has]
        return out

    def _solve(self, cols: np.ndarray, weights: np.ndarray) -> np.ndarray:
        # implicit's normal equations: C = alpha * r; (Y'Y + reg I + Y_u'(|C|-1)Y_u) x = Y_u'C+
        conf = self.als.alpha * weights
        yu = self._y[cols]
        a = self._gram + yu.T @ ((np.abs(conf) - 1.0)[:, None] * yu)
        positive = np.where(conf > 0, conf, 0.0)
        x = np.linalg.solve(a, yu.T @ positive)
        q = self._y_unit[cols].T @ np.where(weights > 0, weights, 0.0)
        return np.concatenate([x, q]).astype(np.float32)

    @property
    def places_items(self) -> bool:
        """Whether :meth:`item_row` works (the refit's user factors were given)."""
        return self._user_gram is not None

    def item_row(self, user_x: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
        """A scoring row for an item the refit did not know, from the users who touched it.

        The item side of implicit's normal equations, against the users' current ALS vectors
        ``user_x`` (one row per user, ``weights`` their summed event weights on the item):
        ``(X'X + reg I + X_u'(|C|-1)X_u) y = X_u'C+``, its length capped at the refit's
        95th-percentile item. None without positive feedback.
        """
        if self._user_gram is None:
            raise ValueError("this fold-in was built without the refit's user factors")
        conf = self.als.alpha * np.asarray(weights, dtype=np.float64)
        if not (conf > 0).any():
            return None
        xu = np.asarray(user_x, dtype=np.float64)
        a = self._user_gram + xu.T @ ((np.abs(conf) - 1.0)[:, None] * xu)
        y = np.linalg.solve(a, xu.T @ np.where(conf > 0, conf, 0.0))
        norm = max(float(np.linalg.norm(y)), 1e-12)
        # One event of a user with a short vector solves to a long row (about 1 / |x_u|),
        # which would outscore every known item for everyone else: no new item may be longer
        # than the refit's 95th-percentile item.
        if norm > self._item_norm_cap:
            y *= self._item_norm_cap / norm
        unit = y / norm
        return np.concatenate([y, self.params.similarity_weight * unit]).astype(np.float32)

    def base_vectors(
        self, user_factors: np.ndarray, snapshot: WindowSnapshot, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Vectors of the refit's users (every one, or ``rows``): fitted ``x`` plus the
        similarity term ``q``."""
        matrix = snapshot.matrix if rows is None else snapshot.matrix[rows]
        if rows is not None:
            user_factors = user_factors[rows]
        positive = matrix.multiply(matrix > 0)
        q = sp.csr_matrix(positive) @ self._y_unit
        return np.ascontiguousarray(np.hstack([user_factors, q]), dtype=np.float32)


def recent_columns(cols: np.ndarray, depth: int) -> np.ndarray:
    """The ``depth`` most recent distinct known columns of events oldest first (-1: unknown),
    newest first."""
    out: list[int] = []
    for c in cols[::-1].tolist():
        if c >= 0 and c not in out:
            out.append(c)
            if len(out) == depth:
                break
    return np.array(out, dtype=np.int32)
