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
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..data.catalog import CatalogSnapshot

if TYPE_CHECKING:
    from .served_model import Recommendation

#: Candidates examined per request, newest first.
MAX_CANDIDATES = 1000


@dataclass(frozen=True)
class ExploreParams:
    """How much new catalog items are explored.

    Parameters
    ----------
    share
        Chance that a brand-new item is shown to a given user (0 = off).
    half_life
        Seconds after which that chance has halved.
    max_age
        Items created longer ago than this are not explored.
    slots
        Most explored items per list.
    """

    share: float = 0.05
    half_life: float = 86_400.0
    max_age: float = 10 * 86_400.0
    slots: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.share <= 1:
            raise ValueError("explore-share must be in [0, 1]")
        if not (self.half_life > 0 and self.max_age > 0 and math.isfinite(self.max_age)):
            raise ValueError("explore half-life and max-age must be positive")
        if not 1 <= self.slots <= 100:
            raise ValueError("explore-slots must be 1..100")


NO_EXPLORATION = ExploreParams(share=0.0)


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
    return replace(
        rec,
        items=[i for i, _, _ in merged],
        scores=[s for _, s, _ in merged],
        reasons=[r for _, _, r in merged],
    )
