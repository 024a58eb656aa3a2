"""A published model held in memory, answering top-N queries.

Unknown-id rule: a user who is neither in the model nor in any update since gets the window's
most popular items with ``source="popular"``; any other user gets scores over all items of the
model, minus the items they already interacted with in the window, with ``source="model"``.

Between refits the builder publishes fresh vectors of the users who had events (update files);
they are applied on top of the version they belong to, newest last, and replace that user's
vector and seen items. Updates also carry scoring rows of items the version does not know
(folded in against their users), which ``recommend`` ranks alongside the model's items. They
live only as long as their version: the next refit includes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..common.id_table import IdTable, decode_strings
from ..data.catalog import CatalogSnapshot
from ..errors import ModelLoadError
from ..rules.item_rules import NO_RULES, ItemRules, allowed_rows, column_mask, id_allowed
from ..vectors import ann
from ..vectors.top_n import top_n
from .diversity import NO_SHAPE, ListShape, reasons_of
from .exploration import NO_EXPLORATION, ExploreParams
from .list_shaping import shaped_list


@dataclass(frozen=True)
class Recommendation:
    items: list[str]
    scores: list[float]
    source: str  # "model" or "popular"
    as_of: float | None = None  # time of the user's newest event reflected, if updated
    #: Per item: ``model`` (the ALS term dominates its score), ``similar_to_recent`` (the
    #: similarity to the user's recent items does), ``new_item`` (folded in since the refit),
    #: ``popular`` (the unknown-user fallback).
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Fresh:
    vector: np.ndarray
    seen: np.ndarray
    last_ts: float
    seen_new: frozenset[str] = frozenset()  # items the version does not know, touched


@dataclass(frozen=True)
class _NewItems:
    """Scoring rows of items first seen after the refit, as the latest update gave them."""

    ids: tuple[str, ...] = ()
    rows: np.ndarray | None = None


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

    def __init__(
        self, manifest: dict, arrays: dict[str, np.ndarray], index=None, ef: int = 128
    ) -> None:
        self.manifest = manifest
        self.version = int(manifest["version"])
        self.name = str(manifest["name"])
        # Ids stay in the shared memory-mapped files; see id_table.py.
        self.user_ids = IdTable(
            arrays["user_ids.blob"], arrays["user_ids.offsets"], arrays["user_ids.order"]
        )
        self.item_ids = IdTable(
            arrays["item_ids.blob"], arrays["item_ids.offsets"], arrays["item_ids.order"]
        )
        self.seen_indptr = arrays["seen_indptr"]
        self.seen_indices = arrays["seen_indices"]
        self.popular_items = arrays["popular_items"]
        self.popular_scores = arrays["popular_scores"]
        self.scoring_matrix = arrays["scoring_matrix"]
        self.user_vectors = arrays["user_vectors"]
        # The ALS factors are the first halves: scoring matrix [Y, beta*Y_unit], vectors [x, q].
        half = self.scoring_matrix.shape[1] // 2
        self.item_factors = self.scoring_matrix[:, :half]
        self.user_factors = self.user_vectors[:, :half]
        # Versions published with the old IVF index (ivf_* arrays) are searched exactly.
        self.index = index
        self.ef = ef
        self.assoc = (
            (
                arrays["assoc_indptr"],
                arrays["assoc_indices"],
                arrays["assoc_counts"],
                arrays["item_baskets"],
            )
            if "assoc_indptr" in arrays
            else None
        )
        self._check()
        self.fresh: dict[str, _Fresh] = {}
        self.new_items = _NewItems()
        self.applied_update = 0
        self._catalog_rows: tuple | None = None
        self._default_mask: tuple | None = None
        self.explore_cache: tuple | None = None
        self._column_values: tuple | None = None

    def _check(self) -> None:
        n_users, n_items = len(self.user_ids), len(self.item_ids)
        problems = []
        if self.scoring_matrix.ndim != 2 or self.scoring_matrix.shape[1] % 2:
            problems.append("scoring matrix is not [factors, similarity] wide")
        for name, table in (("user", self.user_ids), ("item", self.item_ids)):
            problem = table.consistency_problem()
            if problem:
                problems.append(f"{name} ids: {problem}")
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
        if self.scoring_matrix.shape[0] != n_items or self.user_vectors.shape != (
            n_users,
            self.scoring_matrix.shape[1],
        ):
            problems.append("scoring matrix or user vectors do not match the ids")
        if self.assoc is not None and (
            len(self.assoc[0]) != n_items + 1
            or len(self.assoc[3]) != n_items
            or (len(self.assoc[1]) and (self.assoc[1].min() < 0 or self.assoc[1].max() >= n_items))
        ):
            problems.append("associations do not match the items")
        if self.index is not None and not ann.index_fits(
            self.index, n_items, self.scoring_matrix.shape[1]
        ):
            problems.append("approximate index does not match the items")
        if not all(np.isfinite(a).all() for a in (self.scoring_matrix, self.user_vectors)):
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

    def popular(self, n: int, mask: np.ndarray | None = None) -> Recommendation:
        """The window's most popular items (those ``mask`` allows)."""
        if mask is None:
            cols, scores = self.popular_items[:n], self.popular_scores[:n]
        else:
            keep = mask[self.popular_items]
            cols, scores = self.popular_items[keep][:n], self.popular_scores[keep][:n]
        return Recommendation(
            [self.item_ids[c] for c in cols.tolist()],
            [float(s) for s in scores],
            "popular",
            reasons=["popular"] * len(cols),
        )

    def apply_update(self, seq: int | None, arrays: dict[str, np.ndarray]) -> int:
        """Take the fresh user vectors of update ``seq``; returns how many users it held.

        ``seq`` None: records from the updates topic, which leave the file numbering alone.

        Raises
        ------
        ModelLoadError
            If the update does not fit this model (dimension, item range, non-finite values).
        """
        vectors = arrays["vectors"]
        indices = arrays["seen_indices"]
        if vectors.ndim != 2 or vectors.shape[1] != self.scoring_matrix.shape[1]:
            raise ModelLoadError(
                f"update {seq or '(topic)'} of {self.name} has the wrong dimension"
            )
        if len(indices) and (indices.min() < 0 or indices.max() >= self.n_items):
            raise ModelLoadError(
                f"update {seq or '(topic)'} of {self.name} points outside the items"
            )
        if not np.isfinite(vectors).all():
            raise ModelLoadError(f"update {seq or '(topic)'} of {self.name} has non-finite vectors")
        users = decode_strings(arrays["user_ids.blob"], arrays["user_ids.offsets"])
        indptr = arrays["seen_indptr"]
        last_ts = arrays["last_ts"]
        seen_new = [[] for _ in users]
        if "new_item_rows" in arrays:
            seen_new = self._take_new_items(seq, arrays, len(users))
        for k, user in enumerate(users):
            # One dict assignment per user: a request sees the old or the new entry, whole.
            self.fresh[user] = _Fresh(
                vectors[k],
                indices[indptr[k] : indptr[k + 1]],
                float(last_ts[k]),
                frozenset(seen_new[k]),
            )
        if seq is not None:
            self.applied_update = seq
        return len(users)

    def _take_new_items(self, seq: int, arrays: dict, n_users: int) -> list[list[str]]:
        """Merge an update's new-item rows; return each user's touched new items."""
        rows = arrays["new_item_rows"]
        if len(rows) and (
            rows.shape[1] != self.scoring_matrix.shape[1] or not np.isfinite(rows).all()
        ):
            raise ModelLoadError(f"update {seq or '(topic)'} of {self.name} has bad new-item rows")
        ids = decode_strings(arrays["new_item_ids.blob"], arrays["new_item_ids.offsets"])
        if ids:
            old = self.new_items
            merged = dict(zip(old.ids, () if old.rows is None else old.rows))
            merged.update(zip(ids, rows))
            # One assignment: a request sees the old or the new table, whole.
            self.new_items = _NewItems(tuple(merged), np.stack(list(merged.values())))
        seen = decode_strings(arrays["seen_new_ids.blob"], arrays["seen_new_ids.offsets"])
        bounds = arrays["seen_new_indptr"].tolist()
        return [seen[bounds[k] : bounds[k + 1]] for k in range(n_users)]

    def user_state(self, user: str) -> tuple[np.ndarray, np.ndarray, float | None] | None:
        """(vector, seen item columns, as_of) of ``user``, or None for an unknown user."""
        fresh = self.fresh.get(user)
        if fresh is not None:
            return fresh.vector, fresh.seen, fresh.last_ts
        row = self.user_ids.row_of(user)
        if row is None:
            return None
        return self.user_vectors[row], self.seen_items(row), None

    def catalog_rows(self, catalog: CatalogSnapshot) -> np.ndarray:
        """Catalog row of each of this version's item columns (-1: unlisted), cached."""
        cached = self._catalog_rows
        if cached is None or cached[0] is not catalog:
            cached = self._catalog_rows = (catalog, catalog.rows_of(list(self.item_ids)))
        return cached[1]

    def _avoiding(self, mask, catalog, avoid) -> np.ndarray | None:
        """``mask`` without the columns whose catalog value is one of ``avoid``'s codes."""
        if avoid is None or catalog is None:
            return mask
        codes, full = avoid
        cached = self._column_values
        if cached is None or cached[0] is not codes or cached[1] is not catalog:
            col_rows = self.catalog_rows(catalog)
            values = np.where(col_rows >= 0, codes[np.maximum(col_rows, 0)], -1)
            cached = self._column_values = (codes, catalog, values)  # per attribute, catalog
        keep = np.ones(len(cached[2]), dtype=bool)
        for code in full:
            keep &= cached[2] != code
        return keep if mask is None else mask & keep

    def allowed_columns(
        self, rules: ItemRules, catalog: CatalogSnapshot | None, rows_ok=None
    ) -> np.ndarray | None:
        """Which item columns ``rules`` allow with ``catalog`` (None: all of them)."""
        if rules == NO_RULES and catalog is not None:
            # Most requests: availability only. One mask per version and catalog.
            cached = self._default_mask
            if cached is None or cached[0] is not catalog:
                rows = allowed_rows(rules, catalog)
                mask = column_mask(rules, rows, self.catalog_rows(catalog), [])
                cached = self._default_mask = (catalog, mask)
            return cached[1]
        if rows_ok is None:
            rows_ok = allowed_rows(rules, catalog)
        col_rows = self.catalog_rows(catalog) if catalog is not None else np.full(self.n_items, -1)
        excluded = [c for c in map(self.item_ids.row_of, rules.exclude) if c is not None]
        return column_mask(rules, rows_ok, col_rows, excluded)

    def recommend(
        self,
        user: str,
        n: int,
        rules: ItemRules = NO_RULES,
        catalog: CatalogSnapshot | None = None,
        shape: ListShape = NO_SHAPE,
        explore: ExploreParams = NO_EXPLORATION,
    ) -> Recommendation:
        """Top ``n`` items for ``user``, best first, excluding items seen in the window and
        items ``rules`` (with ``catalog``) do not allow; fewer only when fewer pass. ``shape``
        caps items per attribute value and reserves promoted slots (see diversity.py);
        ``explore`` shows new catalog items to a share of users (see exploration.py)."""
        return shaped_list(self, user, n, rules, catalog, shape, explore)

    def ranked(
        self,
        user: str,
        n: int,
        rules: ItemRules,
        catalog: CatalogSnapshot | None,
        avoid: tuple | None = None,
    ) -> Recommendation:
        """The best ``n`` allowed, unseen items for ``user`` (popular ones if unknown), before
        any shaping (list_shaping.py); ``avoid`` = (value code per catalog row, codes) leaves
        out items with those values."""
        state = self.user_state(user)
        if state is None:
            rows_ok = None if rules == NO_RULES else allowed_rows(rules, catalog)
            mask = self._avoiding(self.allowed_columns(rules, catalog, rows_ok), catalog, avoid)
            return self.popular(n, mask)
        vector, seen, as_of = state
        # Excluded ids are left out like seen items: no mask over all items for a few ids.
        base = replace(rules, exclude=frozenset()) if rules.exclude else rules
        rows_ok = None if base == NO_RULES else allowed_rows(base, catalog)
        mask = self._avoiding(self.allowed_columns(base, catalog, rows_ok), catalog, avoid)
        if rules.exclude:
            excluded = [c for c in map(self.item_ids.row_of, rules.exclude) if c is not None]
            seen = np.concatenate([seen, np.asarray(excluded, dtype=seen.dtype)])
        share = 1.0 if mask is None else float(mask.mean())
        if mask is not None and (self.index is None or share < 0.05):
            # Few items pass (or no index): score exactly the ones that do.
            cols = np.flatnonzero(mask)
            scores = self.scoring_matrix[cols] @ vector
            scores[np.isin(cols, seen)] = -np.inf
            best = top_n(scores, n)
            best = best[np.isfinite(scores[best])]
            chosen, scores = cols[best], scores[best]
        elif self.index is None:
            scores = self.scoring_matrix @ vector
            scores[seen] = -np.inf
            chosen = top_n(scores, n)
            scores = scores[chosen]
        else:
            chosen, scores = ann.search(
                self.index, self.scoring_matrix, vector, seen, n, self.ef, mask, share
            )
        picks = list(
            zip(scores.tolist(), [self.item_ids[c] for c in chosen.tolist()], reasons_of(
                self.scoring_matrix[chosen], vector
            ))
        )  # fmt: skip
        new = self.new_items
        if new.ids:
            if rows_ok is None and catalog is not None:
                rows_ok = allowed_rows(rules, catalog)
            fresh = self.fresh.get(user)
            picks += _new_picks(
                new,
                vector,
                n,
                fresh.seen_new if fresh else (),
                lambda item: id_allowed(rules, rows_ok, catalog, item),
            )
            picks.sort(key=lambda p: -p[0])
        picks = picks[:n]
        return Recommendation(
            [i for _, i, _ in picks], [s for s, _, _ in picks], "model", as_of,
            [r for _, _, r in picks],
        )  # fmt: skip


def _new_picks(new: _NewItems, vector, n: int, seen, allowed) -> list[tuple]:
    """The best ``n`` allowed new items the user has not touched, as (score, id, reason)."""
    extra = new.rows @ vector
    picks = []
    for c in np.argsort(-extra).tolist():
        if len(picks) == n:
            break
        if new.ids[c] not in seen and allowed(new.ids[c]):
            picks.append((float(extra[c]), new.ids[c], "new_item"))
    return picks
