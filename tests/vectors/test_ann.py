"""The approximate (HNSW) index: the MIPS reduction, recall, filtering, publishing, verifying."""

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
    INDEX_FILE,
    PROBE_EFS,
    ANNParams,
    augment,
    build_index,
    probe_ef,
    search,
)
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


def _fold(model):
    return FoldIn(model.snapshot.item_ids, model.item_factors, model.params, RealtimeParams())


def test_recall_at_10_against_exact_search():
    model = synthetic_model(20_000, 2_000, factors=32, seed=1)
    fold = _fold(model)
    index = build_index(fold.scoring_matrix, ANY)
    vectors = fold.base_vectors(model.user_factors, model.snapshot)
    recall = []
    for z in vectors[:300]:
        exact = set(top_n(fold.scoring_matrix @ z, 10).tolist())
        cols, scores = search(index, fold.scoring_matrix, z, np.empty(0, np.int32), 10, ef=256)
        recall.append(len(exact & set(cols.tolist())) / 10)
        assert np.allclose(scores, fold.scoring_matrix[cols] @ z)  # exact scores, best first
        assert np.all(np.diff(scores) <= 0)
    assert np.mean(recall) >= 0.95


def test_seen_items_never_starve_the_top_n():
    """A user who has seen the 500 items the graph would propose first still gets n items."""
    model = synthetic_model(5_000, 50, factors=16, seed=2)
    fold = _fold(model)
    index = build_index(fold.scoring_matrix, ANY)
    z = fold.base_vectors(model.user_factors, model.snapshot)[0]
    scores = fold.scoring_matrix @ z
    seen = top_n(scores, 500).astype(np.int32)
    cols, _ = search(index, fold.scoring_matrix, z, seen, 10, ef=16)
    assert len(cols) == 10 and not set(cols.tolist()) & set(seen.tolist())
    scores[seen] = -np.inf
    assert len(set(cols.tolist()) & set(top_n(scores, 10).tolist())) >= 8
    everything = np.arange(4_995, dtype=np.int32)
    cols, _ = search(index, fold.scoring_matrix, z, everything, 10, ef=16)
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


def test_published_index_serves_what_exact_search_serves(tmp_path):
    exact_store = _publish(tmp_path, 10**6)
    ann_store = _publish(tmp_path, 10, ANNParams(10, probe_users=0))  # the graph, unprobed
    assert exact_store.read_version()[0]["ann"] is None
    manifest = ann_store.read_version()[0]
    assert manifest["ann"]["type"] == "hnsw" and manifest["ann"]["file"] == INDEX_FILE
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
    path = store.index_path(store.read_version()[0])
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
    index = build_index(fold.scoring_matrix, ANY)
    vectors = fold.base_vectors(model.user_factors, model.snapshot)[:150]
    seen = [model.snapshot.seen[r].indices for r in range(150)]
    probe = probe_ef(index, fold.scoring_matrix, vectors, seen, target=0.97, weigh_cost=False)
    tried = {int(k): v[0] for k, v in probe["tried"].items()}
    assert not probe["exact"] and probe["recall"] >= 0.97 and probe["ef"] == max(tried)
    assert all(v < 0.97 for ef, v in tried.items() if ef < probe["ef"])
    # What the probe says is what serving at that breadth finds.
    recall = []
    for z, cols in zip(vectors, seen):
        scores = fold.scoring_matrix @ z
        scores[cols] = -np.inf
        got, _ = search(index, fold.scoring_matrix, z, cols, 10, probe["ef"])
        recall.append(len(set(got.tolist()) & set(top_n(scores, 10).tolist())) / 10)
    assert np.mean(recall) == pytest.approx(probe["recall"], abs=1e-3)
    # A target no breadth reaches: an exact scan if it is cheap enough, else the widest.
    args = (index, fold.scoring_matrix, vectors[:20], seen[:20])
    cheap = probe_ef(*args, target=1.01, exact_budget_ms=1e6, weigh_cost=False)
    assert cheap["exact"] and cheap["recall"] == 1.0
    dear = probe_ef(*args, target=1.01, exact_budget_ms=0.0, weigh_cost=False)
    assert not dear["exact"] and dear["ef"] == PROBE_EFS[-1] and dear["recall"] < 1.01


def test_a_version_the_graph_serves_worse_than_a_scan_is_published_without_it(tmp_path):
    store = _publish(tmp_path, 10, ANNParams(10, target_recall=1.0))  # graph never perfect
    manifest = store.read_version()[0]
    probe = manifest["ann_probe"]
    assert probe["exact"] and manifest["ann"] is None  # a 120-item scan costs microseconds
    watcher = ModelWatcher(store)
    watcher.refresh()
    assert watcher.model.index is None


def test_servers_search_each_version_at_its_probed_breadth_unless_told(tmp_path):
    model = synthetic_model(20_000, 500, factors=32, seed=4)
    fold = _fold(model)
    index = build_index(fold.scoring_matrix, ANY)
    vectors = fold.base_vectors(model.user_factors, model.snapshot)[:50]
    seen = [model.snapshot.seen[r].indices for r in range(50)]
    probe = probe_ef(index, fold.scoring_matrix, vectors, seen, 0.9, weigh_cost=False)
    store = ModelStore(tmp_path)
    store.publish(model, fold, index=index, ann_probe=probe)
    manifest = store.read_version()[0]
    assert manifest["ann"]["ef"] == probe["ef"] and manifest["ann_probe"] == probe
    own, told = ModelWatcher(store), ModelWatcher(store, ef=300)
    own.refresh()
    told.refresh()
    assert own.model.ef == probe["ef"] and told.model.ef == 300
