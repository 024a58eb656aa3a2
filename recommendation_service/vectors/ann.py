"""Approximate top-N for large catalogs: a FAISS index over the items' scoring rows, of the kind
that searches this catalog best.

Scores are inner products of a user vector with the items' scoring rows (maximum inner product
search). Which index finds them depends on the factors, so there are four kinds and the
builder measures them on each version (``ann_probe.py``; figures per kind and catalog shape
from ``tests/benchmarks/index_kinds.py`` in docs/measured.md):

``hnsw_ip``
    An HNSW graph with FAISS's inner-product metric. On the service's scoring rows (factors
    and similarity term, seen items excluded) it found at most 0.41 of the exact top 10 on
    heavy-tailed and clustered catalogs, 0.96 on the Online Retail log's.
``hnsw_l2aug``
    An HNSW graph on rows augmented with ``sqrt(max_norm^2 - |row|^2)`` (a 0 appended to the
    query), so the nearest rows in Euclidean distance are those of largest inner product
    (Bachrach et al., RecSys 2014). The only kind of earlier releases.
``ivf_ip``
    Inverted lists (about ``sqrt(n)`` k-means cells) with the inner-product metric, searching
    ``nprobe`` cells: cheap to build, and exact enough on clustered tastes at a few cells.
``split_l2aug``
    The items of largest norm (the head: 0.5%, at least 256) scanned exactly, and the
    augmented graph over the rest. On a heavy-tailed catalog a few popular items have norms
    ~50× the others' (0.14 to 6.8 against a median of 0.07): the augmentation then turns every
    other item into a far-away point and the graph loses its way (0.85 at breadth 2,048); with
    the head taken out the tail's norms are alike and the graph found 0.97 at breadth 128.

How far a search looks -- HNSW's ``efSearch`` or IVF's ``nprobe``, the *breadth* -- decides
recall and cost. Every kind only proposes candidates: their scores are recomputed exactly from
the scoring matrix and the user's seen items removed before the top ``n`` is taken; when too
many candidates were seen, the index is asked again for more.

Versions carry their index as one file, with its checksum; servers map it read-only
(``IO_FLAG_MMAP_IFC``), so every worker of a host shares its pages. Below ``min_items`` items,
or where the probe finds a scan as fast, no index is built and every query scans exactly.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .sorted_lookup import positions
from .top_n import top_n

logger = logging.getLogger(__name__)

#: File name of the index inside a version directory.
INDEX_FILE = "ann_index.faiss"
#: The index kinds, in the order the probe builds them. The first is what a version gets
#: without a probe: the earlier releases' kind, the cheapest per query on clustered tastes.
KINDS = ("hnsw_l2aug", "split_l2aug", "hnsw_ip", "ivf_ip")
#: The head of ``split_l2aug``: this share of the items, by norm, at least ``HEAD_MIN``.
HEAD_SHARE, HEAD_MIN = 0.005, 256
#: Breadths the probe tries per kind, smallest first.
HNSW_BREADTHS = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
IVF_BREADTHS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


@dataclass(frozen=True)
class ANNParams:
    """When and how the builder builds an index.

    Parameters
    ----------
    min_items
        Catalogs with fewer items are searched exactly.
    neighbors
        Links per node of the HNSW kinds (``M``): more links, higher recall, a larger file.
    ef_construction
        Candidate list size while building a graph: larger builds slower and links better.
    target_recall
        Recall@10 against exact search the published index and breadth must reach.
    probe_users
        Users sampled to measure it (0: no probe; the first kind is published and servers
        search it at their default breadth).
    kinds
        The index kinds the probe compares (:data:`KINDS`).
    recheck_every
        Refits between full comparisons: in between, the kind of the last version is probed
        alone and kept while it reaches the target (every kind is built again when it does not).
    """

    min_items: int = 50_000
    neighbors: int = 16
    ef_construction: int = 100
    target_recall: float = 0.95
    probe_users: int = 200
    kinds: tuple[str, ...] = KINDS
    recheck_every: int = 10

    def __post_init__(self) -> None:
        if self.min_items < 1 or not 4 <= self.neighbors <= 128 or self.ef_construction < 8:
            raise ValueError("invalid ANN parameters")
        if not 0 < self.target_recall <= 1 or self.probe_users < 0 or self.recheck_every < 1:
            raise ValueError("invalid ANN probe parameters")
        if not self.kinds or any(k not in KINDS for k in self.kinds):
            raise ValueError(f"ANN kinds must be among {', '.join(KINDS)}")


def augment(rows: np.ndarray) -> np.ndarray:
    """Rows with one extra column that turns inner-product order into Euclidean order."""
    rows = np.asarray(rows, dtype=np.float32)
    squared = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
    extra = np.sqrt(np.maximum(squared.max(initial=0.0) - squared, 0.0))
    return np.ascontiguousarray(np.hstack([rows, extra[:, None].astype(np.float32)]))


class ANNIndex:
    """A FAISS index of one :data:`KINDS` kind over ``n`` scoring rows of dimension ``d``
    (for ``split_l2aug``: over the tail's rows, by their column ids; the head is the rest)."""

    def __init__(self, kind: str, index) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}")
        self.kind, self.faiss = kind, index
        self.augmented = kind in ("hnsw_l2aug", "split_l2aug")
        self._head: np.ndarray | None = None
        # (matrix, its head rows): one contiguous copy per scoring matrix, not one per query
        # (gathering them took about a third of a split search's time).
        self._head_rows: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def total(self) -> int:
        """Rows the index answers for (the head's included)."""
        return int(self.faiss.ntotal) + (0 if self._head is None else len(self._head))

    def attach(self, n_items: int) -> ANNIndex:
        """Complete a split index for a matrix of ``n_items`` rows: its head is every column
        the graph does not hold (kept in memory: 8 bytes per head item)."""
        if self.kind == "split_l2aug" and self._head is None:
            import faiss

            tail = faiss.vector_to_array(self.faiss.id_map)
            keep = np.ones(n_items, dtype=bool)
            keep[tail[(tail >= 0) & (tail < n_items)]] = False
            self._head = np.flatnonzero(keep)
        return self

    @property
    def head(self) -> np.ndarray | None:
        return self._head

    def head_rows(self, matrix: np.ndarray) -> np.ndarray | None:
        """The head's rows of ``matrix``, copied once per matrix: a version's scoring rows never
        change (new items live beside them), and another matrix gets its own copy."""
        if self._head is None:
            return None
        cached = self._head_rows
        if cached is None or cached[0] is not matrix:
            # One tuple, set at once: request threads racing here compute the same rows.
            cached = self._head_rows = (matrix, np.ascontiguousarray(matrix[self._head]))
        return cached[1]

    @property
    def breadths(self) -> tuple[int, ...]:
        if self.kind == "ivf_ip":
            return tuple(b for b in IVF_BREADTHS if b <= self.faiss.nlist)
        return HNSW_BREADTHS

    def fits(self, n_items: int, dimension: int) -> bool:
        """Whether this index belongs to a scoring matrix of this shape."""
        self.attach(n_items)
        return self.total == n_items and int(self.faiss.d) == dimension + self.augmented

    def candidates(self, vector: np.ndarray, want: int, breadth: int) -> list[int]:
        """The ids of up to ``want`` rows the index ranks first for ``vector``."""
        import faiss

        if not getattr(_calling_thread, "one_omp_thread", False):
            # OpenMP's thread count is a setting of each calling thread: a request thread
            # that never set it forks a team per search, whose idle member then spins (it
            # took 40% of a core beside each serving worker's request thread).
            faiss.omp_set_num_threads(1)
            _calling_thread.one_omp_thread = True
        query = np.zeros((1, self.faiss.d), dtype=np.float32)
        query[0, : len(vector)] = vector
        if self.kind == "ivf_ip":
            params = faiss.SearchParametersIVF(nprobe=max(1, breadth))
        else:  # per-call parameters: safe with several request threads on one index
            params = faiss.SearchParametersHNSW(efSearch=max(breadth, want))
        _, found = self.faiss.search(query, want, params=params)
        return [c for c in found[0].tolist() if c >= 0]

    def describe(self) -> dict:
        """What the manifest records of it (besides file, size and checksum)."""
        if self.kind == "ivf_ip":
            return {"kind": self.kind, "lists": int(self.faiss.nlist)}
        graph = self.faiss.index if self.kind == "split_l2aug" else self.faiss
        described = {"kind": self.kind, "neighbors": int(_hnsw(graph).nb_neighbors(1))}
        if self._head is not None:
            described["head"] = len(self._head)
        return described


_calling_thread = threading.local()


def _hnsw(index):
    import faiss

    return faiss.downcast_index(index).hnsw


def build_index(rows: np.ndarray, params: ANNParams, kind: str | None = None) -> ANNIndex:
    """An index of ``kind`` (the first of ``params.kinds`` when None, as an unprobed version
    gets) over ``rows`` (n, d), built on one thread.

    One thread: the servers beside the builder need the other cores while it builds.
    """
    import faiss

    faiss.omp_set_num_threads(1)
    kind = kind or params.kinds[0]
    if kind == "split_l2aug":
        rows = np.asarray(rows, dtype=np.float32)
        norms = np.einsum("ij,ij->i", rows, rows)
        size = min(len(rows) // 2, max(HEAD_MIN, round(HEAD_SHARE * len(rows))))
        tail = np.sort(np.argsort(-norms, kind="stable")[size:])
        graph = faiss.IndexHNSWFlat(rows.shape[1] + 1, params.neighbors, faiss.METRIC_L2)
        graph.hnsw.efConstruction = params.ef_construction
        index = faiss.IndexIDMap(graph)
        index.add_with_ids(augment(rows[tail]), tail.astype(np.int64))
        logger.info("built a split index: %d head items, a graph over %d", size, len(tail))
        return ANNIndex(kind, index).attach(len(rows))
    if kind == "ivf_ip":
        data = np.ascontiguousarray(rows, dtype=np.float32)
        lists = int(np.clip(round(np.sqrt(len(data))), 1, 65_536))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(data.shape[1]), data.shape[1], lists,
                                   faiss.METRIC_INNER_PRODUCT)  # fmt: skip
        # k-means on a sample: 64 rows per list is plenty and keeps the build to seconds.
        sample = np.random.default_rng(0).permutation(len(data))[: 64 * lists]
        index.cp.max_points_per_centroid = 64
        index.train(data[np.sort(sample)])
    else:
        data = augment(rows) if kind == "hnsw_l2aug" else np.ascontiguousarray(rows, np.float32)
        metric = faiss.METRIC_L2 if kind == "hnsw_l2aug" else faiss.METRIC_INNER_PRODUCT
        index = faiss.IndexHNSWFlat(data.shape[1], params.neighbors, metric)
        index.hnsw.efConstruction = params.ef_construction
    index.add(data)
    logger.info("built a %s index over %d items", kind, len(data))
    return ANNIndex(kind, index)


def write_index(index: ANNIndex, path: Path) -> None:
    """Write ``index`` to ``path`` (the caller fsyncs and renames the version directory)."""
    import faiss

    faiss.write_index(index.faiss, str(path))


def load_index(path: Path, kind: str) -> ANNIndex:
    """Map a published index read-only, so the workers of a host share its pages."""
    import faiss

    flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY
    return ANNIndex(kind, faiss.read_index(str(path), flags))  # a split one: attach() next


def search(
    index: ANNIndex,
    matrix: np.ndarray,
    vector: np.ndarray,
    seen: np.ndarray,
    n: int,
    breadth: int,
    allowed: np.ndarray | None = None,
    share: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``n`` unseen items for ``vector`` with their exact scores, best first.

    Asks the index for ``n + len(seen)`` candidates (more if the seen items were not among
    them and the list came up short), rescores them exactly and drops the seen items (and
    columns ``allowed`` marks False), so a user with a long history still gets ``n`` items
    whenever the catalog has them (a graph that cannot reach them all at its widest leaves the
    rest to an exact scan). ``share`` is the fraction of columns ``allowed`` passes: the first
    search asks for correspondingly more, so it rarely needs a second.

    Returns
    -------
    (columns, scores)
    """
    total = index.attach(len(matrix)).total
    # Seen items score high, so most of them are among the candidates; of the rest, about
    # ``share`` pass the filter.
    want = min(total, len(seen) + (n if share >= 1 else int(1.5 * n / max(share, 0.01)) + 1))
    # A set beats np.isin's sort on the few dozen candidates of a request (~50 µs of ~400).
    seen_set = set(seen.tolist()) if len(seen) else ()
    head = _head_candidates(index.head, index.head_rows(matrix), vector, seen, n, allowed)
    while True:
        found = head + index.candidates(vector, want, breadth)
        cols = np.array(
            [c for c in found if c not in seen_set and (allowed is None or allowed[c])],
            dtype=np.int64,
        )
        if len(cols) >= n or (want >= total and breadth >= max(index.breadths)):
            break
        # Too many proposals were seen or filtered: look wider, and further down the ranking.
        want, breadth = min(total, want * 4), breadth * 4
    if len(cols) < n:
        return exact_search(matrix, vector, seen, n, allowed)
    scores = matrix[cols] @ vector
    best = top_n(scores, n)
    return cols[best], scores[best]


def exact_search(matrix, vector, seen, n, allowed=None) -> tuple[np.ndarray, np.ndarray]:
    """The exact top ``n`` unseen (and allowed) columns: what no index search left out."""
    scores = matrix @ vector
    scores[seen] = -np.inf
    if allowed is not None:
        scores[~allowed] = -np.inf
    best = top_n(scores, n)
    best = best[np.isfinite(scores[best])]
    return best, scores[best]


def _head_candidates(head, rows, vector, seen, n, allowed) -> list[int]:
    """The head's best ``n`` unseen (and allowed) columns (``head`` ascending, ``rows`` their
    scoring rows), scored exactly in one product."""
    if head is None or not len(head):
        return []
    scores = rows @ vector
    scores[positions(head, seen)] = -np.inf  # the user's few seen items, among the head's
    if allowed is not None:
        scores[~allowed[head]] = -np.inf
    best = top_n(scores, n)
    return head[best[np.isfinite(scores[best])]].tolist()
