"""Following the erasures topic: every record from the beginning, then each new one.

The builder and every server process run one. Nothing is committed: each reader rebuilds the
whole set of erasures on every start (the topic is small and compacted), and is *caught up*
once it has read to the end the broker reported when it started -- the builder rebuilds its
window only after that, so an erased user never comes back from a replay.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from ..common.log_limits import RateLimitedLog
from ..common.threads import BackgroundLoop
from ..config.kafka import KafkaSettings
from ..data.erasures import Erasure
from ..errors import ErasureError, MalformedEvent
from .topic import ensure_erasures_topic

logger = logging.getLogger(__name__)


class ErasureFeed(BackgroundLoop):
    """Reads the erasures topic on a daemon thread and hands each record to ``on_erasure``.

    Parameters
    ----------
    kafka
        The cluster (its consumer settings).
    topic
        The erasures topic (created when missing).
    on_erasure
        Called on this thread with ``(position, erasure)`` for every record, in order.
    """

    def __init__(
        self, kafka: KafkaSettings, topic: str, on_erasure: Callable[[int, Erasure], None]
    ) -> None:
        self.kafka, self.topic, self.on_erasure = kafka, topic, on_erasure
        self.state = "starting"
        self.records = self.malformed = 0
        #: Set once every record that existed at start has been handed over.
        self.caught_up = threading.Event()
        self._warn = RateLimitedLog(logger).warning  # at most one line per 10 s
        super().__init__("erasures", stop_timeout=5.0)

    def status(self) -> dict:
        return {"topic": self.topic, "state": self.state, "records": self.records,
                "malformed": self.malformed, "caught_up": self.caught_up.is_set()}  # fmt: skip

    def wait_caught_up(self, stop: Callable[[], bool], timeout: float | None = None) -> bool:
        """Block until caught up (True), ``stop()`` is true or ``timeout`` passed (False)."""
        start = time.monotonic()
        while not self.caught_up.wait(0.2):
            waited = time.monotonic() - start
            if stop() or (timeout is not None and waited > timeout):
                return False
            if waited > 5:  # a normal start takes well under a second
                self._warn("waiting for the erasures topic %s (%s)", self.topic, self.state)
        return True

    def _run(self) -> None:
        config = self.kafka.consumer_config(f"recsvc-erasures-{uuid.uuid4().hex[:12]}")
        consumer = Consumer({**config, "enable.auto.commit": False, "error_cb": self._on_error})
        try:
            while not self._stop.is_set() and not self._assign(consumer):
                self._stop.wait(1.0)
            while not self._stop.is_set():
                for msg in consumer.consume(num_messages=1000, timeout=0.05):
                    if msg.error():
                        if msg.error().code() != KafkaError._PARTITION_EOF:
                            self._warn("erasures topic error: %s", msg.error())
                        continue
                    self._take(msg)
                if not self.caught_up.is_set():
                    self._check_caught_up(consumer)
        except Exception:  # say why erasures stop arriving; the process keeps running
            logger.exception("the erasures feed stopped")
            self.state = "stopped"
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer) -> bool:
        try:
            ensure_erasures_topic(self.kafka, self.topic)
        except ErasureError as exc:
            self.state = str(exc)  # what the builder's wait for it reports
            self._warn("%s", exc)
            return False
        consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        self.state = "ok"
        return True

    def _check_caught_up(self, consumer: Consumer) -> None:
        # The high watermark of the last fetch response (cached): no extra request per poll.
        tp = TopicPartition(self.topic, 0)
        low, high = consumer.get_watermark_offsets(tp, cached=True)
        if high < 0:
            return  # no fetch response yet
        position = consumer.position([tp])[0].offset
        if high == 0 or low >= high or position >= high:
            self.caught_up.set()
            logger.info("read %d erasure records from %s", self.records, self.topic)

    def _take(self, msg) -> None:
        self.records += 1
        try:
            erasure = Erasure.decode(msg.key(), msg.value())
        except MalformedEvent as exc:
            self.malformed += 1
            self._warn("skipping erasure records (%d so far): %s", self.malformed, exc)
            return
        self.on_erasure(msg.offset(), erasure)

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.state = "unreachable"
