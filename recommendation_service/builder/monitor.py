"""The builder's once-a-second housekeeping: what it reports and what it is asked.

Every second the builder loop calls :meth:`BuilderMonitor.tick`, which

- probes Kafka while it is marked unreachable,
- takes refit requests that servers left in the control directory (``POST
  /online/training/start``) and tracks them as :class:`RefitJobs`,
- writes the status file servers turn into ``/health`` and ``/online/training/status``,
- updates the metrics gauges (window size, consumer lag per partition),
- every 5 s records the counters and new refits for the dashboard (history.py),
- and every 10 s logs a line of throughput figures.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from confluent_kafka import KafkaException, TopicPartition

from .history import BuilderHistory

if TYPE_CHECKING:
    from .model_builder import ModelBuilder

logger = logging.getLogger(__name__)


class RefitJobs:
    """Refits asked for through the API: queued -> training -> done (the last ``keep`` kept).

    Not thread-safe by itself: the builder calls it under its lock.
    """

    def __init__(self, keep: int = 100) -> None:
        self.keep = keep
        self.states: dict[str, dict] = {}
        self._queued: list[str] = []
        self._training: list[str] = []

    def queue(self, jobs: list[str]) -> None:
        self._queued += jobs
        for job in jobs:
            self.states[job] = {"state": "queued", "queued_at": time.time()}

    def start(self) -> None:
        """A snapshot was taken: the queued jobs are in the fit that starts now."""
        self._training, self._queued = self._queued, []
        for job in self._training:
            self.states[job] = {"state": "training", "started_at": time.time()}

    def finish(self, manifest: dict) -> None:
        """The fit's model was published as ``manifest``."""
        for job in self._training:
            self.states[job] = {
                "state": "done",
                "version": manifest["version"],
                "finished_at": manifest["created_ts"],
            }
        self._training = []
        for old in list(self.states)[: -self.keep]:
            del self.states[old]


class BuilderMonitor:
    """Status file, gauges, stats log and API requests of one :class:`ModelBuilder`."""

    def __init__(self, builder: ModelBuilder) -> None:
        self.builder = builder
        #: Messages behind the partition ends at the last tick.
        self.lag = 0
        #: Lag per "topic[partition]" at the last tick.
        self.lags: dict[str, int] = {}
        self.history = BuilderHistory()
        self._next_tick = 0.0
        self._last_stats = time.monotonic()
        self._stats_events = 0

    def _second_passed(self, now: float) -> bool:
        """True at most once a second: the builder loop calls in far more often."""
        if now < self._next_tick:
            return False
        self._next_tick = now + 1.0
        return True

    def tick(self) -> None:
        """Do the housekeeping if a second has passed since the last time (cheap otherwise)."""
        now = time.monotonic()
        if not self._second_passed(now):
            return
        b = self.builder
        topic, partition = next(iter(b.positions), (b.config.kafka.topic, 0))
        if b.consumer is not None:
            b.kafka.probe(b.consumer, topic, partition)
        self._take_training_requests()
        self._write_status()
        self._update_gauges()
        self._record_history(now)
        self._log_stats(now)

    def _take_training_requests(self) -> None:
        b = self.builder
        try:
            jobs = b.control.take_training_requests()
        except OSError as exc:
            logger.warning("cannot read training requests: %s", exc)
            return
        if jobs:
            with b.lock:
                b.jobs.queue(jobs)
            logger.info("refit requested through the API (jobs %s)", jobs)
            b.trainer.request()

    def status(self) -> dict:
        """What the status file says (servers read it for ``/health``)."""
        b = self.builder
        last = b.trainer.last_manifest
        with b.lock:
            return {
                "updated_at": time.time(),
                "builder_id": b.builder_id,
                "role": "active",
                "active_since": b.active_since,
                "phase": "waiting_for_events"
                if last is None and b.events_consumed == 0
                else "consuming",
                "training": b.trainer.training,
                "events_consumed": b.events_consumed,
                "events_since_refit": b.events_since_refit,
                "retrain_every": b.config.retrain_every,
                "next_refit_after_events": max(0, b.config.retrain_every - b.events_since_refit),
                "window_events": len(b.window),
                "window_span": b.window.span(),
                "malformed": b.malformed.total,
                "lag": dict(self.lags),
                "offsets": {f"{t}[{p}]": o for (t, p), o in b.positions.items()},
                "offsets_skipped": b.offsets_skipped,
                "kafka": b.kafka.state(self.lag),
                "kafka_unreachable_since": b.kafka.down_since,
                "publish": b.trainer.publish_failures.status(),
                "update_files": b.update_failures.status(),
                "last_refit": None
                if last is None
                else {
                    "version": last["version"],
                    "at": last["created_ts"],
                    "training_seconds": last["training_seconds"],
                },
                "jobs": dict(b.jobs.states),
                "live_quality": b.quality.summary(),
                "catalog": None if b.catalog is None else b.catalog.status(),
                "model_store": None if b.store_sync is None else dict(b.store_sync.state),
                "updates_topic": None if b.publisher is None else b.publisher.status(),
            }

    def write_standby(self) -> None:
        """Announce this builder as a standby (at most once a second)."""
        if not self._second_passed(time.monotonic()):
            return
        b = self.builder
        status = {
            "updated_at": time.time(),
            "builder_id": b.builder_id,
            "role": "standby",
            "started_at": b.started_at,
            "active": b.lease.holder(),
        }
        try:
            b.control.write_standby(b.builder_id, status)
        except OSError as exc:
            logger.warning("cannot write the standby file: %s", exc)

    def _write_status(self) -> None:
        try:
            self.builder.control.write_status(self.status())
        except OSError as exc:
            # Servers see the status go stale, which /health reports as degraded.
            logger.warning("cannot write builder status: %s", exc)

    def _update_gauges(self) -> None:
        b = self.builder
        m = b.metrics
        m.window_events.set(len(b.window))
        m.window_users.set(len(b.window.users))
        m.window_items.set(len(b.window.items))
        m.write_failures.labels("model").set(b.trainer.publish_failures.consecutive)
        m.write_failures.labels("update").set(b.update_failures.consecutive)
        with b.lock:
            quality = b.quality.summary()
        for method in ("service", "popularity"):
            if method in quality:
                m.live_hit_rate.labels(method).set(quality[method]["hit_rate"])
                m.live_ndcg.labels(method).set(quality[method]["ndcg"])
        lag, lags = 0, {}
        for (topic, partition), position in list(b.positions.items()):
            # The cached high watermark comes with every fetch (no extra request).
            tp = TopicPartition(topic, partition)
            try:
                _, high = b.consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:  # no fetch has reported it yet: ask the broker
                    _, high = b.consumer.get_watermark_offsets(tp, timeout=1.0)
            except KafkaException:
                continue
            if high >= 0:
                m.lag.labels(topic, str(partition)).set(max(0, high - position))
                lag += max(0, high - position)
                lags[f"{topic}[{partition}]"] = max(0, high - position)
        self.lag, self.lags = lag, lags

    def _record_history(self, now: float) -> None:
        """Every few seconds: the counters the dashboard charts, and new refits."""
        if not self.history.due(now):
            return
        b = self.builder
        with b.lock:
            span = b.window.span()
            point = {
                "events": b.events_consumed,
                "malformed": b.malformed.total,
                "lag": self.lag,
                "window_events": len(b.window),
                "window_seconds": None if span is None else round(span[1] - span[0], 3),
            }
            quality = b.quality.summary()
        self.history.record(now, point, b.trainer.last_manifest, quality)
        try:
            b.control.write_history(self.history.to_dict())
        except OSError as exc:
            logger.warning("cannot write the builder history: %s", exc)

    def _log_stats(self, now: float) -> None:
        if now - self._last_stats < 10:
            return
        b = self.builder
        rate = (b.events_consumed - self._stats_events) / (now - self._last_stats)
        logger.info(
            "consumed %d events (%.0f/s), window %d, %d users, %d items, %d malformed",
            b.events_consumed,
            rate,
            len(b.window),
            len(b.window.users),
            len(b.window.items),
            b.malformed.total,
        )
        self._last_stats, self._stats_events = now, b.events_consumed
