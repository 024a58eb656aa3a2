"""Publishes each update's fresh vectors to the updates topic, for servers on other hosts.

The builder still writes its update files (servers sharing its directory read them); with
``--updates-topic`` it also sends every user's and new item's latest state as one keyed record
(update_records.py). The topic is created compacted when missing, so a server host that starts
later reads each key's latest state instead of the whole history. Sending never blocks the
consumer loop: records queue in the producer; a record the producer could not deliver is
counted and logged -- that user is stale on other hosts until their next event or refit.

Under the Kafka builder lease each record carries the lease generation, and :meth:`fence`
opens a generation with a fence record on every partition (update_records.py).
"""

from __future__ import annotations

import json
import logging
import time

import numpy as np
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.core import CounterMetricFamily

from ...artifacts.update_records import (
    FENCE_KEY,
    GENERATION_HEADER,
    USER_PREFIX,
    VERSION_HEADER,
    update_records,
)
from ...common.log_limits import RateLimitedLog
from ...config.kafka import KafkaSettings

logger = logging.getLogger(__name__)

#: Settings of the updates topic when the builder has to create it.
TOPIC_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}


def ensure_updates_topic(kafka: KafkaSettings, topic: str) -> None:
    """Create the updates topic compacted (broker's partitions and replicas) unless it exists."""
    admin = AdminClient(kafka.client_config())
    try:
        if topic in admin.list_topics(timeout=10).topics:
            return
        new = NewTopic(topic, num_partitions=-1, replication_factor=-1, config=TOPIC_CONFIG)
        admin.create_topics([new])[topic].result(timeout=15)
        logger.info("created the updates topic %s (compacted)", topic)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            # Auto-creation may still make it (not compacted); servers work either way.
            logger.warning("cannot create the updates topic %s: %s", topic, exc)


class UpdatePublisher:
    """Sends update arrays as keyed records; counts what was sent and what failed."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.topic = topic
        ensure_updates_topic(kafka, topic)
        config = {
            **kafka.client_config(),
            # Fresh vectors are worth little late: a short linger, and a bounded wait.
            "linger.ms": 5,
            "message.timeout.ms": 30000,
            "compression.type": "lz4",
        }
        self.producer = Producer({**config, "error_cb": self._on_error})
        self.sent = 0
        self.failed = 0
        self.withheld = 0  # updates not sent because the lease was unconfirmed
        self.generation: int | None = None
        self.guard = None  # the lease's valid(), under the Kafka lease
        self._warn = RateLimitedLog(logger).warning  # at most one line per 10 s

    def fence(self, generation: int, builder_id: str, timeout: float = 15.0) -> None:
        """Open ``generation``: a fence record on every partition, delivered before returning.

        Raises
        ------
        KafkaException
            If the partitions cannot be listed or a fence record is not delivered.
        """
        deadline = time.monotonic() + timeout
        while True:  # a topic created a moment ago may not be in the metadata yet
            meta = self.producer.list_topics(timeout=timeout).topics.get(self.topic)
            if meta is not None and meta.error is None and meta.partitions:
                break
            if time.monotonic() > deadline:
                raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, self.topic))
            time.sleep(0.2)
        headers = [(GENERATION_HEADER, str(generation).encode())]
        value = json.dumps({"generation": generation, "builder_id": builder_id}).encode()
        errors = []
        for partition in meta.partitions:
            self.producer.produce(
                self.topic, value, FENCE_KEY, partition=partition, headers=headers,
                on_delivery=lambda err, msg: errors.append(err) if err else None,
            )  # fmt: skip
        left = self.producer.flush(timeout)
        if left or errors:
            raise KafkaException(errors[0] if errors else KafkaError(KafkaError._TIMED_OUT))
        self.generation = generation

    def publish(self, version: str, arrays: dict[str, np.ndarray]) -> int:
        """Queue every record of one update; returns how many were queued."""
        if self.guard is not None and not self.guard():
            self.withheld += 1
            return 0
        headers = [(VERSION_HEADER, version.encode("ascii"))]
        if self.generation is not None:
            headers.append((GENERATION_HEADER, str(self.generation).encode()))
        queued = 0
        for key, value in update_records(version, arrays):
            try:
                self.producer.produce(
                    self.topic, value, key, headers=headers, on_delivery=self._delivered
                )
            except BufferError:
                # Queue full (broker slow or gone): wait a little once, then count it lost.
                self.producer.poll(0.1)
                try:
                    self.producer.produce(
                        self.topic, value, key, headers=headers, on_delivery=self._delivered
                    )
                except BufferError:
                    self._lost("the producer queue is full", 1)
                    continue
            queued += 1
        self.producer.poll(0)
        return queued

    def forget(self, user: str) -> None:
        """Send a tombstone for ``user``'s record: compaction then deletes their fresh vector
        from the topic, and servers reading it skip it."""
        try:
            self.producer.produce(self.topic, None, USER_PREFIX + user.encode())
        except BufferError:
            self._lost("the producer queue is full (a tombstone)", 1)
        self.producer.poll(0)

    def _delivered(self, err, msg) -> None:
        if err is None:
            self.sent += 1
        else:
            self._lost(err, 1)

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._warn("updates topic %s: all brokers down", self.topic)

    def _lost(self, why, n: int) -> None:
        self.failed += n
        self._warn(
            "fresh vectors not delivered to %s (%d so far): %s", self.topic, self.failed, why
        )

    def status(self) -> dict:
        return {"topic": self.topic, "records_sent": self.sent, "records_failed": self.failed,
                "queued": len(self.producer), "generation": self.generation,
                "updates_withheld": self.withheld}  # fmt: skip

    def collect(self):
        """Prometheus collector interface: the builder's /metrics."""
        sent = CounterMetricFamily(
            "recsvc_builder_update_records", "Fresh-vector records delivered to the updates topic"
        )
        sent.add_metric([], self.sent)
        failed = CounterMetricFamily(
            "recsvc_builder_update_records_failed",
            "Fresh-vector records the updates topic did not take",
        )
        failed.add_metric([], self.failed)
        yield from (sent, failed)

    def stop(self, timeout: float = 10.0) -> None:
        left = self.producer.flush(timeout)
        if left:
            self._lost(f"{left} still queued at shutdown", left)
