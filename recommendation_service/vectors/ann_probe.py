"""Which index, searched how wide, serves a version: measured at publish on sampled users.

For each index kind (``ann.py``) the probe builds the index and tries breadths from the
smallest up, measuring recall@``n`` against an exact scan -- with each user's seen items
excluded, as requests exclude them -- and the time per query, until a breadth reaches the
target recall or costs as much as the scan. The version is published with the kind and
breadth that reach the target at the lowest cost; with none, it is searched exactly when a
scan is cheap (``exact_budget_ms``), else with the kind that came closest.

Building every kind at every refit would cost the builder more than the rest of the refit on
large catalogs, so a refit may probe the previous version's kind alone (``only``): kept while
it still reaches the target, and every kind is compared again when it does not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .ann import ANNIndex, ANNParams, build_index, exact_search, search

#: When no kind reaches the target, an exact scan this fast (ms per query) serves instead.
EXACT_BUDGET_MS = 5.0


@dataclass
class ProbeResult:
    """The probe's choice: ``index`` (None: search exactly) at ``breadth``, and the figures
    behind it for the manifest (:meth:`summary`)."""

    index: ANNIndex | None
    breadth: int
    recall: float
    ms: float
    exact_ms: float
    target: float
    users: int
    kinds: dict[str, dict] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return self.index is None

    def summary(self) -> dict:
        return {
            "kind": "exact" if self.index is None else self.index.kind,
            "ef": self.breadth, "exact": self.exact, "recall": self.recall, "ms": self.ms,
            "target_recall": self.target, "users": self.users, "exact_ms": self.exact_ms,
            "kinds": self.kinds,
        }  # fmt: skip


def exact_truth(matrix, vectors, seen, n: int = 10) -> tuple[list[set], float]:
    """Each user's exact top ``n`` (seen items excluded) and the ms one scan takes."""
    start = time.perf_counter()
    truth = [set(exact_search(matrix, v, cols, n)[0].tolist()) for v, cols in zip(vectors, seen)]
    return truth, 1000 * (time.perf_counter() - start) / max(1, len(vectors))


def probe_breadths(index: ANNIndex, matrix, vectors, seen, truth, target, exact_ms, n=10):
    """``{breadth: (recall, ms)}`` from the smallest breadth up, stopping at the first that
    reaches ``target`` or costs ``exact_ms`` (None: never stop for cost)."""
    tried: dict[int, tuple[float, float]] = {}
    for breadth in index.breadths:
        start = time.perf_counter()
        found = [search(index, matrix, v, c, n, breadth)[0] for v, c in zip(vectors, seen)]
        ms = 1000 * (time.perf_counter() - start) / max(1, len(vectors))
        recall = np.mean([len(set(f.tolist()) & t) / max(1, len(t)) for f, t in zip(found, truth)])
        tried[breadth] = (round(float(recall), 4), round(ms, 4))
        if recall >= target or (exact_ms is not None and ms >= exact_ms):
            break
    return tried


def probe(
    matrix: np.ndarray,
    vectors: np.ndarray,
    seen: list[np.ndarray],
    params: ANNParams,
    only: str | None = None,
    target: float | None = None,
    n: int = 10,
    exact_budget_ms: float = EXACT_BUDGET_MS,
    weigh_cost: bool = True,
) -> ProbeResult:
    """Build and measure each kind (or ``only`` that one) and choose as the module says.

    ``target`` overrides ``params.target_recall``; ``weigh_cost=False`` compares recall only:
    an exact scan is never "as fast".
    """
    truth, exact_ms = exact_truth(matrix, vectors, seen, n)
    target = params.target_recall if target is None else target
    kinds: dict[str, dict] = {}
    best: tuple | None = None  # ((reaches, -ms or recall), index, breadth, recall, ms)
    for kind in (only,) if only else params.kinds:
        start = time.perf_counter()
        index = build_index(matrix, params, kind)
        build_s = time.perf_counter() - start
        tried = probe_breadths(index, matrix, vectors, seen, truth, target,
                               exact_ms if weigh_cost else None, n)  # fmt: skip
        breadth = max(tried)
        recall, ms = tried[breadth]
        kinds[kind] = {"build_s": round(build_s, 2), "breadth": breadth, "recall": recall,
                       "ms": ms, "tried": {str(b): list(v) for b, v in tried.items()}}  # fmt: skip
        reaches = recall >= target and (not weigh_cost or ms < exact_ms)
        # Among those reaching the target the cheapest wins; else the highest recall.
        key = (reaches, -ms if reaches else recall)
        if best is None or key > best[0]:
            best = (key, index, breadth, recall, ms)
    (reaches, _), index, breadth, recall, ms = best
    if not reaches and ((weigh_cost and ms >= exact_ms) or exact_ms <= exact_budget_ms):
        index, recall, ms = None, 1.0, exact_ms
    return ProbeResult(index, breadth, recall, ms, round(exact_ms, 4), target, len(vectors),
                       kinds)  # fmt: skip
