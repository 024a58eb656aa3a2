"""The catalog side of the builder: the items topic, read whole, kept as ``catalog.npz``.

Catalog topics are small and compacted, so this consumer needs no group and no committed
offsets: it assigns every partition of the topic from its beginning, rebuilds the catalog
exactly on every start, and then follows new messages. Whenever the catalog changed it
rewrites the catalog file (at most every ``interval`` seconds), so an item made unavailable
or deleted leaves every server's answers within a second, with no refit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Message

from ..common.threads import BackgroundLoop
from ..common.whole_topics import assign_from_beginning
from ..config.builder import BuilderConfig
from ..data.catalog import CatalogEntry, parse_catalog_message, write_catalog
from ..errors import MalformedEvent

logger = logging.getLogger(__name__)


class CatalogConsumer(BackgroundLoop):
    """Follows the catalog topic on a daemon thread and writes the catalog file.

    Parameters
    ----------
    config
        The builder's configuration (cluster, ``catalog_topic``, message limits).
    root
        The model directory the catalog file goes to.
    on_malformed
        Called with each message that does not parse (counting, dead-lettering); it is called
        on this thread, under ``lock``.
    lock
        Shared with whatever else ``on_malformed`` touches.
    interval
        Least seconds between two writes of the catalog file.
    """

    def __init__(
        self,
        config: BuilderConfig,
        root: Path,
        on_malformed: Callable[[Message, MalformedEvent], None],
        lock: threading.Lock | None = None,
        interval: float = 0.2,
    ) -> None:
        self.kafka, self.topic, self.root = config.kafka, config.catalog_topic, Path(root)
        self.on_malformed = on_malformed
        self.lock = lock or threading.Lock()
        self.interval = interval
        self.max_bytes, self.max_id_length = config.max_event_bytes, config.max_id_length
        self.entries: dict[str, CatalogEntry] = {}
        self.offsets: dict[str, int] = {}
        self.messages = 0
        self.writes = 0
        self.write_error: str | None = None
        super().__init__("catalog")

    def status(self) -> dict:
        return {
            "topic": self.topic,
            "items": len(self.entries),
            "unavailable": sum(not e.available for e in list(self.entries.values())),
            "messages": self.messages,
            "offsets": dict(self.offsets),
            "write_error": self.write_error,
        }

    def _assign(self, consumer: Consumer) -> bool:
        try:
            if not assign_from_beginning(consumer, [self.topic]):
                return False
        except KafkaException as exc:
            logger.warning("cannot list catalog topic %s: %s", self.topic, exc)
            return False
        logger.info(
            "reading catalog topic %s (%d partitions)", self.topic, len(consumer.assignment())
        )
        return True

    def _run(self) -> None:
        config = self.kafka.consumer_config(f"{self.kafka.group_id}-catalog")
        consumer = Consumer({**config, "enable.auto.commit": False})
        try:
            while not self._stop.is_set() and not self._assign(consumer):
                self._stop.wait(5.0)  # the topic may be created later
            dirty, last_write = False, 0.0
            while not self._stop.is_set():
                for msg in consumer.consume(num_messages=1000, timeout=0.1):
                    if msg.error():
                        logger.warning("catalog consume error: %s", msg.error())
                        continue
                    dirty |= self._apply(msg)
                if dirty and time.monotonic() - last_write >= self.interval:
                    dirty = not self._write()
                    last_write = time.monotonic()
        finally:
            consumer.close()

    def _apply(self, msg: Message) -> bool:
        self.messages += 1
        self.offsets[f"{msg.topic()}[{msg.partition()}]"] = msg.offset() + 1
        try:
            item, entry = parse_catalog_message(
                msg.key(), msg.value(), self.max_bytes, self.max_id_length
            )
        except MalformedEvent as exc:
            with self.lock:
                self.on_malformed(msg, exc)
            return False
        if entry is None:
            return self.entries.pop(item, None) is not None
        self.entries[item] = entry
        return True

    def _write(self) -> bool:
        try:
            write_catalog(self.root, self.entries, self.offsets)
        except OSError as exc:
            # Servers keep the last catalog; the next change (or poll) tries again.
            if self.write_error is None:
                logger.error("cannot write the catalog to %s: %s", self.root, exc)
            self.write_error = str(exc)
            return False
        self.write_error = None
        self.writes += 1
        return True
