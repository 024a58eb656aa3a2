"""A published model version held in memory, with fresh state applied on top of it.

Between refits the builder publishes fresh vectors of the users who had events (update files,
or the updates topic); they are applied on top of the version they belong to, newest last, and
replace that user's vector and seen items. Updates also carry scoring rows of items the version
does not know (folded in against their users), which the pipeline ranks alongside the model's
items. They live only as long as their version: the next refit includes them.

This module holds data only; how a request is answered is the pipeline's (pipeline.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..common.id_table import IdTable, decode_strings
from ..data.erasures import ErasureLedger
from ..errors import ModelLoadError
from ..ranking.version_stage import load_rank_stage
from ..vectors.sequences import SequenceWeights
from .request import NO_SEQUENCE, UserState

_NO_ITEMS = np.zeros(0, dtype=np.int32)


@dataclass(frozen=True)
class _Fresh:
    vector: np.ndarray
    seen: np.ndarray
    last_ts: float
    seen_new: frozenset[str] = frozenset()  # items the version does not know, touched
    recent: np.ndarray = field(default_factory=lambda: _NO_ITEMS)  # columns, newest first
    erasures: int = 0  # erasure records the builder had applied when it made this state


@dataclass(frozen=True)
class NewItems:
    """Scoring rows of items first seen after the refit, as the latest update gave them."""

    ids: tuple[str, ...] = ()
    rows: np.ndarray | None = None


class ModelVersion:
    """One verified model version in memory, with the fresh state applied on top of it.

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
        self,
        manifest: dict,
        arrays: dict[str, np.ndarray],
        index=None,
        ef: int = 128,
        erasures: ErasureLedger | None = None,
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
        # Sequential rules and each user's recent items (versions of earlier releases have
        # none: their sequence term is off).
        self.successors = (
            (arrays["succ_indptr"], arrays["succ_indices"], arrays["succ_weights"])
            if "succ_indptr" in arrays
            else None
        )
        self.recent = (
            (arrays["recent_indptr"], arrays["recent_indices"])
            if "recent_indptr" in arrays
            else None
        )
        #: The request-time weights of the sequence term the refit chose (requests may
        #: override them).
        self.sequence = NO_SEQUENCE
        if self.successors is not None:
            try:
                chosen = manifest["sequence"]
                self.sequence = SequenceWeights(chosen["weight"], chosen["depth"], chosen["decay"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelLoadError(f"{self.name}: bad sequence settings: {exc}") from exc
        self._check()
        #: The rank stage's arrays and rankers (none for versions made without it).
        self.rank_stage = load_rank_stage(
            self.name, arrays, manifest, self.scoring_matrix,
            None if self.successors is None else self.successors[:3], self.sequence,
            len(self.user_ids),
        )  # fmt: skip
        #: Erasure records the window of this version had applied (0: made before erasures).
        self.erasures_applied = int(manifest.get("erasures_applied") or 0)
        #: The erasures this process has read (the model watcher's ledger, which it keeps
        #: reading); None: none to honour.
        self.erasures = erasures
        self.fresh: dict[str, _Fresh] = {}
        self.new_items = NewItems()
        self.applied_update = 0

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
        if self.successors is not None and _csr_problem(
            self.successors[0], self.successors[1], n_items, n_items
        ):
            problems.append("sequential rules do not match the items")
        if self.recent is not None and _csr_problem(*self.recent, n_users, n_items):
            problems.append("recent items do not match the users")
        if self.index is not None and not self.index.fits(n_items, self.scoring_matrix.shape[1]):
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

    def recent_items(self, row: int) -> np.ndarray:
        """Item columns of the user's most recent distinct items at the refit, newest first."""
        if self.recent is None:
            return _NO_ITEMS
        indptr, indices = self.recent
        return indices[indptr[row] : indptr[row + 1]]

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
        recent_at, recent = arrays.get("recent_indptr"), arrays.get("recent_indices")
        erasures = arrays.get("erasures")
        if erasures is None:  # an update of an earlier release
            erasures = np.zeros(len(users), dtype=np.int64)
        if recent is not None and _csr_problem(recent_at, recent, len(users), self.n_items):
            raise ModelLoadError(
                f"update {seq or '(topic)'} of {self.name} has recent items that do not fit"
            )
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
                _NO_ITEMS if recent is None else recent[recent_at[k] : recent_at[k + 1]],
                int(erasures[k]),
            )
        if seq is not None:
            self.applied_update = seq
        return len(users)

    def skip_update(self, seq: int) -> None:
        """Count update ``seq`` as applied without taking it (it does not fit this version):
        the next update or refit carries those users' newer state."""
        self.applied_update = max(self.applied_update, seq)

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
            self.new_items = NewItems(tuple(merged), np.stack(list(merged.values())))
        seen = decode_strings(arrays["seen_new_ids.blob"], arrays["seen_new_ids.offsets"])
        bounds = arrays["seen_new_indptr"].tolist()
        return [seen[bounds[k] : bounds[k + 1]] for k in range(n_users)]

    def user_state(self, user: str) -> UserState | None:
        """What this version knows of ``user`` now, or None for an unknown user (never seen,
        or erased since this state was made)."""
        fresh = self.fresh.get(user)
        ledger = self.erasures
        if ledger is not None and ledger.hides(user, self.erasures_applied):
            # Only state made after the erasure (a fresh vector of later events) remains.
            if fresh is None or ledger.hides(user, fresh.erasures):
                return None
            return UserState(fresh.vector, fresh.seen, fresh.last_ts, fresh.seen_new, fresh.recent)
        if fresh is not None:
            return UserState(fresh.vector, fresh.seen, fresh.last_ts, fresh.seen_new, fresh.recent)
        row = self.user_ids.row_of(user)
        if row is None:
            return None
        last_ts = self.rank_stage.user_last_ts
        return UserState(
            self.user_vectors[row], self.seen_items(row), None, frozenset(), self.recent_items(row),
            None if last_ts is None else float(last_ts[row]),
        )  # fmt: skip

    @cached_property
    def popularity_by_column(self) -> np.ndarray:
        """The popularity score of every item column (0 for items not ranked)."""
        scores = np.zeros(self.n_items, dtype=np.float64)
        scores[np.asarray(self.popular_items)] = self.popular_scores
        return scores

    @cached_property
    def item_norms(self) -> np.ndarray:
        """Length of each item's ALS factors (similar items are ranked by cosine)."""
        return np.maximum(np.linalg.norm(self.item_factors, axis=1), 1e-12)


def _csr_problem(indptr: np.ndarray, indices: np.ndarray, rows: int, cols: int) -> bool:
    """Whether CSR arrays fail to describe a ``rows`` x ``cols`` matrix."""
    if len(indptr) != rows + 1 or (rows and int(indptr[-1]) != len(indices)):
        return True
    return bool(len(indices)) and bool(indices.min() < 0 or indices.max() >= cols)
