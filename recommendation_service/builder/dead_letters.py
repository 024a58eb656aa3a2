"""Malformed messages: counted, logged (rate-limited by the counter), and copied to the
dead-letter topic when one is configured, with the reason and source in the headers."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException, Message, Producer

from ..config.kafka import KafkaSettings
from ..data.events import MalformedCounter
from ..errors import MalformedEvent
from .observability.metrics import BuilderMetrics

logger = logging.getLogger(__name__)


class DeadLetters:
    """Where the builder's malformed messages go.

    Parameters
    ----------
    counter
        Counts and logs them (the status file's ``malformed``).
    metrics
        The builder's metrics (malformed messages by reason).
    """

    def __init__(self, counter: MalformedCounter, metrics: BuilderMetrics) -> None:
        self.counter = counter
        self.metrics = metrics
        self._topic: str | None = None
        self._producer: Producer | None = None

    def open(self, kafka: KafkaSettings) -> None:
        """Start copying malformed messages to ``kafka.dead_letter_topic`` (if it is set)."""
        if kafka.dead_letter_topic:
            self._topic = kafka.dead_letter_topic
            self._producer = Producer(kafka.client_config())

    def record(self, msg: Message, exc: MalformedEvent) -> None:
        """``msg`` could not be applied because of ``exc``."""
        where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        self.counter.record(exc, where)
        self.metrics.malformed.labels(exc.reason).inc()
        if self._producer is None:
            return
        headers = {"recsvc-error": exc.reason, "recsvc-source": where}
        try:
            self._producer.produce(self._topic, value=msg.value(), key=msg.key(), headers=headers)
        except (BufferError, KafkaException) as err:
            logger.warning("dead-letter produce failed for %s: %s", where, err)

    def poll(self) -> None:
        """Serve delivery callbacks (cheap; once per loop step)."""
        if self._producer is not None:
            self._producer.poll(0)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
