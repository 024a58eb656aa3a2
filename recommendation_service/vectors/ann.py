"""Approximate top-N for large catalogs: a FAISS HNSW graph over the items' scoring rows.

Scores are inner products of a user vector with the items' scoring rows (maximum inner product
search), which graph indexes handle poorly as such: measured on real ALS factors, FAISS's HNSW
with the inner-product metric found 0.14 of the exact top 10 on a long-tailed stream and 0.84
on one with tastes (``tests/benchmarks/ann_choice.py``). The standard reduction fixes that:
append ``sqrt(max_norm^2 - |row|^2)`` to every row and a 0 to the query, and the nearest rows
in Euclidean distance are exactly the rows of largest inner product (Bachrach et al., "Speeding
up the Xbox recommender system using a Euclidean transformation for inner-product spaces",
RecSys 2014). The graph is built on those augmented rows.

The builder builds the graph at each refit and publishes it as one file of the version, with
its checksum. Servers map that file read-only (FAISS's ``IO_FLAG_MMAP_IFC``), so every worker
of a host shares its pages, and a version's graph is swapped with the version. The graph only
proposes candidates: their scores are recomputed exactly from the scoring matrix, and the
user's seen items are removed before the top ``n`` is taken; when too many candidates were
seen, the graph is asked again for more.

Below ``min_items`` items no graph is built and every query scans all items exactly.

How far a search looks (HNSW's ``efSearch``) decides recall, and the breadth that reaches a
given recall differs by catalog: 128 found 0.907 of the exact top 10 at 1,000,000 items where
it found over 0.95 at 100,000. So the builder picks it per version (:func:`probe_ef`): it
measures recall@10 on a sample of the refit's users against exact search and publishes the
smallest breadth that reaches ``target_recall``, which servers then use. Where scanning
every item is as fast as that breadth, or no breadth reaches the target and a scan is cheap
(graphs do poorly on some factor structures), the version is published without the graph and
searched exactly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .top_n import top_n

logger = logging.getLogger(__name__)

#: File name of the graph inside a version directory.
INDEX_FILE = "ann_index.faiss"


@dataclass(frozen=True)
class ANNParams:
    """When and how the builder builds the graph.

    Parameters
    ----------
    min_items
        Catalogs with fewer items are searched exactly.
    neighbors
        Links per node (HNSW's ``M``): more links, higher recall, a larger file.
    ef_construction
        Candidate list size while building: larger builds slower and links better.
    target_recall
        Recall@10 against exact search the published search breadth must reach.
    probe_users
        Users sampled to measure it (0: no probe; servers search at their default breadth).
    """

    min_items: int = 50_000
    neighbors: int = 16
    ef_construction: int = 100
    target_recall: float = 0.95
    probe_users: int = 200

    def __post_init__(self) -> None:
        if self.min_items < 1 or not 4 <= self.neighbors <= 128 or self.ef_construction < 8:
            raise ValueError("invalid ANN parameters")
        if not 0 < self.target_recall <= 1 or self.probe_users < 0:
            raise ValueError("invalid ANN probe parameters")


def augment(rows: np.ndarray) -> np.ndarray:
    """Rows with one extra column that turns inner-product order into Euclidean order."""
    rows = np.asarray(rows, dtype=np.float32)
    squared = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
    extra = np.sqrt(np.maximum(squared.max(initial=0.0) - squared, 0.0))
    return np.ascontiguousarray(np.hstack([rows, extra[:, None].astype(np.float32)]))


def build_index(rows: np.ndarray, params: ANNParams):
    """An HNSW graph over the augmented ``rows`` (n, d), built on one thread.

    One thread: the servers beside the builder need the other cores while it builds.
    """
    import faiss

    faiss.omp_set_num_threads(1)
    data = augment(rows)
    index = faiss.IndexHNSWFlat(data.shape[1], params.neighbors, faiss.METRIC_L2)
    index.hnsw.efConstruction = params.ef_construction
    index.add(data)
    logger.info("built HNSW index over %d items (M=%d)", len(data), params.neighbors)
    return index


def write_index(index, path: Path) -> None:
    """Write ``index`` to ``path`` (the caller fsyncs and renames the version directory)."""
    import faiss

    faiss.write_index(index, str(path))


def load_index(path: Path):
    """Map a published graph read-only, so the workers of a host share its pages."""
    import faiss

    faiss.omp_set_num_threads(1)  # one query per request; threads would only contend
    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)


def index_fits(index, n_items: int, dimension: int) -> bool:
    """Whether a loaded graph belongs to a scoring matrix of this shape."""
    return int(index.ntotal) == n_items and int(index.d) == dimension + 1


def search(
    index,
    matrix: np.ndarray,
    vector: np.ndarray,
    seen: np.ndarray,
    n: int,
    ef: int,
    allowed: np.ndarray | None = None,
    share: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``n`` unseen items for ``vector`` with their exact scores, best first.

    Asks the graph for ``n + len(seen)`` candidates (more if the seen items were not among
    them and the list came up short), rescores them exactly and drops the seen items (and
    columns ``allowed`` marks False), so a user with a long history still gets ``n`` items
    whenever the catalog has them. ``share`` is the fraction of columns ``allowed`` passes:
    the first search asks for correspondingly more, so it rarely needs a second.

    Returns
    -------
    (columns, scores)
    """
    total = int(index.ntotal)
    query = np.zeros((1, index.d), dtype=np.float32)
    query[0, :-1] = vector
    # Seen items score high, so most of them are among the candidates; of the rest, about
    # ``share`` pass the filter.
    want = min(total, len(seen) + (n if share >= 1 else int(1.5 * n / max(share, 0.01)) + 1))
    # A set beats np.isin's sort on the few dozen candidates of a request (~50 µs of ~400).
    seen_set = set(seen.tolist()) if len(seen) else ()
    while True:
        index.hnsw.efSearch = max(ef, want)
        _, found = index.search(query, want)
        cols = np.array(
            [
                c
                for c in found[0].tolist()
                if c >= 0 and c not in seen_set and (allowed is None or allowed[c])
            ],
            dtype=np.int64,
        )
        if len(cols) >= n or want >= total:
            break
        want = min(total, want * 4)
    scores = matrix[cols] @ vector
    best = top_n(scores, n)
    return cols[best], scores[best]


#: Search breadths the probe tries, smallest first.
PROBE_EFS = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
#: When no breadth reaches the target, an exact scan this fast (ms per query) serves instead.
EXACT_BUDGET_MS = 5.0


def probe_ef(
    index,
    matrix: np.ndarray,
    vectors: np.ndarray,
    seen: list[np.ndarray],
    target: float,
    n: int = 10,
    exact_budget_ms: float = EXACT_BUDGET_MS,
    weigh_cost: bool = True,
) -> dict:
    """How this version should be searched: the smallest breadth whose recall@``n`` on
    ``vectors`` (users, their ``seen`` columns excluded as a request excludes them) reaches
    ``target`` -- unless scanning every item exactly is as fast, or no breadth reaches the
    target and an exact scan costs at most ``exact_budget_ms``: then ``exact``.
    ``weigh_cost=False`` compares recall only (an exact scan is never "as fast").

    Returns ``{"ef", "exact", "recall", "target_recall", "users", "exact_ms", "tried":
    {ef: [recall, ms]}}``; with no breadth reaching the target and exact search too slow,
    ``ef`` is the largest tried and ``recall`` what it found.
    """
    exact, start = [], time.perf_counter()
    for vector, cols in zip(vectors, seen):
        scores = matrix @ vector
        scores[cols] = -np.inf
        exact.append(set(top_n(scores, n).tolist()))
    exact_ms = 1000 * (time.perf_counter() - start) / max(1, len(vectors))
    tried: dict[int, tuple[float, float]] = {}
    for ef in PROBE_EFS:
        start = time.perf_counter()
        found = [search(index, matrix, v, cols, n, ef)[0] for v, cols in zip(vectors, seen)]
        ms = 1000 * (time.perf_counter() - start) / max(1, len(vectors))
        recall = np.mean([len(set(f.tolist()) & w) / max(1, len(w)) for f, w in zip(found, exact)])
        tried[ef] = (round(float(recall), 4), round(ms, 3))
        slower = weigh_cost and ms >= exact_ms
        if recall >= target or slower:
            break
    ef = max(tried)
    recall, ms = tried[ef]
    use_exact = slower or (recall < target and exact_ms <= exact_budget_ms)
    return {"ef": ef, "exact": bool(use_exact), "recall": 1.0 if use_exact else recall,
            "target_recall": target, "users": len(vectors), "exact_ms": round(exact_ms, 3),
            "tried": {str(k): list(v) for k, v in tried.items()}}  # fmt: skip
