"""The hand-written inverted-file (IVF) index the service used before FAISS, kept as a reference
for tests/benchmarks/ann_choice.py (served versions now carry an HNSW graph; see model/ann.py).

The original description:

At publish time the builder clusters the items' scoring rows with k-means (on a sample) and
**reorders the catalog by cluster**, so each cluster is one contiguous slice of
the published, memory-mapped scoring matrix. A query scores the cluster centroids, then scores
exactly only the items of the best ``probes`` clusters: no copy per query, nothing per worker
beyond the small centroid table, and exact scores for every candidate it returns.

Below ``min_items`` items no index is built and every query scans all items exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IVFParams:
    """When and how to build the index.

    Parameters
    ----------
    min_items
        Catalogs with fewer items are searched exactly.
    clusters_per_sqrt
        Number of clusters = this x sqrt(n_items).
    sample
        K-means runs on at most this many items (all items are then assigned).
    """

    min_items: int = 50_000
    clusters_per_sqrt: float = 1.0
    sample: int = 50_000

    def __post_init__(self) -> None:
        if self.min_items < 1 or self.clusters_per_sqrt <= 0 or self.sample < 100:
            raise ValueError("invalid IVF parameters")


@dataclass(frozen=True)
class IVFIndex:
    """Cluster layout of a catalog already ordered by cluster."""

    offsets: np.ndarray  # int64 (k+1,), cluster c holds rows offsets[c]:offsets[c+1]
    centroids: np.ndarray  # float32 (k, d), mean scoring row of each cluster


def build_ivf(rows: np.ndarray, params: IVFParams, seed: int = 0) -> tuple[np.ndarray, IVFIndex]:
    """Cluster ``rows`` (n, d).

    Returns
    -------
    (order, index)
        ``order`` lists the rows cluster by cluster: apply it to the catalog, then ``index``
        describes the reordered catalog.
    """
    from threadpoolctl import threadpool_limits

    n = len(rows)
    k = max(2, int(params.clusters_per_sqrt * np.sqrt(n)))
    rng = np.random.default_rng(seed)
    data = np.asarray(rows, dtype=np.float32)
    sample = data[rng.choice(n, size=min(n, params.sample), replace=False)]
    # One BLAS thread: the servers beside the builder need the other cores while it clusters.
    with threadpool_limits(1, "blas"):
        centroids = _kmeans(sample, k, rng)
        labels = _assign(data, centroids)
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=k)
    offsets = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    # Recompute centroids over all members so empty or drifted clusters stay meaningful.
    sums = np.zeros_like(centroids)
    np.add.at(sums, labels, data)
    nonempty = counts > 0
    centroids[nonempty] = sums[nonempty] / counts[nonempty, None]
    logger.info("built IVF index: %d items in %d clusters", n, k)
    return order, IVFIndex(offsets, centroids)


def _kmeans(sample: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 12):
    """Lloyd's k-means with BLAS distance products.

    scipy's ``kmeans2`` computes distances without BLAS and took 155 s for 316 clusters of
    50,000 x 128 rows here; this takes well under a second.
    """
    k = min(k, len(sample))
    centroids = sample[rng.choice(len(sample), size=k, replace=False)].copy()
    for _ in range(iterations):
        labels = _assign(sample, centroids)
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, sample)
        nonempty = counts > 0
        centroids[nonempty] = sums[nonempty] / counts[nonempty, None]
        # Reseed empty clusters on random rows so every cluster is used.
        empty = np.flatnonzero(~nonempty)
        if len(empty):
            centroids[empty] = sample[rng.choice(len(sample), size=len(empty), replace=False)]
    return centroids


def _assign(data: np.ndarray, centroids: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Nearest centroid (Euclidean) of every row, in chunks to bound memory."""
    c_norms = (centroids**2).sum(axis=1)
    labels = np.empty(len(data), dtype=np.int64)
    for start in range(0, len(data), chunk):
        block = data[start : start + chunk]
        distances = c_norms[None, :] - 2.0 * block @ centroids.T
        labels[start : start + chunk] = distances.argmin(axis=1)
    return labels


def ivf_candidates(
    matrix: np.ndarray, index: IVFIndex, vector: np.ndarray, probes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores of the items in the ``probes`` best clusters for ``vector``.

    Returns
    -------
    (rows, scores)
        Row indices into ``matrix`` and their scores.
    """
    cluster_scores = index.centroids @ vector
    probes = min(probes, len(cluster_scores))
    best = np.argpartition(-cluster_scores, probes - 1)[:probes]
    starts, ends = index.offsets[best].tolist(), index.offsets[best + 1].tolist()
    scores = np.concatenate([matrix[a:b] @ vector for a, b in zip(starts, ends)])
    rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)])
    return rows, scores
