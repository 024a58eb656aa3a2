"""Kafka-level behaviour on a real Apache Kafka: deleted records, keyed partitions, consumer lag."""

from __future__ import annotations

import signal
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.builder.model_builder import ModelBuilder
from recommendation_service.sandbox.brokers import ensure_topic

from ..processes import builder as start_builder
from ..processes import stop
from .test_builder_crash import window_pairs
from .test_builder_integration import builder_config, produce, wait_until

pytestmark = pytest.mark.integration

FAST_COMMIT = ["--kafka-option", "auto.commit.interval.ms=200"]


def status_of(model_dir) -> dict:
    return ControlFiles(ModelStore(model_dir)).read_status() or {}


def test_records_deleted_before_the_builder_reads_them_are_skipped(broker, topic, tmp_path):
    model_dir = tmp_path / "models"
    group = f"g-{uuid.uuid4().hex}"
    args = ["--group-id", group, "--window", "5000", "--retrain-every", "400", "--factors", "4"]
    produce(broker, topic, [f"u{k % 31}:i{k}".encode() for k in range(1000)])
    builder = start_builder(broker.bootstrap_servers, topic, model_dir, *args, *FAST_COMMIT)
    try:
        wait_until(lambda: status_of(model_dir).get("events_consumed") == 1000, what="1000 events")
    finally:
        stop(builder)  # commits offset 1000

    produce(broker, topic, [f"u{k % 31}:i{k}".encode() for k in range(1000, 2000)])
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    for future in admin.delete_records([TopicPartition(topic, 0, 1500)]).values():
        future.result(30)

    builder = start_builder(broker.bootstrap_servers, topic, model_dir, *args, *FAST_COMMIT)
    try:
        wait_until(
            lambda: status_of(model_dir).get("offsets", {}).get(f"{topic}[0]") == 2000,
            what="the builder resuming after the deleted records",
        )
        status = status_of(model_dir)
        # 1000..1499 were deleted unread: skipped and reported, never replayed or invented.
        assert status["offsets_skipped"] == 500
        assert status["events_consumed"] == 500 and status["window_events"] == 500
        store = ModelStore(model_dir)
        wait_until(
            lambda: store.read_version()[0]["offsets"] == {topic: {"0": 2000}},
            what="a version of the new window",
        )
        _, _, pairs = window_pairs(store)
        assert pairs == {(f"u{k % 31}", f"i{k}") for k in range(1500, 2000)}
    finally:
        stop(builder)


def test_three_partitions_keyed_by_user_rebuild_exactly_after_sigkill(broker, tmp_path):
    topic = f"keyed-{uuid.uuid4().hex[:10]}"
    ensure_topic(broker.bootstrap_servers, topic, partitions=3)
    events, window = 6000, 2000
    base_ms = int(time.time() * 1000) - events
    # One request in flight: a retried first batch (the new topic's leader not yet known to
    # the producer) cannot land after later ones, so offsets follow the order of production.
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 5, "max.in.flight": 1}
    )
    for k in range(events):
        user = f"u{k % 97}"
        producer.produce(topic, value=f"{user}:i{k}".encode(), key=user, timestamp=base_ms + k)
        producer.poll(0)
    assert producer.flush(30) == 0
    model_dir = tmp_path / "models"
    store = ModelStore(model_dir)
    args = [
        "--group-id", f"g-{uuid.uuid4().hex}", "--window", str(window),
        "--retrain-every", "100000", "--factors", "4", *FAST_COMMIT,
    ]  # fmt: skip

    def consumed_all() -> bool:
        offsets = status_of(model_dir).get("offsets", {})
        return len(offsets) == 3 and sum(offsets.values()) == events

    first = start_builder(broker.bootstrap_servers, topic, model_dir, *args)
    try:
        wait_until(consumed_all, what="all events on three partitions")
        assert all(o > 0 for o in status_of(model_dir)["offsets"].values())
        time.sleep(1.0)  # two auto-commit intervals
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    second = start_builder(broker.bootstrap_servers, topic, model_dir, *args)
    try:
        wait_until(lambda: bool(store.versions()), what="the restarted builder publishing")
        manifest, _, pairs = window_pairs(store)
        assert sum(int(o) for o in manifest["offsets"][topic].values()) == events
        assert manifest["window_size"] == window
        # The newest W events by timestamp, whichever partition they were keyed to.
        expected = {(f"u{k % 97}", f"i{k}") for k in range(events - window, events)}
        assert pairs == expected, (len(pairs - expected), len(expected - pairs))
        assert status_of(model_dir)["events_consumed"] == 0  # nothing counted twice
    finally:
        stop(second)


def test_consumer_lag_gauge_equals_the_brokers_high_watermark_minus_position(
    broker, topic, tmp_path
):
    produce(broker, topic, [f"u{k % 13}:i{k % 50}".encode() for k in range(3000)])
    config = builder_config(broker, topic, tmp_path / "m", f"g-{uuid.uuid4().hex}")
    builder = ModelBuilder(config)
    consumer = Consumer(config.kafka.consumer_config())
    try:
        position = 1234
        consumer.assign([TopicPartition(topic, 0, position)])
        consumer.consume(num_messages=1, timeout=10)  # a fetch: the cached watermark is known
        builder.consumer, builder.positions = consumer, {(topic, 0): position}
        builder.monitor._update_gauges()
        probe = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "probe"})
        try:
            _, high = probe.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        finally:
            probe.close()
        assert high == 3000
        assert builder.monitor.lag == 3000 - position
    finally:
        consumer.close()
