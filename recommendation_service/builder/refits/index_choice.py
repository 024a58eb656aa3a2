"""The index each refit publishes: the kind and breadth the probe measures best, without
building every kind at every refit (vectors/ann_probe.py).

The first refit compares every kind. The next ``recheck_every - 1`` probe only the kind the
last version got (or, where a scan won, build nothing): kept while it still reaches the target
faster than a scan, else every kind is compared again at once.
"""

from __future__ import annotations

import logging

import numpy as np

from ...data.window import WindowSnapshot
from ...training.fold_in import FoldIn
from ...vectors.ann import ANNIndex, ANNParams, build_index
from ...vectors.ann_probe import ProbeResult, probe

logger = logging.getLogger(__name__)


class IndexChoice:
    """Chooses the index of each version a training worker publishes."""

    def __init__(self, params: ANNParams) -> None:
        self.params = params
        #: The last version's kind ("exact": none), and refits since every kind was compared.
        self.kind: str | None = None
        self.since_comparison = 0

    def choose(
        self, fold: FoldIn, user_factors: np.ndarray, snapshot: WindowSnapshot
    ) -> tuple[ANNIndex | None, dict | None]:
        """The index to publish (None: exact search) and the probe's report for the manifest."""
        p = self.params
        if snapshot.n_items < p.min_items:
            return None, None
        matrix = fold.scoring_matrix
        if not p.probe_users:
            return build_index(matrix, p), None
        rng = np.random.default_rng(snapshot.n_events)
        count = min(p.probe_users, snapshot.n_users)
        rows = np.sort(rng.choice(snapshot.n_users, size=count, replace=False))
        vectors = fold.base_vectors(user_factors, snapshot, rows)
        seen = [snapshot.seen[int(r)].indices for r in rows]
        due = self.kind is None or self.since_comparison + 1 >= p.recheck_every
        result: ProbeResult | None = None
        if not due and self.kind == "exact":
            self.since_comparison += 1
            return None, {"kind": "exact", "kept": True, "target_recall": p.target_recall}
        if not due:
            result = probe(matrix, vectors, seen, p, only=self.kind)
            if result.exact or result.recall < p.target_recall:
                logger.info("the %s index no longer reaches recall@10 %.2f: comparing every "
                            "kind", self.kind, p.target_recall)  # fmt: skip
                result = None
        if result is None:
            result = probe(matrix, vectors, seen, p)
            self.since_comparison = 0
        else:
            self.since_comparison += 1
        self.kind = "exact" if result.exact else result.index.kind
        self._log(result)
        return result.index, result.summary()

    def _log(self, r: ProbeResult) -> None:
        if r.exact:
            logger.info("searching exactly (%.2f ms per query): no index reached recall@10 %.2f "
                        "faster (%s)", r.exact_ms, r.target, _brief(r))  # fmt: skip
        elif r.recall < r.target:
            logger.warning("no index reaches recall@10 %.2f: %s at breadth %d found %.3f (%s)",
                           r.target, r.index.kind, r.breadth, r.recall, _brief(r))  # fmt: skip
        else:
            logger.info("index %s at breadth %d: recall@10 %.3f, %.3f ms per query on %d users "
                        "(exact %.2f ms; %s)", r.index.kind, r.breadth, r.recall, r.ms, r.users,
                        r.exact_ms, _brief(r))  # fmt: skip


def _brief(r: ProbeResult) -> str:
    return ", ".join(
        f"{kind} {k['recall']:.3f}@{k['breadth']} {k['ms']:.3f} ms" for kind, k in r.kinds.items()
    )
