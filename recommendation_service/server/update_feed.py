"""Fresh vectors from the updates topic, applied by every server process (``--updates-topic``).

On hosts without the builder's directory there are no update files: each worker reads the
builder's per-user and per-item records (update_records.py) itself -- no group, every
partition from the beginning, so a starting process gets each key's latest state from the
compacted topic -- and applies those of the version it serves. Records of a newer version
(the host has not downloaded it yet) wait in memory and are applied when the watcher swaps to
it, before the first request sees it; records of older versions are skipped unread.

Under the Kafka builder lease, records of a lease generation older than the newest this
process has seen (in a fence record or any other) are dropped: they come from a builder that
lost the lease (update_records.py).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException

from ..artifacts.update_records import (
    FENCE_KEY,
    PendingUpdate,
    is_version_name,
    record_generation,
    record_version,
)
from ..common.log_limits import RateLimitedLog
from ..common.threads import BackgroundLoop
from ..common.whole_topics import assign_from_beginning
from ..config.kafka import KafkaSettings
from ..errors import ModelLoadError
from ..recommend.served_model import ServedModel

logger = logging.getLogger(__name__)


def _number(version: str) -> int:
    return int(version[1:])


class UpdateFeed(BackgroundLoop):
    """One process's reader of the updates topic, on a daemon thread.

    Parameters
    ----------
    kafka
        The cluster (its consumer settings; no offsets are committed).
    topic
        The updates topic.
    watcher
        The process's :class:`~recommendation_service.server.model_watcher.ModelWatcher`; it
        swaps versions under this feed's :attr:`lock` after :meth:`apply_to` (the feed never
        waits for the watcher's own lock, which is held while a new version loads).
    """

    def __init__(self, kafka: KafkaSettings, topic: str, watcher) -> None:
        self.kafka, self.topic, self.watcher = kafka, topic, watcher
        self.pending: dict[str, PendingUpdate] = {}
        #: Guards ``pending`` and the watcher's swap of the served model.
        self.lock = threading.Lock()
        self.state = "starting"
        self.records = self.applied = self.skipped = self.malformed = self.fenced = 0
        #: The newest builder-lease generation seen; older records are a fenced builder's.
        self.generation = -1
        self.last_applied: float | None = None
        self._warn = RateLimitedLog(logger).warning  # at most one line per 10 s
        super().__init__("update-feed", stop_timeout=5.0)

    def status(self) -> dict:
        return {"topic": self.topic, "state": self.state, "records": self.records,
                "users_applied": self.applied, "skipped_old": self.skipped,
                "malformed": self.malformed, "waiting": sum(map(len, self.pending.values())),
                "generation": None if self.generation < 0 else self.generation,
                "fenced": self.fenced,
                "last_applied": self.last_applied}  # fmt: skip

    # -- the consumer thread ------------------------------------------------------------
    def _run(self) -> None:
        # Not a lowered priority (unlike the model watcher): on a busy host a niced thread
        # waited seconds for the CPU, and these records are what makes an event visible.
        # A group id is required by the client; nothing is committed, so each process reads
        # every partition itself.
        config = self.kafka.consumer_config(f"recsvc-server-{uuid.uuid4().hex[:12]}")
        consumer = Consumer({**config, "enable.auto.commit": False, "error_cb": self._on_error})
        try:
            while not self._stop.is_set() and not self._assign(consumer):
                self._stop.wait(1.0)  # the builder creates the topic on its first start
            checked = time.monotonic()
            while not self._stop.is_set():
                batch = consumer.consume(num_messages=2000, timeout=0.05)
                if batch:
                    self._take(batch)
                elif self.state == "unreachable" and time.monotonic() - checked > 2:
                    checked = time.monotonic()
                    self._probe(consumer)
        except Exception:  # the process keeps serving what it has; say why fresh vectors stop
            logger.exception("the updates feed stopped")
            self.state = "stopped"
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer) -> bool:
        try:
            if not assign_from_beginning(consumer, [self.topic]):
                self._warn("waiting for the updates topic %s", self.topic)
                return False
        except KafkaException as exc:
            self._warn("cannot list the updates topic %s: %s", self.topic, exc)
            return False
        self.state = "ok"
        logger.info("applying fresh vectors from %s", self.topic)
        return True

    def _probe(self, consumer: Consumer) -> None:
        try:
            consumer.list_topics(self.topic, timeout=1)
            self.state = "ok"
        except KafkaException:
            pass

    def _on_error(self, err: KafkaError) -> None:
        # Only a total outage: single disconnects (idle connections closed) are routine.
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            if self.state != "unreachable":
                logger.error("updates topic %s unreachable: %s", self.topic, err)
            self.state = "unreachable"

    def _take(self, batch) -> None:
        self.state = "ok"
        model = self.watcher.model
        floor = _number(model.name) if model is not None else -1
        fresh = []
        for msg in batch:
            if msg.error():
                self._warn("updates topic error: %s", msg.error())
                continue
            self.records += 1
            if msg.value() is None:
                continue  # a tombstone of an erased user: compaction's, nothing to apply
            if not self._in_generation(msg):
                continue
            version = record_version(msg.headers())
            if not is_version_name(version) or msg.key() is None or msg.value() is None:
                self._bad("record without a version header, key or value")
            elif _number(version) < floor:
                self.skipped += 1  # made for a version this process has moved past
            else:
                fresh.append((version, msg.key(), msg.value()))
        if not fresh:
            return
        with self.lock:
            for version, key, value in fresh:
                pending = self.pending.get(version)
                if pending is None:
                    pending = self.pending[version] = PendingUpdate(version)
                try:
                    pending.add(key, value)
                except ValueError as exc:
                    self._bad(str(exc))
            if self.watcher.model is not None:
                self.apply_to(self.watcher.model)

    def _in_generation(self, msg) -> bool:
        """False for a fence record (taken here) and for a fenced builder's records."""
        generation = record_generation(msg.headers())
        if msg.key() == FENCE_KEY:
            if generation is not None and generation > self.generation:
                logger.info("updates from builder-lease generation %d on", generation)
                self.generation = generation
            return False
        if generation is None:
            # A builder without the Kafka lease: fenced too once a lease generation wrote.
            generation = -1
        if generation < self.generation:
            self.fenced += 1
            self._warn("dropped %d updates-topic records of a builder that lost the lease "
                       "(generation below %d)", self.fenced, self.generation)  # fmt: skip
            return False
        self.generation = generation
        return True

    # -- called under self.lock -----------------------------------------------------------
    def apply_to(self, model: ServedModel) -> None:
        """Apply what waits for ``model``'s version; forget what no version will need."""
        served, newest = _number(model.name), max(map(_number, self.pending), default=-1)
        for version in list(self.pending):
            # Servers follow CURRENT, the newest version: only it and the served one matter.
            if _number(version) not in (served, newest) or _number(version) < served:
                del self.pending[version]
        pending = self.pending.pop(model.name, None)
        if not pending:
            return
        try:
            self.applied += model.apply_update(None, pending.arrays())
        except (ModelLoadError, ValueError):
            # Some record does not fit this model: apply the others one by one.
            for one in pending.split():
                try:
                    self.applied += model.apply_update(None, one.arrays())
                except (ModelLoadError, ValueError) as exc:
                    self._bad(f"a record of {model.name} does not fit it: {exc}")
        self.last_applied = time.time()

    def _bad(self, why: str) -> None:
        self.malformed += 1
        self._warn("skipping updates-topic records (%d so far): %s", self.malformed, why)
