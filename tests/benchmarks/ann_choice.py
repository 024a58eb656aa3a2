"""Which top-N index to serve with: exact search, the old IVF, FAISS, USearch, hnswlib.

    .venv/bin/python -m tests.benchmarks.ann_choice [--stream pareto] [--items 100000]
        [--events 300000] [--users 30000] [--queries 1000]

Trains real factors with the builder's code (see ``real_factors.py``) and compares, on the
published scoring rows and user vectors (maximum inner product over [factors, similarity]):
build time (one thread, as in the builder), index size, heap memory a loaded index costs each
process (anonymous pages; file-backed pages are shared by all workers), query time of one
query at a time (as a request makes it: mean and p99), and recall@10 against exact search
with the user's seen items excluded. Every index is asked for ``10 + seen`` neighbours so
filtering does not starve the list. ``served: probed ef`` is what the builder publishes: the
breadth its recall probe chose on 200 other users.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from recommendation_service.training.fold_in import FoldIn, RealtimeParams
from recommendation_service.vectors.ann import augment
from recommendation_service.vectors.top_n import top_n

from .ivf_reference import IVFParams, build_ivf, ivf_candidates
from .real_factors import events_of, train


def anonymous_kb() -> int:
    text = Path("/proc/self/smaps_rollup").read_text()
    return int(re.search(r"^Anonymous:\s+(\d+) kB", text, re.M).group(1))


def exact_top(matrix, vector, seen, k=10):
    scores = matrix @ vector
    scores[seen] = -np.inf
    return top_n(scores, k)


def ivf_factory(probes):
    def build(matrix, path):
        order, index = build_ivf(matrix, IVFParams(min_items=1))
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        reordered = np.ascontiguousarray(matrix[order])
        np.save(path.with_suffix(".npy"), reordered)
        return {"index": index, "order": order, "inverse": inverse}

    def load(path, built):
        return {**built, "matrix": np.load(path.with_suffix(".npy"), mmap_mode="r")}

    def query(loaded, vector, seen, k):
        rows, scores = ivf_candidates(loaded["matrix"], loaded["index"], vector, probes)
        scores[np.isin(rows, loaded["inverse"][seen])] = -np.inf
        return loaded["order"][rows[top_n(scores, k)]]

    return build, load, query


def served_factory(ef, kind="hnsw_l2aug"):
    """An index kind of the service (vectors/ann.py: FAISS, exact rescoring) at breadth ``ef``."""
    from recommendation_service.vectors import ann

    def build(matrix, path):
        ann.write_index(ann.build_index(matrix, ann.ANNParams(min_items=1), kind), path)
        return matrix

    def load(path, built):
        return ann.load_index(path, kind), built

    def query(loaded, vector, seen, k):
        return ann.search(loaded[0], loaded[1], vector, seen, k, ef)[0]

    return build, load, query


def faiss_factory(m, ef, augmented=False):
    import faiss

    def build(matrix, path):
        faiss.omp_set_num_threads(1)
        metric = faiss.METRIC_L2 if augmented else faiss.METRIC_INNER_PRODUCT
        data = augment(matrix) if augmented else matrix
        index = faiss.IndexHNSWFlat(data.shape[1], m, metric)
        index.hnsw.efConstruction = 100
        index.add(data)
        faiss.write_index(index, str(path))
        return None

    def load(path, built):
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
        index.hnsw.efSearch = ef
        return index

    def query(index, vector, seen, k):
        want = k + len(seen)
        index.hnsw.efSearch = max(ef, want)
        _, ids = index.search(_query(vector, augmented)[None, :], want)
        ids = ids[0][ids[0] >= 0]
        return ids[~np.isin(ids, seen)][:k]

    return build, load, query


def _query(vector, augmented):
    return np.append(vector, np.float32(0)) if augmented else vector


def usearch_factory(connectivity, ef, augmented=False):
    from usearch.index import Index

    def build(matrix, path):
        data = augment(matrix) if augmented else matrix
        index = Index(
            ndim=data.shape[1],
            metric="l2sq" if augmented else "ip",
            dtype="f32",
            connectivity=connectivity,
            expansion_add=100,
            expansion_search=ef,
        )
        index.add(np.arange(len(data)), data, threads=1)
        index.save(str(path))
        return None

    def load(path, built):
        index = Index.restore(str(path), view=True)
        index.expansion_search = ef
        return index

    def query(index, vector, seen, k):
        want = k + len(seen)
        ids = index.search(_query(vector, augmented), want, threads=1).keys
        return ids[~np.isin(ids, seen)][:k]

    return build, load, query


def hnswlib_factory(m, ef, augmented=False):
    import hnswlib

    def build(matrix, path):
        data = augment(matrix) if augmented else matrix
        index = hnswlib.Index(space="l2" if augmented else "ip", dim=data.shape[1])
        index.init_index(max_elements=len(data), M=m, ef_construction=100)
        index.set_num_threads(1)
        index.add_items(data, np.arange(len(data)))
        index.save_index(str(path))
        return data.shape

    def load(path, built):
        index = hnswlib.Index(space="l2" if augmented else "ip", dim=built[1])
        index.load_index(str(path), max_elements=built[0])
        index.set_num_threads(1)
        return index

    def query(index, vector, seen, k):
        want = k + len(seen)
        index.set_ef(max(ef, want))
        ids = index.knn_query(_query(vector, augmented), k=want)[0][0].astype(np.int64)
        return ids[~np.isin(ids, seen)][:k]

    return build, load, query


# "ip": the library's inner-product metric; "l2+": Euclidean on augmented rows (see ann.py).
#: Vectors and seen columns of users sampled apart from the queries, for the builder's probe.
PROBE_SAMPLE: dict = {}


def probed_factory():
    """What the builder publishes: the index kind and breadth that reached recall 0.95 at the
    lowest cost on 200 other users (vectors/ann_probe.py), which the servers then use."""
    from recommendation_service.vectors import ann
    from recommendation_service.vectors.ann_probe import probe

    chosen = {}

    def build(matrix, path):
        params = ann.ANNParams(min_items=1)
        result = probe(matrix, PROBE_SAMPLE["vectors"], PROBE_SAMPLE["seen"], params)
        chosen.update(result.summary())
        print(f"probe chose {chosen['kind']} at breadth {chosen['ef']}: {chosen['kinds']}",
              flush=True)  # fmt: skip
        if result.index is not None:
            ann.write_index(result.index, path)
        return matrix

    def load(path, built):
        if chosen["kind"] == "exact":
            return None, built
        return ann.load_index(path, chosen["kind"]), built

    def query(loaded, vector, seen, k):
        if loaded[0] is None:
            return exact_top(loaded[1], vector, seen, k)
        return ann.search(loaded[0], loaded[1], vector, seen, k, chosen["ef"])[0]

    return build, load, query


CANDIDATES = {
    "hand-written ivf, 32 probes": lambda: ivf_factory(32),
    "hand-written ivf, 128 probes": lambda: ivf_factory(128),
    "faiss hnsw ip ef128": lambda: faiss_factory(16, 128),
    "faiss hnsw l2+ ef128": lambda: faiss_factory(16, 128, True),
    "usearch hnsw ip ef128": lambda: usearch_factory(16, 128),
    "usearch hnsw l2+ ef128": lambda: usearch_factory(16, 128, True),
    "hnswlib ip ef128": lambda: hnswlib_factory(16, 128),
    "hnswlib l2+ ef128": lambda: hnswlib_factory(16, 128, True),
    "served: faiss l2+ ef64": lambda: served_factory(64),
    "served: faiss l2+ ef128": lambda: served_factory(128),
    "served: faiss l2+ ef256": lambda: served_factory(256),
    "served: probed ef (recall 0.95)": probed_factory,
}


def real_model(args):
    events = events_of(args.stream, args.events, args.users, args.items, args.log)
    t = time.perf_counter()
    model = train(events, window=args.window)
    fold = FoldIn(model.snapshot.item_ids, model.item_factors, model.params, RealtimeParams())
    vectors = fold.base_vectors(model.user_factors, model.snapshot)
    print(
        f"trained {model.snapshot.n_users} users x {model.snapshot.n_items} items "
        f"in {time.perf_counter() - t:.1f} s"
    )
    return fold.scoring_matrix, vectors, model.snapshot.seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", choices=("pareto", "taste", "retail"), default="pareto")
    parser.add_argument("--log", type=Path)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--window", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--only", nargs="*", help="candidate names to run (default all)")
    parser.add_argument("--json-out", type=Path, default=Path("ann_choice.json"))
    args = parser.parse_args()

    matrix, vectors, seen_matrix = real_model(args)
    rng = np.random.default_rng(3)
    users = rng.choice(len(vectors), size=min(args.queries, len(vectors)), replace=False)
    seen = [seen_matrix.indices[seen_matrix.indptr[u] : seen_matrix.indptr[u + 1]] for u in users]
    others = np.setdiff1d(np.arange(len(vectors)), users)
    probe_users = rng.choice(others, size=min(200, len(others)), replace=False)
    PROBE_SAMPLE["vectors"] = vectors[probe_users]
    PROBE_SAMPLE["seen"] = [seen_matrix[int(u)].indices for u in probe_users]
    rows = []
    with threadpool_limits(1, "blas"), tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        truth = [exact_top(matrix, vectors[u], s) for u, s in zip(users, seen)]
        exact_ms = (time.perf_counter() - t) / len(users) * 1000
        rows.append(
            {
                "index": "exact (numpy)",
                "build_s": 0,
                "size_mb": 0,
                "heap_mb": 0,
                "query_ms": round(exact_ms, 3),
                "p99_ms": None,
                "recall_at_10": 1.0,
            }
        )
        for name, factory in CANDIDATES.items():
            if args.only and name not in args.only:
                continue
            build, load, query = factory()
            path = Path(tmp) / re.sub(r"\W+", "_", name)
            t = time.perf_counter()
            built = build(matrix, path)
            build_s = time.perf_counter() - t
            size = sum(p.stat().st_size for p in Path(tmp).glob(path.name + "*"))
            before = anonymous_kb()
            loaded = load(path, built)
            for u, s in zip(users[:50], seen[:50]):
                query(loaded, vectors[u], s, 10)  # warm: page in the file
            heap_mb = (anonymous_kb() - before) / 1024
            got, times = [], []
            for u, s in zip(users, seen):
                t = time.perf_counter()
                got.append(query(loaded, vectors[u], s, 10))
                times.append(time.perf_counter() - t)
            query_ms = float(np.mean(times)) * 1000
            p99_ms = float(np.percentile(times, 99)) * 1000
            recall = np.mean(
                [
                    len(set(g.tolist()) & set(e.tolist())) / max(1, len(e))
                    for g, e in zip(got, truth)
                ]
            )
            rows.append(
                {
                    "index": name,
                    "build_s": round(build_s, 2),
                    "size_mb": round(size / 2**20, 1),
                    "heap_mb": round(heap_mb, 1),
                    "query_ms": round(query_ms, 3),
                    "p99_ms": round(p99_ms, 3),
                    "recall_at_10": round(float(recall), 4),
                }
            )
            print(rows[-1], flush=True)
            del loaded
    header = (f"{'index':<32}{'build s':>9}{'file MB':>9}{'heap MB':>9}{'query ms':>10}"
              f"{'p99 ms':>9}{'recall':>8}")  # fmt: skip
    print(f"{len(matrix)} items, {matrix.shape[1]} dims, {len(users)} queries")
    print(header)
    for r in rows:
        print(
            f"{r['index']:<32}{r['build_s']:>9}{r['size_mb']:>9}{r['heap_mb']:>9}"
            f"{r['query_ms']:>10}{r['p99_ms']!s:>9}{r['recall_at_10']:>8}"
        )
    args.json_out.write_text(json.dumps({"items": len(matrix), "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
