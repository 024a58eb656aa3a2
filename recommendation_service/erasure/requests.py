"""Requesting an erasure: where the user's events end, then one record on the erasures topic.

Used by ``DELETE /users/{user}`` and ``recsvc forget``. The end of each partition of the
interactions topic is read from a fetch response, so every event already appended when the
erasure is requested is erased, and every later one is new.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from ..config.kafka import KafkaSettings
from ..data.erasures import Erasure
from ..errors import ErasureError
from .topic import ensure_erasures_topic


def partition_ends(kafka: KafkaSettings, topic: str, timeout: float = 5.0) -> dict[int, int]:
    """The offset the next event of each partition of ``topic`` will get.

    Raises
    ------
    ErasureError
        If the topic's partitions cannot be listed or no fetch answers in time.
    """
    config = kafka.consumer_config(f"recsvc-erasure-{uuid.uuid4().hex[:12]}")
    consumer = Consumer({**config, "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        try:
            # Every topic: naming one creates it where auto-creation is on.
            meta = consumer.list_topics(timeout=timeout).topics.get(topic)
        except KafkaException as exc:
            raise ErasureError(f"cannot list the interactions topic {topic}: {exc}") from exc
        if meta is None or meta.error is not None or not meta.partitions:
            return {}  # no topic, no events to erase
        parts = sorted(meta.partitions)
        ends: dict[int, int] = {}
        for p in parts:
            try:
                _, ends[p] = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=timeout
                )
            except KafkaException as exc:
                raise ErasureError(f"cannot read the end of {topic}[{p}]: {exc}") from exc
        consumer.assign([TopicPartition(topic, p, max(ends[p] - 1, 0)) for p in parts])
        # A partition's end-of-partition event carries the high watermark of a fetch response.
        reached: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(reached) < len(parts):
            if time.monotonic() > deadline:
                raise ErasureError(f"no fetch of {topic} answered within {timeout:g} s")
            for msg in consumer.consume(num_messages=1000, timeout=0.05):
                error, p = msg.error(), msg.partition()
                if error is None:
                    ends[p] = max(ends[p], msg.offset() + 1)
                elif error.code() == KafkaError._PARTITION_EOF:
                    ends[p] = max(ends[p], msg.offset())
                    reached.add(p)
        return ends
    finally:
        consumer.close()


def request_erasure(
    kafka: KafkaSettings, erasures_topic: str, user: str, timeout: float = 10.0
) -> tuple[int, Erasure]:
    """Record the erasure of ``user``; returns its position and the record.

    Returns only once the broker has the record (``acks=all``): from then on the builder,
    after any restart or takeover, and every server forget the user.

    Raises
    ------
    ErasureError
        If the cluster cannot be reached or the record is not delivered in time.
    """
    ensure_erasures_topic(kafka, erasures_topic, timeout=timeout)
    erasure = Erasure(user, time.time(), partition_ends(kafka, kafka.topic, timeout=timeout))
    key, value = erasure.encode()
    producer = Producer({**kafka.client_config(), "acks": "all"})
    delivered: list = []
    producer.produce(
        erasures_topic, value, key, on_delivery=lambda err, msg: delivered.append((err, msg))
    )
    producer.flush(timeout)
    if not delivered:
        raise ErasureError(f"the erasure of {user!r} was not delivered within {timeout:g} s")
    err, msg = delivered[0]
    if err is not None:
        raise ErasureError(f"the erasure of {user!r} was refused: {err}")
    return msg.offset(), erasure
