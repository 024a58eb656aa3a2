"""The model builder: the worker loop that turns the interactions topic into published models.

One loop iteration is a few named steps: poll a batch, parse each message, apply valid events
to the window (malformed ones are counted and optionally dead-lettered), store the batch's
offsets (only after its events are applied), request a refit every N events, and -- every
``update_interval`` -- publish fresh vectors of the users who had events (fold-in against the
served model), so servers reflect each event within a fraction of a second. Fitting and
publishing happen on :class:`TrainingWorker`'s thread, so consuming never stops for training.

Run exactly one builder per consumer group and model directory: it is the single owner of the
window and of what gets published.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from .config import BuilderConfig
from .control_files import ControlFiles
from .errors import MalformedEvent
from .events import MalformedCounter, parse_event
from .metrics import BuilderMetrics
from .model_store import ModelStore, update_arrays
from .realtime import FoldIn
from .trainer import ALSTrainer
from .training_worker import TrainingWorker
from .window import SlidingWindow, WindowSnapshot
from .window_rebuild import ReplayRange, replay, verify_position

logger = logging.getLogger(__name__)


class ModelBuilder:
    """Consumes interactions, keeps the sliding window, and drives training.

    Parameters
    ----------
    config
        The validated builder configuration.
    """

    def __init__(self, config: BuilderConfig) -> None:
        self.config = config
        self.window = SlidingWindow(config.window, config.decay)
        self.malformed = MalformedCounter()
        self.events_consumed = 0
        self.events_since_refit = 0
        self.store = ModelStore(config.model_dir, keep=config.keep_versions)
        self.control = ControlFiles(self.store)
        self.trainer = TrainingWorker(
            ALSTrainer(config.als),
            self.store,
            self.snapshot,
            config.realtime,
            self._on_published,
            config.ivf,
            config.associations,
        )
        self.metrics = BuilderMetrics()
        self._next_gauges = 0.0
        # Refit jobs asked for through the API: pending -> training -> done (last 100 kept).
        self.jobs: dict[str, dict] = {}
        # Set while librdkafka reports every broker unreachable; cleared by traffic or a probe.
        self.broker_down_since: float | None = None
        # Messages behind the partition end but none arriving: the broker stopped serving.
        self._last_message = time.monotonic()
        self.total_lag = 0
        self._pending_jobs: list[str] = []
        self._training_jobs: list[str] = []
        # Fresh-vector state: the served model's fold-in, users with events not yet written,
        # and users with events since the last snapshot (the next version must redo them).
        self.fold: FoldIn | None = None
        self.fold_version: str | None = None
        self.update_seq = 0
        self.updates_written = 0
        self._dirty: set[str] = set()
        self._since_snapshot: set[str] = set()
        self._next_flush = 0.0
        # (topic, partition) -> offset of the next event to apply; the window holds all before.
        self.positions: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer: Consumer | None = None
        self._dead_letters: Producer | None = None
        self._last_stats = time.monotonic()
        self._stats_events = 0

    # -- shared with the training thread -----------------------------------------------
    def snapshot(self) -> tuple[WindowSnapshot, Mapping[str, Mapping[int, int]]]:
        """The window now, and the offsets it covers (called on the training thread)."""
        with self._lock:
            snap = self.window.snapshot()
            self.events_since_refit = 0
            self._since_snapshot = set()
            self._training_jobs, self._pending_jobs = self._pending_jobs, []
            for job in self._training_jobs:
                self.jobs[job] = {"state": "training", "started_at": time.time()}
            offsets: dict[str, dict[int, int]] = {}
            for (topic, partition), offset in self.positions.items():
                offsets.setdefault(topic, {})[partition] = offset
        return snap, offsets

    def _on_published(self, manifest: dict, fold: FoldIn) -> None:
        """A new version is served: fold later events into it (called on the training thread)."""
        with self._lock:
            self.fold, self.fold_version, self.update_seq = fold, manifest["name"], 0
            self._dirty |= self._since_snapshot
            for job in self._training_jobs:
                self.jobs[job] = {
                    "state": "done",
                    "version": manifest["version"],
                    "finished_at": manifest["created_ts"],
                }
            self._training_jobs = []
            for old in list(self.jobs)[:-100]:
                del self.jobs[old]
        self.metrics.training.observe(manifest["training_seconds"])
        self.metrics.last_publish.set(manifest["created_ts"])
        self.metrics.model_version.set(manifest["version"])

    # -- lifecycle -----------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish its batch, commit and exit (safe from signal handlers)."""
        self._stop.set()

    def run(self) -> None:
        """Consume until :meth:`stop` is called."""
        cfg = self.config
        if cfg.metrics_port:
            try:
                self.metrics.serve(cfg.metrics_host, cfg.metrics_port)
                logger.info(
                    "builder metrics on http://%s:%d/metrics", cfg.metrics_host, cfg.metrics_port
                )
            except OSError as exc:  # metrics are not worth refusing to build models
                logger.error("cannot serve metrics on port %d: %s", cfg.metrics_port, exc)
        self.trainer.start()
        self._consumer = Consumer({**cfg.kafka.consumer_config(), "error_cb": self._on_kafka_error})
        if cfg.kafka.dead_letter_topic:
            self._dead_letters = Producer(cfg.kafka.client_config())
        self._consumer.subscribe(
            [cfg.kafka.topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        logger.info(
            "builder consuming %s from %s (group %s), window %d, refit every %d events",
            cfg.kafka.topic,
            cfg.kafka.bootstrap_servers,
            cfg.kafka.group_id,
            cfg.window,
            cfg.retrain_every,
        )
        try:
            while not self._stop.is_set():
                self._step()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as exc:
                # NO_OFFSET just means nothing new was stored since the last commit.
                if exc.args[0].code() != KafkaError._NO_OFFSET:
                    logger.warning("final offset commit failed: %s", exc)
            consumer.close()
        if self._dead_letters is not None:
            self._dead_letters.flush(10)
        self.trainer.stop()
        logger.info("builder stopped after %d events", self.events_consumed)

    # -- the loop's steps ----------------------------------------------------------------
    def _step(self) -> None:
        # A short timeout: consume() waits for the full batch or the timeout, and every event
        # should reach the servers within a fraction of a second.
        messages = self._consumer.consume(num_messages=5000, timeout=0.02)
        if messages:
            self.broker_down_since = None
            self._last_message = time.monotonic()
            self._apply_batch(messages)
        self._flush_updates()
        if self._dead_letters is not None:
            self._dead_letters.poll(0)
        self._update_gauges()
        self._log_stats()

    def _apply_batch(self, messages: list[Message]) -> None:
        cfg = self.config
        last: dict[tuple[str, int], Message] = {}
        applied = 0
        with self._lock:
            for msg in messages:
                if msg.error():
                    self._on_consume_error(msg)
                    continue
                key = (msg.topic(), msg.partition())
                try:
                    event = parse_event(
                        msg.value(),
                        msg.timestamp()[1] / 1000.0,
                        max_bytes=cfg.max_event_bytes,
                        max_id_length=cfg.max_id_length,
                        actions=cfg.actions,
                    )
                except MalformedEvent as exc:
                    self._on_malformed(msg, exc)
                else:
                    self.window.add(event)
                    self._dirty.add(event.user)
                    self._since_snapshot.add(event.user)
                    applied += 1
                self.positions[key] = msg.offset() + 1
                last[key] = msg
            self.events_consumed += applied
            self.events_since_refit += applied
            due = self.events_since_refit >= cfg.retrain_every
        self.metrics.events.inc(applied)
        self._store_offsets(last.values())
        if due:
            self.trainer.request()

    def _flush_updates(self) -> None:
        """Write fresh vectors of the users with new events, at most every update_interval."""
        now = time.monotonic()
        if now < self._next_flush:
            return
        with self._lock:
            if self.fold is None or not self._dirty:
                return
            fold, version, users, self._dirty = self.fold, self.fold_version, self._dirty, set()
            self.update_seq += 1
            seq = self.update_seq
        # The window only changes on this thread, so reading it needs no lock.
        fresh = [(u, fold.user_vector(h)) for u in users if (h := self.window.user_history(u))]
        fresh = [(u, v) for u, v in fresh if v is not None]
        try:
            if fresh:
                self.store.write_update(version, seq, update_arrays(*map(list, zip(*fresh))))
                self.updates_written += 1
                self.metrics.updates.inc()
        except OSError as exc:
            logger.error("writing update %d of %s failed, will retry: %s", seq, version, exc)
            with self._lock:
                self._dirty |= users
        # While catching up on a backlog, many users change per interval; spacing flushes by
        # four times their cost caps fold-in at a fifth of the time, and users coalesce.
        spent = time.monotonic() - now
        self._next_flush = now + max(self.config.update_interval, 4 * spent)

    def _store_offsets(self, messages) -> None:
        # Stored offsets are committed by auto-commit; they mark events already in the window.
        for msg in messages:
            try:
                self._consumer.store_offsets(message=msg)
            except KafkaException as exc:
                # The partition may have been revoked meanwhile; the next owner replays it.
                logger.warning(
                    "could not store offset %s[%d]@%d: %s",
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    exc,
                )

    def _on_malformed(self, msg: Message, exc: MalformedEvent) -> None:
        where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        self.malformed.record(exc, where)
        self.metrics.malformed.labels(exc.reason).inc()
        if self._dead_letters is None:
            return
        headers = {
            "recsvc-error": exc.reason,
            "recsvc-source": where,
        }
        try:
            self._dead_letters.produce(
                self.config.kafka.dead_letter_topic,
                value=msg.value(),
                key=msg.key(),
                headers=headers,
            )
        except (BufferError, KafkaException) as err:
            logger.warning("dead-letter produce failed for %s: %s", where, err)

    def _on_kafka_error(self, error: KafkaError) -> None:
        """librdkafka's error callback: note outages (it reconnects by itself)."""
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            if self.broker_down_since is None:
                self.broker_down_since = time.time()
                logger.warning("Kafka unreachable (%s); retrying, serving the last model", error)
        elif error.fatal():
            logger.error("fatal Kafka error: %s", error)
        else:
            logger.warning("Kafka error: %s", error)

    #: Seconds without a message while behind the partition end before Kafka counts as stalled.
    STALL_SECONDS = 30.0

    def _kafka_state(self) -> str:
        if self.broker_down_since is not None:
            return "unreachable"
        if self.total_lag > 0 and time.monotonic() - self._last_message > self.STALL_SECONDS:
            return "stalled"
        return "ok"

    def _probe_broker(self) -> None:
        """While marked down, check cheaply whether the cluster answers again."""
        # A watermark query needs a broker round trip (metadata may come from a cache).
        partitions = list(self.positions) or [(self.config.kafka.topic, 0)]
        topic, partition = partitions[0]
        try:
            self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=1.0)
        except KafkaException:
            return
        logger.info("Kafka reachable again")
        self.broker_down_since = None

    def _on_consume_error(self, msg: Message) -> None:
        error = msg.error()
        logger.warning(
            "consume error on %s[%s]@%s: %s", msg.topic(), msg.partition(), msg.offset(), error
        )
        if error.fatal():
            raise KafkaException(error)

    def _update_gauges(self) -> None:
        now = time.monotonic()
        if now < self._next_gauges:
            return
        self._next_gauges = now + 1.0
        if self.broker_down_since is not None:
            self._probe_broker()
        self._take_training_requests()
        self._write_status()
        m = self.metrics
        m.window_events.set(len(self.window))
        m.window_users.set(len(self.window.users))
        m.window_items.set(len(self.window.items))
        lag = 0
        for (topic, partition), position in list(self.positions.items()):
            # The cached high watermark comes with every fetch (no extra request).
            tp = TopicPartition(topic, partition)
            try:
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:  # no fetch has reported it yet: ask the broker
                    _, high = self._consumer.get_watermark_offsets(tp, timeout=1.0)
            except KafkaException:
                continue
            if high >= 0:
                m.lag.labels(topic, str(partition)).set(max(0, high - position))
                lag += max(0, high - position)
        self.total_lag = lag

    def _take_training_requests(self) -> None:
        try:
            jobs = self.control.take_training_requests()
        except OSError as exc:
            logger.warning("cannot read training requests: %s", exc)
            return
        if jobs:
            with self._lock:
                self._pending_jobs += jobs
                for job in jobs:
                    self.jobs[job] = {"state": "queued", "queued_at": time.time()}
            logger.info("refit requested through the API (jobs %s)", jobs)
            self.trainer.request()

    def _write_status(self) -> None:
        last = self.trainer.last_manifest
        with self._lock:
            status = {
                "updated_at": time.time(),
                "training": self.trainer.training,
                "events_consumed": self.events_consumed,
                "events_since_refit": self.events_since_refit,
                "retrain_every": self.config.retrain_every,
                "next_refit_after_events": max(
                    0, self.config.retrain_every - self.events_since_refit
                ),
                "window_events": len(self.window),
                "offsets": {f"{t}[{p}]": o for (t, p), o in self.positions.items()},
                "kafka": self._kafka_state(),
                "kafka_unreachable_since": self.broker_down_since,
                "last_refit": None
                if last is None
                else {
                    "version": last["version"],
                    "at": last["created_ts"],
                    "training_seconds": last["training_seconds"],
                },
                "jobs": dict(self.jobs),
            }
        try:
            self.control.write_status(status)
        except OSError as exc:
            logger.warning("cannot write builder status: %s", exc)

    def _log_stats(self) -> None:
        now = time.monotonic()
        if now - self._last_stats < 10:
            return
        rate = (self.events_consumed - self._stats_events) / (now - self._last_stats)
        logger.info(
            "consumed %d events (%.0f/s), window %d, %d users, %d items, %d malformed",
            self.events_consumed,
            rate,
            len(self.window),
            len(self.window.users),
            len(self.window.items),
            self.malformed.total,
        )
        self._last_stats, self._stats_events = now, self.events_consumed

    # -- rebalance callbacks -------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        cfg = self.config
        committed = consumer.committed(partitions, timeout=30)
        reset_latest = str(cfg.kafka.consumer_config()["auto.offset.reset"]) in ("latest", "end")
        ranges = []
        for tp in committed:
            key = (tp.topic, tp.partition)
            if key in self.positions:
                # Our window already holds this partition up to our own position, unless the
                # broker lost it meanwhile: then everything it holds now is new.
                try:
                    intact = verify_position(cfg.kafka, tp.topic, tp.partition, self.positions[key])
                except TimeoutError as exc:  # cannot tell: keep what we have
                    logger.error("could not verify %s[%d]: %s", tp.topic, tp.partition, exc)
                    intact = True
                if intact:
                    tp.offset = self.positions[key]
                    continue
                low, _ = consumer.get_watermark_offsets(tp, timeout=30)
                logger.warning(
                    "%s[%d] no longer holds offset %d: the broker lost data; consuming it "
                    "from offset %d as new events",
                    tp.topic,
                    tp.partition,
                    self.positions[key],
                    low,
                )
                self.positions[key] = tp.offset = low
                continue
            low, high = consumer.get_watermark_offsets(tp, timeout=30)
            if tp.offset >= 0:
                end = max(tp.offset, low)
            else:  # no committed offset yet: start where auto.offset.reset says
                end = high if reset_latest else low
            ranges.append(ReplayRange(tp.topic, tp.partition, low, end))
        result = replay(
            cfg.kafka,
            ranges,
            cfg.window,
            max_bytes=cfg.max_event_bytes,
            max_id_length=cfg.max_id_length,
        )
        with self._lock:
            for event in result.events:
                self.window.add(event)
            self.positions.update(result.resume)
        for tp in committed:
            tp.offset = self.positions[(tp.topic, tp.partition)]
        consumer.assign(committed)
        logger.info(
            "assigned %s; window rebuilt with %d events",
            [f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in committed],
            len(result.events),
        )
        if result.events:
            self.trainer.request()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                logger.warning("offset commit on revoke failed: %s", exc)
        logger.info("revoked %s", [f"{tp.topic}[{tp.partition}]" for tp in partitions])
