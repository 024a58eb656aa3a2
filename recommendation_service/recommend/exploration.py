"""New-item exploration: a fresh catalog entry is shown to a small, decaying share of users
until it has events of its own.

An item is a candidate while the served model neither knows it (no events at the refit) nor
has folded it in since (no events in an update), the catalog gives it a ``created_at`` no older
than ``max_age``, and it is available. A user sees a candidate with probability
``share * 0.5 ** (age / half_life)``, decided by a hash of (user, item): the same user gets the
same answer in every process and on every host, so the list does not flicker between requests.
At most ``slots`` candidates, newest first, take places in the middle of the list, with the
score of the item they follow and the reason ``new_item``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..data.catalog import CatalogSnapshot
from ..rules.item_rules import NO_RULES, id_allowed
from .request import ExploreParams, Query
from .result import Recommendation
from .version import NewItems

#: Candidates examined per request, newest first.
MAX_CANDIDATES = 1000
#: Seconds a candidate list is reused before it is recomputed.
POOL_SECONDS = 60.0


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: uint64 -> well-spread uint64."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@dataclass(frozen=True)
class Candidates:
    """The explorable items of one (model version, catalog, new items) state, newest first."""

    ids: tuple[str, ...]
    rows: np.ndarray
    created_at: np.ndarray
    hashes: np.ndarray  # uint64 per item


def candidates(catalog: CatalogSnapshot, known, now: float, params: ExploreParams) -> Candidates:
    """Catalog items created within ``params.max_age`` of ``now`` for which ``known(id)`` is
    false (the model has no events of them)."""
    created = catalog.created_at
    with np.errstate(invalid="ignore"):
        recent = np.flatnonzero((created >= now - params.max_age) & catalog.available)
    ids_by_row = {row: item for item, row in catalog.row.items()} if len(recent) else {}
    order = recent[np.argsort(-created[recent], kind="stable")]
    picked = [r for r in order.tolist() if not known(ids_by_row[r])][:MAX_CANDIDATES]
    ids = tuple(ids_by_row[r] for r in picked)
    return Candidates(
        ids,
        np.array(picked, dtype=np.int64),
        created[picked] if picked else np.zeros(0),
        np.array([_hash64(i) for i in ids], dtype=np.uint64),
    )


def explored(
    pool: Candidates, user: str, now: float, params: ExploreParams, allowed, skip
) -> list[str]:
    """The candidates ``user`` is shown (at most ``params.slots``, newest first)."""
    if not pool.ids or params.share <= 0:
        return []
    age = np.maximum(now - pool.created_at, 0.0)
    chance = params.share * np.exp2(-age / params.half_life)
    with np.errstate(over="ignore"):
        draw = _mix(pool.hashes ^ np.uint64(_hash64(user))) >> np.uint64(11)
    uniform = draw.astype(np.float64) / float(1 << 53)
    out = []
    for k in np.flatnonzero(uniform < chance).tolist():
        item = pool.ids[k]
        if item not in skip and allowed(item):
            out.append(item)
            if len(out) == params.slots:
                break
    return out


def insert(rec: Recommendation, items: list[str], n: int) -> Recommendation:
    """``rec`` with ``items`` placed from the middle on, cut to ``n``."""
    items = [i for i in items if i not in set(rec.items)]
    if not items:
        return rec
    at = min(len(rec.items), n // 2)
    keep = max(0, n - len(items))
    head, tail = list(zip(rec.items, rec.scores, rec.reasons))[:keep], []
    tail, head = head[at:], head[:at]
    score = head[-1][1] if head else (tail[0][1] if tail else 0.0)
    merged = head + [(i, score, "new_item") for i in items] + tail
    return rec.with_picks([(s, i, r) for i, s, r in merged])


class ExplorePool:
    """The exploration stage's cache: the candidates of one version, recomputed when the
    catalog, the version's new items or the settings change, and at least every minute (new
    items age into and out of it).

    Parameters
    ----------
    in_version
        Whether the version has events of an item (then it is no candidate).
    """

    def __init__(self, in_version: Callable[[str], bool]) -> None:
        self._in_version = in_version
        self._cached: tuple | None = None

    def get(
        self, catalog: CatalogSnapshot, now: float, params: ExploreParams, new: NewItems
    ) -> Candidates:
        """The candidates for ``catalog`` at ``now``, ``new`` being the version's table of
        folded-in new items (they are no candidates either)."""
        cached = self._cached
        if (
            cached is None
            or cached[0] is not catalog
            or cached[1] is not new
            or cached[2] != params
            or now - cached[3] > POOL_SECONDS
        ):
            folded = set(new.ids)
            pool = candidates(catalog, lambda i: i in folded or self._in_version(i), now, params)
            cached = self._cached = (catalog, new, params, now, pool)
        return cached[4]


def explore(
    query: Query, ranked: Recommendation, pool: ExplorePool, new: NewItems
) -> Recommendation:
    """``ranked`` with the new catalog items this user is shown placed from the middle on;
    ``new`` is the version's table of folded-in new items."""
    request = query.request
    catalog, rules, params = request.catalog, request.rules, request.explore
    if catalog is None or params.share <= 0:
        return ranked
    now = time.time()
    rows_ok = None if rules == NO_RULES else query.rows(rules)
    chosen = explored(
        pool.get(catalog, now, params, new), request.user, now, params,
        lambda item: id_allowed(rules, rows_ok, catalog, item), set(ranked.items),
    )  # fmt: skip
    return insert(ranked, chosen, request.n) if chosen else ranked
