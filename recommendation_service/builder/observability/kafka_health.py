"""Whether the builder's Kafka cluster is reachable and serving records.

librdkafka reconnects by itself; the builder only has to notice outages, tell ``/health``
about them, and notice when they end. Two states besides ``ok``:

``unreachable``
    librdkafka reported every broker down (or a transport error) and nothing has arrived since.
    A cheap round trip once a second tells when the cluster answers again.
``stalled``
    Reachable and behind the partition end, but no record has arrived for
    :attr:`KafkaHealth.stall_seconds`: the broker accepts writes but stopped serving fetches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

logger = logging.getLogger(__name__)


class KafkaHealth:
    """Outage and stall detection for one consumer.

    Parameters
    ----------
    stall_seconds
        Seconds without a record, while behind the partition end, before Kafka counts as stalled.
    clock
        Monotonic clock (seconds).
    """

    def __init__(
        self, stall_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stall_seconds = stall_seconds
        self._clock = clock
        #: Wall-clock time since when every broker is unreachable, or None.
        self.down_since: float | None = None
        self._last_record = clock()

    def on_error(self, error: KafkaError) -> None:
        """librdkafka's ``error_cb``: note outages (it reconnects by itself)."""
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            if self.down_since is None:
                self.down_since = time.time()
                logger.warning("Kafka unreachable (%s); retrying, serving the last model", error)
        elif error.fatal():
            logger.error("fatal Kafka error: %s", error)
        else:
            logger.warning("Kafka error: %s", error)

    def records_arrived(self) -> None:
        """Records came in: the cluster is up and serving."""
        self.down_since = None
        self._last_record = self._clock()

    def state(self, lag: int) -> str:
        """``ok``, ``unreachable`` or ``stalled`` (``lag``: messages behind the partition ends)."""
        if self.down_since is not None:
            return "unreachable"
        if lag > 0 and self._clock() - self._last_record > self.stall_seconds:
            return "stalled"
        return "ok"

    def probe(self, consumer: Consumer, topic: str, partition: int) -> None:
        """While marked down, check with one broker round trip whether the cluster answers."""
        if self.down_since is None:
            return
        # A watermark query needs a round trip (metadata alone may come from a cache).
        try:
            consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=1.0)
        except KafkaException:
            return
        logger.info("Kafka reachable again")
        self.down_since = None
