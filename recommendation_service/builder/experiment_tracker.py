"""Attribution for experiments: which variant's lists got clicked and bought from.

Servers publish every list they serve in an experiment to the impressions topic; apps send
events that carry the list's ``recommendation_id``. This consumer reads both topics whole
(no group: it assigns every partition from the beginning, so after a restart it recounts
exactly from the log), joins each event to its list, and keeps per experiment and variant:

* ``lists`` -- lists served (impressions);
* ``clicks`` / ``clicked_lists`` -- events other than purchases carrying the id, and lists
  with at least one;
* ``conversions`` / ``converted_lists`` -- ``purchase`` events, and lists with at least one;
* ``clicks_by_position`` -- clicks per position (0-based) of the item in its list.

An event whose list has not been read yet waits until the impressions read have moved
``JOIN_SECONDS`` past the event's time, then counts as unattributed, as do events whose list
was evicted (only the newest ``max_lists`` lists are kept for joining). The counts are written
to ``experiments.json`` in the model directory (atomically, at most every ``interval``
seconds) for the servers' ``GET /experiments`` and ``/metrics``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Message

from ..artifacts.control_files import EXPERIMENTS_FILE
from ..common.files import write_atomic
from ..common.threads import BackgroundLoop
from ..common.whole_topics import assign_from_beginning
from ..config.builder import BuilderConfig
from ..experiments.stats import metric_families

logger = logging.getLogger(__name__)

#: How far (seconds of impression time) the join waits for a list an event names.
JOIN_SECONDS = 60.0
CONVERSION_ACTIONS = frozenset({"purchase"})
MAX_POSITIONS = 100


class ExperimentTracker(BackgroundLoop):
    """Joins impressions and events on a daemon thread; writes the counts file."""

    def __init__(
        self, config: BuilderConfig, root: Path, interval: float = 1.0, max_lists: int = 500_000
    ) -> None:
        self.kafka, self.root = config.kafka, Path(root)
        self.topics = (config.impressions_topic, config.kafka.topic)
        self.interval, self.max_lists = interval, max_lists
        self.max_bytes = config.max_event_bytes
        self.lists: OrderedDict[str, list] = OrderedDict()  # id -> [exp, variant, items, c, v]
        self.counts: dict[str, dict[str, dict]] = {}
        self.pending: deque = deque()  # (event time, id, item, action)
        self.unattributed = {"clicks": 0, "conversions": 0}
        self.malformed_impressions = 0
        self.impression_time = 0.0
        self.write_error: str | None = None
        self._lock = threading.Lock()  # the counts vs. /metrics scrapes
        super().__init__("experiments")

    def snapshot(self) -> dict:
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> dict:
        return {
            "experiments": json.loads(json.dumps(self.counts)),
            "unattributed": dict(self.unattributed),
            "waiting": len(self.pending),
            "tracked_lists": len(self.lists),
            "malformed_impressions": self.malformed_impressions,
        }

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
        logger.info("tracking experiments from %s and %s", *self.topics)
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
                            logger.warning("experiment tracker consume error: %s", msg.error())
                        elif msg.topic() == self.topics[0]:
                            dirty |= self._impression(msg)
                        else:
                            dirty |= self._event(msg)
                    dirty |= self._expire()
                now = time.monotonic()
                if dirty and now - last_write >= self.interval:
                    dirty = not self._write()
                    last_write = now
        finally:
            consumer.close()

    def _variant_counts(self, experiment: str, variant: str) -> dict:
        return self.counts.setdefault(experiment, {}).setdefault(
            variant,
            {"lists": 0, "clicks": 0, "clicked_lists": 0, "conversions": 0,
             "converted_lists": 0, "clicks_by_position": []},
        )  # fmt: skip

    def _impression(self, msg: Message) -> bool:
        try:
            record = json.loads(msg.value())
            rid, experiment, variant = (
                record["recommendation_id"], record["experiment"], record["variant"]
            )  # fmt: skip
            items = [str(i) for i in record["items"]]
            if not all(isinstance(x, str) and x for x in (rid, experiment, variant)):
                raise TypeError("ids must be strings")
            ts = float(record.get("ts", 0.0))
        except (TypeError, ValueError, KeyError):
            self.malformed_impressions += 1
            return True
        self._variant_counts(experiment, variant)["lists"] += 1
        self.lists[rid] = [experiment, variant, items, False, False]
        while len(self.lists) > self.max_lists:
            self.lists.popitem(last=False)
        self.impression_time = max(self.impression_time, ts)
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
        ts = float(msg.timestamp()[1]) / 1000.0
        self.pending.append((ts, rid, item, action))
        return True

    def _expire(self) -> bool:
        """Join waiting events whose list is known; give up on those past the join wait."""
        changed, still = False, deque()
        while self.pending:
            ts, rid, item, action = entry = self.pending.popleft()
            known = self.lists.get(rid)
            if known is not None:
                self._attribute(known, item, action)
                changed = True
            elif self.impression_time > ts + JOIN_SECONDS or len(still) > self.max_lists:
                kind = "conversions" if action in CONVERSION_ACTIONS else "clicks"
                self.unattributed[kind] += 1
                changed = True
            else:
                still.append(entry)
        self.pending = still
        return changed

    def _attribute(self, known: list, item: str, action) -> None:
        counts = self._variant_counts(known[0], known[1])
        if action in CONVERSION_ACTIONS:
            counts["conversions"] += 1
            counts["converted_lists"] += not known[4]
            known[4] = True
            return
        counts["clicks"] += 1
        counts["clicked_lists"] += not known[3]
        known[3] = True
        if item in known[2]:
            position = min(known[2].index(item), MAX_POSITIONS - 1)
            by_position = counts["clicks_by_position"]
            by_position.extend([0] * (position + 1 - len(by_position)))
            by_position[position] += 1

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
