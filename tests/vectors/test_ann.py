"""The approximate index of each kind: the MIPS reduction, recall, filtering, the probe that
chooses a kind and breadth per version, publishing, verifying, loading."""

import json

import numpy as np
import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.builder.refits.training_worker import TrainingWorker
from recommendation_service.data.window import SlidingWindow
from recommendation_service.errors import ModelLoadError
from recommendation_service.server.model_watcher import ModelWatcher
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.fold_in import FoldIn, RealtimeParams
from recommendation_service.vectors.ann import (
    HNSW_BREADTHS,
    INDEX_FILE,
    KINDS,
    ANNParams,
    augment,
    build_index,
    search,
)
from recommendation_service.vectors.ann_probe import probe
from recommendation_service.vectors.top_n import top_n

from ..benchmarks.synthetic_model import synthetic_model
from ..conftest import SMALL_ALS, planted_events

ANY = ANNParams(min_items=1)


def test_augmented_rows_turn_inner_product_order_into_distance_order():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(500, 8)).astype(np.float32) * rng.lognormal(size=(500, 1))
    rows = rows.astype(np.float32)
    query = rng.normal(size=8).astype(np.float32)
    augmented = augment(rows)
    distances = ((augmented - np.append(query, 0)) ** 2).sum(axis=1)
    assert np.array_equal(np.argsort(distances)[:20], np.argsort(-(rows @ query))[:20])


def test_a_split_index_scans_its_largest_norm_rows_exactly_and_graphs_the_rest(tmp_path):
    """Heavy-tailed rows: 30 of 3,000 with norms 50x the others'. The split kind's head holds
    the largest-norm rows (the same after a write and a load), and a query finds them."""
    from recommendation_service.vectors.ann import HEAD_MIN, load_index, write_index

    rng = np.random.default_rng(11)
    rows = rng.normal(size=(3_000, 16)).astype(np.float32) * 0.07
    giants = rng.choice(3_000, size=30, replace=False)
    rows[giants] *= 50
    index = build_index(rows, ANY, "split_l2aug")
    norms = np.linalg.norm(rows, axis=1)
    assert sorted(index.head.tolist()) == sorted(np.argsort(-norms)[:HEAD_MIN].tolist())
    assert index.fits(3_000, 16) and index.describe()["head"] == HEAD_MIN
    write_index(index, tmp_path / "split.faiss")
    loaded = load_index(tmp_path / "split.faiss", "split_l2aug")
    assert loaded.head is None and loaded.fits(3_000, 16)  # the head is attached on use
    assert np.array_equal(loaded.head, index.head)
    for query in rng.normal(size=(20, 16)).astype(np.float32):
        exact = top_n(rows @ query, 10)
        cols, _ = search(loaded, rows, query, np.empty(0, np.int64), 10, 64)
        assert len(set(cols.tolist()) & set(exact.tolist())) >= 9
    # The head's rows are copied once per matrix: another matrix's rows are scored as they are.
    assert loaded.head_rows(rows) is loaded.head_rows(rows)
    changed = rows.copy()
    changed[loaded.head] *= -1
    query = rows[giants[0]]
    cols, scores = search(loaded, changed, query, np.empty(0, np.int64), 10, 64)
    assert giants[0] not in cols.tolist() and np.allclose(scores, changed[cols] @ query)


def _fold(model):
    return FoldIn(model.snapshot.item_ids, model.item_factors, model.params, RealtimeParams())


@pytest.mark.parametrize(("kind", "breadth"), [("hnsw_ip", 256), ("hnsw_l2aug", 256),
                                               ("ivf_ip", 24), ("split_l2aug", 256)])  # fmt: skip
def test_recall_at_10_against_exact_search(kind, breadth):
    model = synthetic_model(20_000, 2_000, factors=32, seed=1)
    fold = _fold(model)
    index = build_index(fold.scoring_matrix, ANY, kind)
    assert index.kind == kind and index.fits(*fold.scoring_matrix.shape)
    vectors = fold.base_vectors(model.user_factors, model.snapshot)
    recall = []
    for z in vectors[:300]:
        exact = set(top_n(fold.scoring_matrix @ z, 10).tolist())
        cols, scores = search(index, fold.scoring_matrix, z, np.empty(0, np.int32), 10, breadth)
        recall.append(len(exact & set(cols.tolist())) / 10)
        assert np.allclose(scores, fold.scoring_matrix[cols] @ z)  # exact scores, best first
        assert np.all(np.diff(scores) <= 0)
    assert np.mean(recall) >= 0.95


@pytest.mark.parametrize("kind", KINDS)
def test_seen_items_never_starve_the_top_n(kind):
    """A user who has seen the 500 items the index would propose first still gets n items."""
    model = synthetic_model(5_000, 50, factors=16, seed=2)
    fold = _fold(model)
    index = build_index(fold.scoring_matrix, ANY, kind)
    z = fold.base_vectors(model.user_factors, model.snapshot)[0]
    scores = fold.scoring_matrix @ z
    seen = top_n(scores, 500).astype(np.int32)
    cols, _ = search(index, fold.scoring_matrix, z, seen, 10, 16)
    assert len(cols) == 10 and not set(cols.tolist()) & set(seen.tolist())
    scores[seen] = -np.inf
    # Past 500 seen items the graphs still find most of the rest's top 10 (the augmented one
    # on these synthetic factors the most); recall proper is the probe's business.
    found = len(set(cols.tolist()) & set(top_n(scores, 10).tolist()))
    assert found >= (8 if kind == "hnsw_l2aug" else 5)
    everything = np.arange(4_995, dtype=np.int32)
    cols, _ = search(index, fold.scoring_matrix, z, everything, 10, 1)
    assert sorted(cols.tolist()) == list(range(4_995, 5_000))  # all that is left


def _publish(tmp_path, min_items, ann=None):
    window = SlidingWindow(100_000)
    for e in planted_events(4000):
        window.add(e)
    store = ModelStore(tmp_path / str(min_items))
    worker = TrainingWorker(
        ALSTrainer(SMALL_ALS), store, lambda: (window.snapshot(), {}),
        ann=ann or ANNParams(min_items),
    )  # fmt: skip
    assert worker._train_once()
    return store


@pytest.mark.parametrize("kind", KINDS)
def test_published_index_serves_what_exact_search_serves(tmp_path, kind):
    exact_store = _publish(tmp_path, 10**6)
    unprobed = ANNParams(10, probe_users=0, kinds=(kind,))  # that kind, unprobed
    ann_store = _publish(tmp_path, 10, unprobed)
    assert exact_store.read_version()[0]["ann"] is None
    manifest = ann_store.read_version()[0]
    assert manifest["ann"]["kind"] == kind and manifest["ann"]["file"] == INDEX_FILE
    # Servers of earlier releases know only "hnsw", the augmented graph.
    assert manifest["ann"]["type"] == ("hnsw" if kind == "hnsw_l2aug" else "faiss")
    exact, approximate = ModelWatcher(exact_store), ModelWatcher(ann_store, ef=200)
    exact.refresh()
    approximate.refresh()
    assert approximate.model.index is not None and exact.model.index is None
    for user in exact.model.user_ids[:50]:
        a = exact.model.recommend(user, 10)
        b = approximate.model.recommend(user, 10)
        assert a.items == b.items and np.allclose(a.scores, b.scores, rtol=1e-4)


def test_a_corrupt_index_refuses_the_version(tmp_path):
    store = _publish(tmp_path, 10, ANNParams(10, probe_users=0))
    path, _ = store.index_file(store.read_version()[0])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="checksum"):
        store.read_version()
    watcher = ModelWatcher(store)
    watcher.refresh()
    assert watcher.model is None and "checksum" in watcher.last_error


def test_the_probe_picks_the_smallest_breadth_that_reaches_the_target():
    model = synthetic_model(20_000, 2_000, factors=32, seed=3)
    fold = _fold(model)
    vectors = fold.base_vectors(model.user_factors, model.snapshot)[:150]
    seen = [model.snapshot.seen[r].indices for r in range(150)]
    params = ANNParams(1, target_recall=0.97, kinds=("hnsw_l2aug",))
    result = probe(fold.scoring_matrix, vectors, seen, params, weigh_cost=False)
    tried = {int(k): v[0] for k, v in result.kinds["hnsw_l2aug"]["tried"].items()}
    assert not result.exact and result.recall >= 0.97 and result.breadth == max(tried)
    assert all(v < 0.97 for b, v in tried.items() if b < result.breadth)
    # What the probe says is what serving at that breadth finds.
    recall = []
    for z, cols in zip(vectors, seen):
        scores = fold.scoring_matrix @ z
        scores[cols] = -np.inf
        got, _ = search(result.index, fold.scoring_matrix, z, cols, 10, result.breadth)
        recall.append(len(set(got.tolist()) & set(top_n(scores, 10).tolist())) / 10)
    assert np.mean(recall) == pytest.approx(result.recall, abs=1e-3)
    # A target no breadth reaches: an exact scan if it is cheap enough, else the widest.
    args = (fold.scoring_matrix, vectors[:20], seen[:20])
    cheap = probe(*args, params, target=1.01, exact_budget_ms=1e6, weigh_cost=False)
    assert cheap.exact and cheap.recall == 1.0
    dear = probe(*args, params, target=1.01, exact_budget_ms=0.0, weigh_cost=False)
    assert not dear.exact and dear.breadth == HNSW_BREADTHS[-1] and dear.recall < 1.01


def _probed(items: int, users: int, seed: int):
    """A synthetic model, its fold-in, and the probe's choice (target 0.9, recall only) on
    its first ``users`` users."""
    model = synthetic_model(20_000, items, factors=32, seed=seed)
    fold = _fold(model)
    vectors = fold.base_vectors(model.user_factors, model.snapshot)[:users]
    seen = [model.snapshot.seen[r].indices for r in range(users)]
    params = ANNParams(1, target_recall=0.9)
    return model, fold, probe(fold.scoring_matrix, vectors, seen, params, weigh_cost=False)


def test_the_probe_publishes_the_cheapest_kind_that_reaches_the_target():
    """Every kind is built and measured; of those reaching the target, the fastest wins, and
    the manifest's report says what each kind found."""
    _, _, result = _probed(items=3_000, users=100, seed=5)
    assert set(result.kinds) == set(KINDS)
    reaching = {k: v for k, v in result.kinds.items() if v["recall"] >= 0.9}
    assert reaching, result.kinds
    assert result.index.kind == min(reaching, key=lambda k: reaching[k]["ms"])
    summary = result.summary()
    assert summary["kind"] == result.index.kind and summary["ef"] == result.breadth
    assert all({"build_s", "breadth", "recall", "ms", "tried"} <= set(v)
               for v in summary["kinds"].values())  # fmt: skip


def test_a_version_the_graph_serves_worse_than_a_scan_is_published_without_it(tmp_path):
    store = _publish(tmp_path, 10, ANNParams(10, target_recall=1.0))  # graph never perfect
    manifest = store.read_version()[0]
    probe = manifest["ann_probe"]
    assert probe["exact"] and manifest["ann"] is None  # a 120-item scan costs microseconds
    watcher = ModelWatcher(store)
    watcher.refresh()
    assert watcher.model.index is None


def test_servers_search_each_version_at_its_probed_breadth_unless_told(tmp_path):
    model, fold, result = _probed(items=500, users=50, seed=4)
    store = ModelStore(tmp_path)
    store.publish(model, fold, index=result.index, ann_probe=result.summary())
    manifest = store.read_version()[0]
    assert manifest["ann"]["ef"] == result.breadth
    assert manifest["ann"]["kind"] == manifest["ann_probe"]["kind"] == result.index.kind
    own, told = ModelWatcher(store), ModelWatcher(store, ef=300)
    own.refresh()
    told.refresh()
    assert own.model.ef == result.breadth and told.model.ef == 300
    assert own.model.index.kind == result.index.kind


def test_a_version_of_an_earlier_release_loads_its_graph_as_the_augmented_kind(tmp_path):
    """Before index kinds, the manifest said only "type": "hnsw": the augmented graph."""
    store = _publish(tmp_path, 10, ANNParams(10, probe_users=0, kinds=("hnsw_l2aug",)))
    manifest = store.read_version()[0]
    path = store.versions_dir / manifest["name"] / "manifest.json"
    old = json.loads(path.read_text())
    del old["ann"]["kind"]
    path.write_text(json.dumps(old))
    watcher, exact = ModelWatcher(store, ef=400), ModelWatcher(_publish(tmp_path, 10**6))
    watcher.refresh()
    exact.refresh()
    assert watcher.model.index.kind == "hnsw_l2aug"
    for user in exact.model.user_ids[:20]:
        assert watcher.model.recommend(user, 10).items == exact.model.recommend(user, 10).items


def test_refits_between_comparisons_probe_the_last_kind_alone(caplog):
    """Every kind at the first refit; then the chosen kind alone while it holds; every kind
    again at the recheck."""
    from recommendation_service.builder.refits.index_choice import IndexChoice

    model = synthetic_model(20_000, 3_000, factors=32, seed=6)
    fold = _fold(model)
    choice = IndexChoice(ANNParams(1, target_recall=0.8, probe_users=60, recheck_every=3))
    reports = [choice.choose(fold, model.user_factors, model.snapshot)[1] for _ in range(4)]
    assert [set(r["kinds"]) for r in reports] == [set(KINDS), {reports[0]["kind"]},
                                                  {reports[0]["kind"]}, set(KINDS)]  # fmt: skip
