"""The approximate (IVF) index: recall against exact search, and publishing a reordered model."""

import numpy as np

from recommendation_service.builder.training_worker import TrainingWorker
from recommendation_service.model.ann import IVFParams, build_ivf, ivf_candidates, reorder_items
from recommendation_service.model.realtime import FoldIn, RealtimeParams
from recommendation_service.model.served_model import top_n
from recommendation_service.model.store import ModelStore
from recommendation_service.model.trainer import ALSTrainer
from recommendation_service.server.model_watcher import ModelWatcher

from ..benchmarks.synthetic_model import synthetic_model
from ..conftest import SMALL_ALS, planted_events


def test_ivf_recall_at_10_against_exact():
    model = synthetic_model(20_000, 2_000, factors=32, seed=1)
    fold = FoldIn(model.snapshot.item_ids, model.item_factors, model.params, RealtimeParams())
    order, index = build_ivf(fold.scoring_matrix, IVFParams(min_items=1))
    model = reorder_items(model, order)
    fold = FoldIn(model.snapshot.item_ids, model.item_factors, model.params, RealtimeParams())
    vectors = fold.base_vectors(model.user_factors, model.snapshot)
    assert index.offsets[-1] == 20_000 and len(index.centroids) == int(np.sqrt(20_000))
    recall = []
    for z in vectors[:300]:
        exact = set(top_n(fold.scoring_matrix @ z, 10).tolist())
        rows, scores = ivf_candidates(fold.scoring_matrix, index, z, probes=16)
        approx = set(rows[top_n(scores, 10)].tolist())
        recall.append(len(exact & approx) / 10)
    assert np.mean(recall) >= 0.95


def test_all_probes_is_exact():
    model = synthetic_model(3_000, 100, factors=16, seed=2)
    fold = FoldIn(model.snapshot.item_ids, model.item_factors, model.params, RealtimeParams())
    _, index = build_ivf(fold.scoring_matrix, IVFParams(min_items=1))
    z = fold.base_vectors(model.user_factors, model.snapshot)[0]
    rows, scores = ivf_candidates(fold.scoring_matrix, index, z, probes=len(index.centroids))
    assert sorted(rows.tolist()) == list(range(3_000))
    assert np.allclose(scores[np.argsort(rows)], fold.scoring_matrix @ z, rtol=1e-5)


def test_published_index_serves_the_same_recommendations(tmp_path):
    """A refit that crosses the size threshold publishes a cluster-ordered model + index."""
    from recommendation_service.model.window import SlidingWindow

    window = SlidingWindow(100_000)
    for e in planted_events(4000):
        window.add(e)
    exact_store, ann_store = ModelStore(tmp_path / "exact"), ModelStore(tmp_path / "ann")
    for store, min_items in ((exact_store, 10**6), (ann_store, 10)):
        worker = TrainingWorker(
            ALSTrainer(SMALL_ALS),
            store,
            lambda: (window.snapshot(), {}),
            ivf=IVFParams(min_items=min_items),
        )
        assert worker._train_once()
    assert exact_store.read_version()[0]["ann"] is None
    assert ann_store.read_version()[0]["ann"]["type"] == "ivf"
    exact = ModelWatcher(exact_store)
    exact.refresh()
    every_cluster = ModelWatcher(ann_store, probes=10**6)
    every_cluster.refresh()
    for user in exact.model.user_ids[:20]:
        a = exact.model.recommend(user, 10)
        b = every_cluster.model.recommend(user, 10)
        assert a.items == b.items and np.allclose(a.scores, b.scores, rtol=1e-4)
