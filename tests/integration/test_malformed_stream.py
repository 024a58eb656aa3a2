"""100,000 messages, half of them hostile, through the real broker: exact accounting."""

from __future__ import annotations

import random
import uuid

import pytest
from confluent_kafka import Consumer

from recommendation_service.sandbox.brokers import ensure_topic

from .test_builder_integration import RunningBuilder, builder_config, consumed, produce, wait_until

pytestmark = pytest.mark.integration

HOSTILE = [
    b"",
    b"\x00\xff\xfe garbage",
    b"no-colon",
    b"a:b:c",
    b":item",
    b"user:",
    b"u\x01ser:item",
    b"user:it\x7fem",
    b"x" * 20_000,
    b"[1, 2, 3]",
    b"{not json",
    b'{"user": "u"}',
    b'{"user": true, "item": "i"}',
    b'{"user": "u", "item": "i", "weight": NaN}',
    b'{"user": "u", "item": "i", "weight": Infinity}',
    b'{"user": "u", "item": "i", "weight": -3}',
    b'{"user": "u", "item": "i", "action": "teleport"}',
    b'{"user": "u", "item": "i", "ts": "x"}',
    b'{"user": ["u"], "item": "i"}',
    "é:".encode("latin-1"),
]


def test_mixed_stream_every_valid_event_lands_every_malformed_one_is_counted(
    broker, topic, tmp_path
):
    rng = random.Random(5)
    values, valid = [], []
    for k in range(100_000):
        if rng.random() < 0.5:
            value = rng.choice(HOSTILE)
        else:
            value = f"user-{k % 911}:item-{k}".encode()
            valid.append(value.decode())
        values.append(value)
    malformed = len(values) - len(valid)
    dlq = f"dead-{uuid.uuid4().hex[:8]}"
    ensure_topic(broker.bootstrap_servers, dlq)
    produce(broker, topic, values)
    config = builder_config(
        broker,
        topic,
        tmp_path,
        f"g-{uuid.uuid4().hex}",
        window=100_000,
        retrain_every=10**6,
        dead_letter_topic=dlq,
    )
    with RunningBuilder(config) as builder:
        wait_until(
            lambda: builder.events_consumed + builder.malformed.total >= len(values),
            timeout=120,
            what="all 100,000 messages handled",
        )
        assert consumed(builder, len(valid))()
        window = [f"{e.user}:{e.item}" for e in builder.window.events()]
        assert window == valid, "every valid event, once, in order"
        assert builder.malformed.total == malformed
    dead = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": f"dlq-{dlq}",
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
        }
    )
    dead.subscribe([dlq])
    total, idle_polls = 0, 0
    while total < malformed and idle_polls < 60:
        batch = [m for m in dead.consume(10_000, 1.0) if not m.error()]
        total += len(batch)
        idle_polls = 0 if batch else idle_polls + 1
    dead.close()
    assert total == malformed, "every malformed message is dead-lettered"
