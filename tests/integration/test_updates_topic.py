"""Fresh vectors through a real broker's updates topic: the builder's publisher, a server
process's feed, version matching, and a process that starts late reading the compacted state."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from confluent_kafka import Producer

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.artifacts.update_files import UserVector, update_arrays
from recommendation_service.artifacts.update_records import VERSION_HEADER
from recommendation_service.builder.fresh.publisher import UpdatePublisher
from recommendation_service.config.kafka import KafkaSettings
from recommendation_service.server.model_watcher import ModelWatcher
from recommendation_service.server.update_feed import UpdateFeed

from .test_builder_integration import wait_until

pytestmark = pytest.mark.integration


def _update(model, users, ts, seen=(0,)):
    width = model.scoring_matrix.shape[1]
    rng = np.random.default_rng(int(ts))
    vectors = [
        UserVector(rng.normal(size=width).astype(np.float32), np.array(seen, np.int32), ts)
        for _ in users
    ]
    return update_arrays(list(users), vectors)


def _watch(directory):
    watcher = ModelWatcher(ModelStore(directory), interval=0.05)
    watcher.refresh()
    return watcher


def test_each_process_applies_the_records_of_the_version_it_serves(broker, tmp_path, planted_model):
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    topic = f"updates-{uuid.uuid4().hex[:10]}"
    store = ModelStore(tmp_path / "host", keep=3)
    store.publish(planted_model)
    watcher = _watch(store.root)
    model = watcher.model
    publisher = UpdatePublisher(kafka, topic)
    feed = watcher.feed = UpdateFeed(kafka, topic, watcher).start()
    try:
        publisher.publish("v00000001", _update(model, ["user-00001", "brand-new"], 1000.0))
        # The next version's records arrive before the host has that version.
        publisher.publish("v00000002", _update(model, ["user-00002"], 2000.0))
        raw = Producer({"bootstrap.servers": broker.bootstrap_servers})
        raw.produce(topic, b"{}", b"u:x", headers=[(VERSION_HEADER, b"v00000001")])
        raw.flush(10)
        wait_until(lambda: "brand-new" in model.fresh, timeout=30, what="v1's records applied")
        assert model.fresh["user-00001"].last_ts == 1000.0
        assert "user-00002" not in model.fresh
        wait_until(lambda: feed.malformed == 1, timeout=10, what="the bad record counted")
        assert feed.status()["waiting"] == 1 and feed.status()["state"] == "ok"
        result = model.recommend("brand-new", 5)
        assert result.as_of == 1000.0 and len(result.items) == 5

        # The host gets v2: what waited for it is in before any request sees it.
        store.publish(planted_model)
        assert watcher.refresh()
        new = watcher.model
        assert new.version == 2 and new.fresh["user-00002"].last_ts == 2000.0
        assert "brand-new" not in new.fresh  # v1's vectors do not fit v2's items
        publisher.publish("v00000002", _update(new, ["brand-new"], 3000.0))
        wait_until(lambda: "brand-new" in new.fresh, timeout=10, what="v2 record applied")
        publisher.producer.flush(10)
        assert publisher.sent == 4 and publisher.failed == 0

        # A process started now reads each key's latest state and skips old versions.
        late = _watch(store.root)
        late_feed = late.feed = UpdateFeed(kafka, topic, late).start()
        try:
            wait_until(lambda: "brand-new" in late.model.fresh, timeout=30, what="late catch-up")
            assert late.model.fresh["user-00002"].last_ts == 2000.0
            assert late_feed.skipped >= 2  # v1's records, never parsed
        finally:
            late_feed.stop()
    finally:
        feed.stop()
        publisher.stop()


def test_records_that_do_not_fit_the_model_are_skipped(broker, tmp_path, planted_model):
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    topic = f"updates-{uuid.uuid4().hex[:10]}"
    store = ModelStore(tmp_path / "host")
    store.publish(planted_model)
    watcher = _watch(store.root)
    publisher = UpdatePublisher(kafka, topic)
    feed = watcher.feed = UpdateFeed(kafka, topic, watcher).start()
    try:
        model = watcher.model
        publisher.publish("v00000001", _update(model, ["u-bad"], 5.0, seen=(10**6,)))
        publisher.publish("v00000001", _update(model, ["u-good"], 6.0))
        wait_until(lambda: "u-good" in model.fresh, timeout=30, what="the good record")
        assert "u-bad" not in model.fresh and feed.malformed == 1
    finally:
        feed.stop()
        publisher.stop()
