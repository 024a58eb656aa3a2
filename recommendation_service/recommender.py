"""A published model held in memory, answering top-N queries.

Unknown-id rule: a user who is not in the model gets the window's most popular items with
``source="popular"``; a known user gets ALS scores over all items, minus the items they already
interacted with in the window, with ``source="model"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ModelLoadError
from .model_store import decode_strings


@dataclass(frozen=True)
class Recommendation:
    items: list[str]
    scores: list[float]
    source: str  # "model" or "popular"


def top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` largest finite scores, best first (ties by lower index)."""
    n = min(n, len(scores))
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    candidates = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    order = candidates[np.lexsort((candidates, -scores[candidates]))]
    return order[np.isfinite(scores[order])]


class ServedModel:
    """One verified model version, ready to answer queries.

    Parameters
    ----------
    manifest
        The version's manifest.
    arrays
        Its arrays, as returned by :meth:`ModelStore.read_version`.

    Raises
    ------
    ModelLoadError
        If the arrays do not fit together (wrong lengths, out-of-range indices, NaNs).
    """

    def __init__(self, manifest: dict, arrays: dict[str, np.ndarray]) -> None:
        self.manifest = manifest
        self.version = int(manifest["version"])
        self.name = str(manifest["name"])
        try:
            self.user_ids = decode_strings(arrays["user_ids.blob"], arrays["user_ids.offsets"])
            self.item_ids = decode_strings(arrays["item_ids.blob"], arrays["item_ids.offsets"])
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelLoadError(f"{self.name}: bad id arrays: {exc}") from exc
        self.user_factors = arrays["user_factors"]
        self.item_factors = arrays["item_factors"]
        self.seen_indptr = arrays["seen_indptr"]
        self.seen_indices = arrays["seen_indices"]
        self.popular_items = arrays["popular_items"]
        self.popular_scores = arrays["popular_scores"]
        self._check()
        self.user_row = {u: i for i, u in enumerate(self.user_ids)}

    def _check(self) -> None:
        n_users, n_items = len(self.user_ids), len(self.item_ids)
        problems = []
        if self.user_factors.ndim != 2 or self.user_factors.shape[0] != n_users:
            problems.append("user factors do not match the user ids")
        if self.item_factors.ndim != 2 or self.item_factors.shape[0] != n_items:
            problems.append("item factors do not match the item ids")
        if self.user_factors.shape[1:] != self.item_factors.shape[1:]:
            problems.append("user and item factors differ in dimension")
        if len(set(self.user_ids)) != n_users or len(set(self.item_ids)) != n_items:
            problems.append("duplicate ids")
        if len(self.seen_indptr) != n_users + 1 or (
            n_users and int(self.seen_indptr[-1]) != len(self.seen_indices)
        ):
            problems.append("seen-items index does not match the users")
        if len(self.seen_indices) and (
            self.seen_indices.min() < 0 or self.seen_indices.max() >= n_items
        ):
            problems.append("seen-items index points outside the items")
        if len(self.popular_items) != len(self.popular_scores) or (
            len(self.popular_items)
            and (self.popular_items.min() < 0 or self.popular_items.max() >= n_items)
        ):
            problems.append("popularity ranking points outside the items")
        if not (np.isfinite(self.user_factors).all() and np.isfinite(self.item_factors).all()):
            problems.append("non-finite factors")
        if problems:
            raise ModelLoadError(f"{self.name}: " + "; ".join(problems))

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def seen_items(self, row: int) -> np.ndarray:
        return self.seen_indices[self.seen_indptr[row] : self.seen_indptr[row + 1]]

    def popular(self, n: int) -> Recommendation:
        cols = self.popular_items[:n]
        return Recommendation(
            [self.item_ids[c] for c in cols.tolist()],
            [float(s) for s in self.popular_scores[:n]],
            "popular",
        )

    def recommend(self, user: str, n: int) -> Recommendation:
        """Top ``n`` items for ``user``, best first, excluding items seen in the window."""
        row = self.user_row.get(user)
        if row is None:
            return self.popular(n)
        scores = self.item_factors @ self.user_factors[row]
        scores[self.seen_items(row)] = -np.inf
        best = top_n(scores, n)
        return Recommendation(
            [self.item_ids[c] for c in best.tolist()],
            [float(s) for s in scores[best]],
            "model",
        )
