"""Synthetic catalogs and users with planted tastes, for the demo, tests and benchmarks.

Every user has one favourite category and picks from it with probability ``focus``; otherwise
any item. Within a category, items follow a Zipf-like popularity. Item ids carry their category
(``books-0042``) so anyone reading ``/recommend`` output with curl can see whether a user's
taste was learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CATEGORY_NAMES = (
    "books",
    "music",
    "games",
    "garden",
    "kitchen",
    "sports",
    "toys",
    "beauty",
    "office",
    "pets",
    "tools",
    "travel",
    "movies",
    "shoes",
    "jewelry",
    "camera",
)
_ADJECTIVES = ("Classic", "Deluxe", "Compact", "Vintage", "Smart", "Eco", "Pro", "Mini")


@dataclass(frozen=True)
class CatalogItem:
    item: str
    category: str
    title: str


def make_catalog(n_items: int, n_categories: int, seed: int = 0) -> list[CatalogItem]:
    """``n_items`` items spread round-robin over the first ``n_categories`` categories."""
    if not 1 <= n_categories <= len(CATEGORY_NAMES):
        raise ValueError(f"categories must be between 1 and {len(CATEGORY_NAMES)}")
    if n_items < n_categories:
        raise ValueError("need at least one item per category")
    rng = np.random.default_rng(seed)
    items = []
    for k in range(n_items):
        category = CATEGORY_NAMES[k % n_categories]
        number = k // n_categories
        adjective = _ADJECTIVES[int(rng.integers(len(_ADJECTIVES)))]
        items.append(
            CatalogItem(f"{category}-{number:04d}", category, f"{adjective} {category} #{number}")
        )
    return items


class TasteModel:
    """Users with a planted favourite category, generating interaction streams.

    Parameters
    ----------
    catalog
        The items users choose from.
    n_users
        Number of users (``user-00000`` ...).
    focus
        Probability that an interaction is in the user's favourite category.
    seed
        Random seed; the same seed gives the same users and events.
    """

    def __init__(
        self, catalog: list[CatalogItem], n_users: int, focus: float = 0.85, seed: int = 0
    ):
        if n_users < 1:
            raise ValueError("need at least one user")
        if not 0.0 <= focus <= 1.0:
            raise ValueError("focus must be between 0 and 1")
        self.catalog = catalog
        self.focus = focus
        self.rng = np.random.default_rng(seed)
        self.categories = sorted({c.category for c in catalog})
        self.by_category = {
            cat: [c.item for c in catalog if c.category == cat] for cat in self.categories
        }
        self.users = [f"user-{k:05d}" for k in range(n_users)]
        picks = self.rng.integers(len(self.categories), size=n_users)
        self.favourite = {u: self.categories[p] for u, p in zip(self.users, picks)}
        self._all_items = [c.item for c in catalog]
        # Zipf-like popularity inside each category: rank r has weight 1/(r+1).
        self._cdfs = {
            cat: np.cumsum(self._zipf(len(items))) for cat, items in self.by_category.items()
        }
        self._all_cdf = np.cumsum(self._zipf(len(self._all_items)))

    @staticmethod
    def _zipf(n: int) -> np.ndarray:
        weights = 1.0 / np.arange(1, n + 1)
        return weights / weights.sum()

    def events(self, count: int) -> list[tuple[str, str]]:
        """``count`` (user, item) interactions, drawn in one vectorised batch."""
        rng = self.rng
        user_idx = rng.integers(len(self.users), size=count)
        focused = rng.random(count) < self.focus
        draws = rng.random(count)
        out = []
        for u, f, d in zip(user_idx.tolist(), focused.tolist(), draws.tolist()):
            user = self.users[u]
            if f:
                cat = self.favourite[user]
                items, cdf = self.by_category[cat], self._cdfs[cat]
            else:
                items, cdf = self._all_items, self._all_cdf
            out.append((user, items[min(int(np.searchsorted(cdf, d)), len(items) - 1)]))
        return out

    def next_event(self) -> tuple[str, str]:
        """One (user, item) interaction."""
        return self.events(1)[0]

    @staticmethod
    def category_of(item: str) -> str:
        return item.rsplit("-", 1)[0]
