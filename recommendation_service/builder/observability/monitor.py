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
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import Consumer, KafkaException, TopicPartition

from ...artifacts.control_files import ControlFiles
from .history import BuilderHistory
from .kafka_health import KafkaHealth
from .live_quality import METHODS
from .metrics import BuilderMetrics

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


@dataclass(frozen=True)
class BuilderFigures:
    """One consistent reading of the builder's figures, taken under its lock."""

    #: The builder's own fields of the status file (the monitor adds time, lag, Kafka state).
    status: dict
    window_events: int
    window_users: int
    window_items: int
    window_span: tuple[float, float] | None
    events_consumed: int
    malformed: int
    #: Consecutive failed writes of versions and of update files.
    publish_failures: int
    update_failures: int
    quality: dict
    last_manifest: dict | None


class BuilderView(Protocol):
    """What the monitor sees of its builder (``ModelBuilder``): its figures, the consumer and
    positions it measures lag with, and the two things it may ask of it."""

    consumer: Consumer | None
    positions: dict[tuple[str, int], int]

    def figures(self) -> BuilderFigures: ...

    def queue_refits(self, jobs: list[str]) -> None: ...

    def standby_status(self) -> dict: ...


class BuilderMonitor:
    """Status file, gauges, stats log and API requests of one builder.

    Parameters
    ----------
    builder
        The builder's narrow view.
    control
        The model directory's control files (status, history, standby, refit requests).
    metrics
        The builder's metrics.
    kafka
        The builder's view of the cluster's health (probed while unreachable).
    topic
        The interactions topic (probed before any partition is assigned).
    """

    def __init__(
        self,
        builder: BuilderView,
        control: ControlFiles,
        metrics: BuilderMetrics,
        kafka: KafkaHealth,
        topic: str,
    ) -> None:
        self.builder = builder
        self.control = control
        self.metrics = metrics
        self.kafka = kafka
        self.topic = topic
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
        consumer = self.builder.consumer
        topic, partition = next(iter(self.builder.positions), (self.topic, 0))
        if consumer is not None:
            self.kafka.probe(consumer, topic, partition)
        self._take_training_requests()
        figures = self.builder.figures()
        self._write_status(figures)
        self._update_gauges(figures)
        self._record_history(now, figures)
        self._log_stats(now, figures)

    def _take_training_requests(self) -> None:
        try:
            jobs = self.control.take_training_requests()
        except OSError as exc:
            logger.warning("cannot read training requests: %s", exc)
            return
        if jobs:
            self.builder.queue_refits(jobs)
            logger.info("refit requested through the API (jobs %s)", jobs)

    def status(self, figures: BuilderFigures) -> dict:
        """What the status file says (servers read it for ``/health``)."""
        return {
            "updated_at": time.time(),
            **figures.status,
            "lag": dict(self.lags),
            "kafka": self.kafka.state(self.lag),
            "kafka_unreachable_since": self.kafka.down_since,
        }

    def write_standby(self) -> None:
        """Announce this builder as a standby (at most once a second)."""
        if not self._second_passed(time.monotonic()):
            return
        status = self.builder.standby_status()
        try:
            self.control.write_standby(status["builder_id"], status)
        except OSError as exc:
            logger.warning("cannot write the standby file: %s", exc)

    def _write_status(self, figures: BuilderFigures) -> None:
        try:
            self.control.write_status(self.status(figures))
        except OSError as exc:
            # Servers see the status go stale, which /health reports as degraded.
            logger.warning("cannot write builder status: %s", exc)

    def _update_gauges(self, figures: BuilderFigures | None = None) -> None:
        figures = figures or self.builder.figures()
        m = self.metrics
        m.window_events.set(figures.window_events)
        m.window_users.set(figures.window_users)
        m.window_items.set(figures.window_items)
        m.write_failures.labels("model").set(figures.publish_failures)
        m.write_failures.labels("update").set(figures.update_failures)
        for method in METHODS:
            if method in figures.quality:
                m.live_hit_rate.labels(method).set(figures.quality[method]["hit_rate"])
                m.live_ndcg.labels(method).set(figures.quality[method]["ndcg"])
        consumer = self.builder.consumer
        lag, lags = 0, {}
        for (topic, partition), position in list(self.builder.positions.items()):
            # The cached high watermark comes with every fetch (no extra request).
            tp = TopicPartition(topic, partition)
            try:
                _, high = consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:  # no fetch has reported it yet: ask the broker
                    _, high = consumer.get_watermark_offsets(tp, timeout=1.0)
            except KafkaException:
                continue
            if high >= 0:
                m.lag.labels(topic, str(partition)).set(max(0, high - position))
                lag += max(0, high - position)
                lags[f"{topic}[{partition}]"] = max(0, high - position)
        self.lag, self.lags = lag, lags

    def _record_history(self, now: float, figures: BuilderFigures) -> None:
        """Every few seconds: the counters the dashboard charts, and new refits."""
        if not self.history.due(now):
            return
        span = figures.window_span
        point = {
            "events": figures.events_consumed,
            "malformed": figures.malformed,
            "lag": self.lag,
            "window_events": figures.window_events,
            "window_seconds": None if span is None else round(span[1] - span[0], 3),
        }
        self.history.record(now, point, figures.last_manifest, figures.quality)
        try:
            self.control.write_history(self.history.to_dict())
        except OSError as exc:
            logger.warning("cannot write the builder history: %s", exc)

    def _log_stats(self, now: float, figures: BuilderFigures) -> None:
        if now - self._last_stats < 10:
            return
        rate = (figures.events_consumed - self._stats_events) / (now - self._last_stats)
        logger.info(
            "consumed %d events (%.0f/s), window %d, %d users, %d items, %d malformed",
            figures.events_consumed,
            rate,
            figures.window_events,
            figures.window_users,
            figures.window_items,
            figures.malformed,
        )
        self._last_stats, self._stats_events = now, figures.events_consumed
