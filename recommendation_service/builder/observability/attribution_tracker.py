"""Attribution: which served lists got clicked and bought from.

Servers publish every list they answer to the impressions topic (JSON: ``recommendation_id``,
``endpoint``, ``user``, ``items``, ``ts``, and ``experiment`` / ``variant`` when served in
one); apps send events that carry the list's ``recommendation_id``. This consumer reads both
topics whole (no group: it assigns every partition from the beginning, so after a restart it
recounts exactly from the log) and joins each event to its list
(:class:`~recommendation_service.experiments.attribution.Attribution`: the service, each
endpoint and each variant, since start and over the last hour).

An event whose list has not been read yet waits until the impressions read have moved
``JOIN_SECONDS`` past the event's time, then counts as unattributed, as do events whose list
was evicted (only the newest ``max_lists`` lists are kept for joining). The counts are written
to ``experiments.json`` in the model directory (atomically, at most every ``interval``
seconds) for the servers' ``GET /attribution``, ``GET /experiments``, ``/metrics`` and the
dashboard.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Message

from ...artifacts.control_files import EXPERIMENTS_FILE
from ...common.files import write_atomic
from ...common.threads import BackgroundLoop
from ...common.whole_topics import assign_from_beginning
from ...config.builder import BuilderConfig
from ...experiments.attribution import Attribution
from ...experiments.stats import metric_families

logger = logging.getLogger(__name__)

#: How far (seconds of impression time) the join waits for a list an event names.
JOIN_SECONDS = 60.0


class AttributionTracker(BackgroundLoop):
    """Joins impressions and events on a daemon thread; writes the counts file."""

    def __init__(
        self, config: BuilderConfig, root: Path, interval: float = 1.0, max_lists: int = 500_000
    ) -> None:
        self.kafka, self.root = config.kafka, Path(root)
        self.topics = (config.impressions_topic, config.kafka.topic)
        self.interval = interval
        self.max_bytes = config.max_event_bytes
        self.attribution = Attribution(max_lists)
        self.malformed_impressions = 0
        self.write_error: str | None = None
        self._lock = threading.Lock()  # the counts vs. /metrics scrapes
        super().__init__("attribution")

    def snapshot(self) -> dict:
        with self._lock:
            body = self.attribution.summary(time.time())
            body["malformed_impressions"] = self.malformed_impressions
            return body

    def collect(self):
        """Prometheus collector interface: the builder's /metrics."""
        yield from metric_families(self.snapshot())

    def _assign(self, consumer: Consumer) -> bool:
        try:
            if not assign_from_beginning(consumer, list(self.topics)):
                return False
        except KafkaException as exc:
            logger.warning("cannot list %s: %s", self.topics, exc)
            return False
        logger.info("attributing events to lists from %s and %s", *self.topics)
        return True

    def _run(self) -> None:
        config = self.kafka.consumer_config(f"{self.kafka.group_id}-experiments")
        consumer = Consumer({**config, "enable.auto.commit": False})
        try:
            while not self._stop.is_set() and not self._assign(consumer):
                self._stop.wait(2.0)  # the impressions topic appears with the first list
            dirty, last_write = True, 0.0
            while not self._stop.is_set():
                batch = consumer.consume(num_messages=1000, timeout=0.1)
                with self._lock:
                    for msg in batch:
                        if msg.error():
                            logger.warning("attribution consume error: %s", msg.error())
                        elif msg.topic() == self.topics[0]:
                            dirty |= self._impression(msg)
                        else:
                            dirty |= self._event(msg)
                    dirty |= self.attribution.join(JOIN_SECONDS)
                now = time.monotonic()
                # The last hour moves on with nothing arriving: rewrite at least once a minute.
                if (dirty and now - last_write >= self.interval) or now - last_write >= 60:
                    dirty = not self._write()
                    last_write = now
        finally:
            consumer.close()

    def _impression(self, msg: Message) -> bool:
        try:
            record = json.loads(msg.value())
            rid = record["recommendation_id"]
            experiment, variant = record.get("experiment"), record.get("variant")
            endpoint = record.get("endpoint", "recommend")
            items = [str(i) for i in record["items"]]
            if not all(isinstance(x, str) and x for x in (rid, endpoint)):
                raise TypeError("ids must be strings")
            if (experiment is None) != (variant is None) or not all(
                x is None or (isinstance(x, str) and x) for x in (experiment, variant)
            ):
                raise TypeError("experiment and variant: both strings or both absent")
            ts = float(record.get("ts", 0.0))
        except (TypeError, ValueError, KeyError):
            self.malformed_impressions += 1
            return True
        self.attribution.impression(rid, items, ts, endpoint, experiment, variant)
        return True

    def _event(self, msg: Message) -> bool:
        value = msg.value()
        if not value or b"recommendation_id" not in value or len(value) > self.max_bytes:
            return False  # most events: not from a recommendation (or the builder's malformed)
        try:
            event = json.loads(value)
            rid, item = event["recommendation_id"], str(event["item"])
            action = event.get("action")
        except (TypeError, ValueError, KeyError):
            return False
        if not isinstance(rid, str):
            return False
        self.attribution.event(float(msg.timestamp()[1]) / 1000.0, rid, item, action)
        return True

    def _write(self) -> bool:
        body = {"updated_at": time.time(), "topics": list(self.topics), **self.snapshot()}
        try:
            write_atomic(self.root / EXPERIMENTS_FILE, json.dumps(body).encode())
        except OSError as exc:
            if self.write_error is None:
                logger.error("cannot write %s: %s", self.root / EXPERIMENTS_FILE, exc)
            self.write_error = str(exc)
            return False
        self.write_error = None
        return True
