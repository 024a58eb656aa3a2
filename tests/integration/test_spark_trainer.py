"""The Spark MLlib trainer (local[2], a real JVM): same model format, comparable quality, and
``recsvc builder --trainer spark`` publishing versions servers load unchanged. Skipped with
the reason when pyspark or Java is missing; ``RECSVC_TEST_REQUIRE_SPARK=1`` (set by
``.ci/run``) turns the skip into a failure."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.data.window import SlidingWindow
from recommendation_service.recommend.served_model import ServedModel
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.params import ALSParams
from recommendation_service.training.spark_als import SparkALSTrainer, spark_unavailable

from ..conftest import category, planted_events, skip_or_fail

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spark_trainer():
    skip_or_fail(spark_unavailable(), "RECSVC_TEST_REQUIRE_SPARK")
    trainer = SparkALSTrainer(ALSParams(factors=16, iterations=8))
    yield trainer
    trainer.stop()


def _taste_precision(model) -> float:
    """Share of each user's top 10 (seen excluded) in the category they favour."""
    snap, hits = model.snapshot, []
    for u in range(snap.n_users):
        seen = snap.seen[u].indices
        favourite = max({category(snap.item_ids[i]) for i in seen},
                        key=[category(snap.item_ids[i]) for i in seen].count)  # fmt: skip
        scores = model.item_factors @ model.user_factors[u]
        scores[seen] = -np.inf
        top = np.argsort(-scores)[:10]
        hits.append(np.mean([category(snap.item_ids[i]) == favourite for i in top]))
    return float(np.mean(hits))


def test_spark_fits_the_same_model_format_with_comparable_quality(spark_trainer, tmp_path):
    window = SlidingWindow(100_000)
    for event in planted_events(4000):
        window.add(event)
    snapshot = window.snapshot()
    spark = spark_trainer.fit(snapshot)
    local = ALSTrainer(spark_trainer.params).fit(snapshot)
    assert spark.trainer == "spark" and local.trainer == "implicit"
    assert spark.user_factors.shape == local.user_factors.shape
    assert spark.item_factors.shape == local.item_factors.shape
    assert spark.user_factors.dtype == np.float32 and np.isfinite(spark.item_factors).all()
    # Planted tastes: both put the user's favourite category on top.
    assert _taste_precision(spark) >= 0.8, _taste_precision(spark)
    assert _taste_precision(spark) >= _taste_precision(local) - 0.1

    store = ModelStore(tmp_path / "models")
    manifest = store.publish(spark)
    assert manifest["trainer"] == "spark"
    served = ServedModel(*store.read_version())
    user = snapshot.user_ids[0]
    assert len(served.recommend(user, 10).items) == 10


def test_builder_with_the_spark_trainer_publishes_versions(spark_trainer, tmp_path):
    from recommendation_service.sandbox.brokers import ensure_topic

    from ..conftest import new_broker
    from ..processes import builder, stop
    from .test_builder_integration import produce, wait_until

    with new_broker(tmp_path / "broker") as broker:
        topic = f"spark-{uuid.uuid4().hex[:8]}"
        ensure_topic(broker.bootstrap_servers, topic)
        produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in planted_events(1500)])
        model_dir = tmp_path / "models"
        proc = builder(broker.bootstrap_servers, topic, model_dir, "--trainer", "spark",
                       "--factors", "16", "--iterations", "5", "--retrain-every", "1000",
                       log_path=tmp_path / "builder.log")  # fmt: skip
        try:
            wait_until(lambda: (model_dir / "CURRENT").exists(), timeout=120, what="a version")
            manifest, _ = ModelStore(model_dir).read_version()
            assert manifest["trainer"] == "spark" and manifest["tuning"] is None
            assert manifest["window_size"] == 1500
        finally:
            stop(proc, timeout=60)
