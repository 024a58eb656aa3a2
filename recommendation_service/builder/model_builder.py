"""The model builder: the worker loop that turns the interactions topic into published models.

One loop iteration is a few named steps: poll a batch, parse each message, apply valid events
to the window (malformed ones are counted and optionally dead-lettered), store the batch's
offsets (only after its events are applied), request a refit every N events, and -- every
``update_interval`` -- publish fresh vectors of the users who had events (fold-in against the
served model), so servers reflect each event within a fraction of a second. Fitting and
publishing happen on :class:`TrainingWorker`'s thread, so consuming never stops for training.
Beside it: ``monitor.py`` (status, gauges, refit requests), ``fresh_updates.py``,
``dead_letters.py``, ``kafka_health.py``, ``window_rebuild.py`` (the window on assignment) and
``lease.py`` / ``kafka_lease.py``: one builder is active (per model directory, or across hosts
through Kafka), others stand by without joining the consumer group, and the first to get the
lease when the active one ends takes over. A builder that loses the Kafka lease steps down:
:meth:`ModelBuilder.run` returns True, and the command stands by again with a new builder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from ..artifacts.control_files import ControlFiles
from ..artifacts.object_store import ObjectStore
from ..artifacts.store import ModelStore
from ..artifacts.store_sync import StoreSync
from ..common.threads import StopFlag, place_process
from ..config.builder import BuilderConfig
from ..data.events import MalformedCounter
from ..data.window import SlidingWindow, WindowSnapshot
from ..training.fold_in import FoldIn
from ..training.trainers import make_trainer
from .catalog_consumer import CatalogConsumer
from .dead_letters import DeadLetters
from .erasures import BuilderErasures
from .event_batches import EventBatches
from .fresh.publisher import UpdatePublisher
from .fresh.updates import FreshUpdates
from .lease.directory_lease import new_builder_id
from .lease.takeover import Takeover
from .observability.attribution_tracker import AttributionTracker
from .observability.kafka_health import KafkaHealth
from .observability.live_quality import LiveQuality
from .observability.metrics import BuilderMetrics
from .observability.monitor import BuilderFigures, BuilderMonitor, RefitJobs
from .refits.training_worker import TrainingWorker
from .window_rebuild import plan_assignment, replay

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
        self.builder_id = new_builder_id()
        self.started_at = time.time()
        self.active_since: float | None = None
        self.window = SlidingWindow(config.window, config.decay)
        self.malformed = MalformedCounter()
        self.events_consumed = 0
        self.events_since_refit = 0
        #: Offsets deleted by retention or DeleteRecords before this builder read them.
        self.offsets_skipped = 0
        self.store = ModelStore(config.model_dir, keep=config.keep_versions, writer=self.builder_id)
        self.control = ControlFiles(self.store)
        # Set by SIGTERM/SIGINT handlers: a StopFlag, never a lock-taking Event.
        self._stop = StopFlag()
        self.takeover = Takeover(config, self.builder_id, self.store, self._stop)
        self.lease = self.takeover.lease
        trainer = make_trainer(
            config.trainer, config.als, config.spark_master, config.spark_scratch_dir
        )
        self.trainer = TrainingWorker(
            trainer, self.store, self.snapshot, config.realtime, self._on_published,
            config.ann, config.associations, config.tuning, sequence=config.sequence,
            ranker=config.ranker, niceness=config.train_niceness,
        )  # fmt: skip
        self.metrics = BuilderMetrics()
        self.quality = LiveQuality(config.live_quality)
        self.kafka = KafkaHealth()
        self.dead_letters = DeadLetters(self.malformed, self.metrics)
        self.monitor = BuilderMonitor(
            self, self.control, self.metrics, self.kafka, config.kafka.topic
        )
        # Guards what the training thread reads when it snapshots and writes when it
        # publishes: the window, positions, refit jobs and the fresh-vector state.
        self.lock = threading.Lock()
        self.jobs = RefitJobs()
        self.fresh = FreshUpdates(self.store, config.update_interval, self.metrics)
        self.sequence: tuple | None = None  # the served version's rules, for live quality
        # (topic, partition) -> offset of the next event to apply; the window holds all before.
        self.positions: dict[tuple[str, int], int] = {}
        self.erasures = BuilderErasures(config)
        self.batches = EventBatches(
            config, self.window, self.quality, self.fresh, self.dead_letters, self.positions,
            self._on_consume_error, self.erasures.ledger,
        )  # fmt: skip
        self.consumer: Consumer | None = None
        self.catalog: CatalogConsumer | None = None
        self.tracker: AttributionTracker | None = None
        self.store_sync: StoreSync | None = None
        self.publisher: UpdatePublisher | None = None  # fresh vectors for other hosts

    # -- shared with the training thread -----------------------------------------------
    def snapshot(self) -> tuple[WindowSnapshot, Mapping[str, Mapping[int, int]]]:
        """The window now, and the offsets it covers (called on the training thread)."""
        with self.lock:
            snap = self.window.snapshot()
            self.events_since_refit = 0
            self.fresh.snapshot_taken()
            self.jobs.start()
            offsets: dict[str, dict[int, int]] = {}
            for (topic, partition), offset in self.positions.items():
                offsets.setdefault(topic, {})[partition] = offset
        return snap, offsets

    def _on_published(
        self, manifest: dict, fold: FoldIn, successors=None, rank_stage=None
    ) -> None:
        """A new version is served: fold later events into it, and score live quality as it
        answers (called on the training thread)."""
        with self.lock:
            self.sequence = None if successors is None else successors.scorer()
            self.quality.serve(rank_stage)
            self.fresh.version_published(manifest, fold)
            self.jobs.finish(manifest)
        if self.store_sync is not None:
            self.store_sync.kick()
        self.metrics.training.observe(manifest["training_seconds"])
        self.metrics.last_publish.set(manifest["created_ts"])
        self.metrics.model_version.set(manifest["version"])

    # -- what the monitor sees -----------------------------------------------------------
    @property
    def updates_written(self) -> int:
        return self.fresh.written

    def figures(self) -> BuilderFigures:
        """One consistent reading of this builder's figures (the monitor's view of it)."""
        last = self.trainer.last_manifest
        with self.lock:
            span = self.window.span()
            quality = self.quality.summary()
            idle = last is None and self.events_consumed == 0
            status = {
                "builder_id": self.builder_id,
                "role": "active",
                "lease": self.lease.status(),
                "active_since": self.active_since,
                "phase": "waiting_for_events" if idle else "consuming",
                "training": self.trainer.training,
                "events_consumed": self.events_consumed,
                "events_since_refit": self.events_since_refit,
                "retrain_every": self.config.retrain_every,
                "next_refit_after_events": max(
                    0, self.config.retrain_every - self.events_since_refit
                ),
                "window_events": len(self.window),
                "window_span": span,
                "malformed": self.malformed.total,
                "offsets": {f"{t}[{p}]": o for (t, p), o in self.positions.items()},
                "offsets_skipped": self.offsets_skipped,
                "publish": self.trainer.publish_failures.status(),
                "update_files": self.fresh.failures.status(),
                "last_refit": None if last is None else {
                    "version": last["version"],
                    "at": last["created_ts"],
                    "training_seconds": last["training_seconds"],
                },
                "jobs": dict(self.jobs.states),
                "live_quality": quality,
                "catalog": None if self.catalog is None else self.catalog.status(),
                "model_store": None if self.store_sync is None else dict(self.store_sync.state),
                "updates_topic": None if self.publisher is None else self.publisher.status(),
                "erasures": self.erasures.status(),
            }  # fmt: skip
            return BuilderFigures(
                status, len(self.window), len(self.window.users), len(self.window.items), span,
                self.events_consumed, self.malformed.total,
                self.trainer.publish_failures.consecutive, self.fresh.failures.consecutive,
                quality, last,
            )  # fmt: skip

    def queue_refits(self, jobs: list[str]) -> None:
        """Refits asked for through the API: queue them and wake the training thread."""
        with self.lock:
            self.jobs.queue(jobs)
        self.trainer.request()

    def standby_status(self) -> dict:
        """What this builder's standby file says while it waits for the lease."""
        return self.takeover.standby_status()

    # -- lifecycle -----------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish its batch, commit and exit (safe from signal handlers)."""
        self._stop.set()

    def run(self) -> bool:
        """Stand by until this builder holds the lease, then consume until stopped.

        Returns
        -------
        bool
            True when it stopped because it lost the lease (the caller stands by again).
        """
        # implicit loads a BLAS of its own (scipy's): load it first, so the limit covers it.
        import implicit.cpu.als  # noqa: F401
        from threadpoolctl import threadpool_limits

        # Fold-ins and live scoring are small matrix products on the consumer thread; BLAS
        # threads would only spin beside it (they tripled the builder's CPU per event). This
        # thread then owns OpenBLAS's settings (threadpoolctl >= 3.6): the training thread's
        # own limit is a no-op, and the libraries are already at one thread.
        threadpool_limits(1, "blas")
        # Before any thread starts: each inherits the builder's niceness and CPUs.
        place_process(self.config.niceness, self.config.cpus)
        takeover = self.takeover
        try:
            standby = (
                self.monitor.write_standby,
                lambda: self.control.remove_standby(self.builder_id),
            )
            if takeover.acquire(*standby) and takeover.claim_store():
                self.active_since = time.time()
                self._run_active()
        finally:
            self.lease.release()
        return takeover.stepped_down

    def _run_active(self) -> None:
        cfg = self.config
        # Servers read the status from the start, not only after the first model.
        self.monitor.tick()
        if cfg.metrics_port:
            try:
                self.metrics.serve(cfg.metrics_host, cfg.metrics_port)
                logger.info("builder metrics on %s:%d/metrics", cfg.metrics_host, cfg.metrics_port)
            except OSError as exc:  # metrics are not worth refusing to build models
                logger.error("cannot serve metrics on port %d: %s", cfg.metrics_port, exc)
        # Every erasure already recorded is known before a window is rebuilt from the topic.
        self.erasures.start()
        if not self.erasures.catch_up(self._stop.is_set):
            self.erasures.stop()
            return
        # Into the ledger now: the first poll may assign partitions, and the replay that
        # rebuilds the window runs inside it, before the loop's own apply step.
        self.erasures.apply(self.window, self.fresh, self.lock, self._forgotten)
        self.trainer.start()
        if cfg.catalog_topic:
            malformed = self.dead_letters.record
            self.catalog = CatalogConsumer(cfg, self.store.root, malformed, self.lock)
            self.catalog.start()
        if cfg.model_store is not None:  # servers on other hosts read the versions there
            shared = self.takeover.shared or ObjectStore(cfg.model_store)
            sync = StoreSync(self.store.root, shared, upload=True, fence=self.takeover.fence)
            self.store_sync = sync.start()
        if cfg.updates_topic:
            self.publisher = UpdatePublisher(cfg.kafka, cfg.updates_topic)
            if self.lease.generation is not None:
                # Before any update of this generation: servers then drop older ones.
                try:
                    self.publisher.fence(self.lease.generation, self.builder_id)
                except KafkaException as exc:  # step down: a standby may do better
                    self.lease.lose(f"cannot fence the updates topic: {exc}")
                self.publisher.guard = self.lease.valid
            self.metrics.registry.register(self.publisher)
        if cfg.impressions_topic:  # attribution: clicks and purchases per list, variant
            self.tracker = AttributionTracker(cfg, self.store.root).start()
            self.metrics.registry.register(self.tracker)
        self.consumer = Consumer({**cfg.kafka.consumer_config(), "error_cb": self.kafka.on_error})
        self.dead_letters.open(cfg.kafka)
        topics = [cfg.kafka.topic]
        self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        logger.info(
            "builder consuming %s from %s (group %s), window %d, refit every %d events",
            *(cfg.kafka.topic, cfg.kafka.bootstrap_servers, cfg.kafka.group_id),
            *(cfg.window, cfg.retrain_every),
        )
        try:
            while not self._stop.is_set() and self.lease.lost is None:
                self._step()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        consumer, self.consumer = self.consumer, None
        if self.lease.lost is not None:
            logger.warning("builder %s steps down: %s", self.builder_id, self.lease.lost)
        if consumer is not None and self.lease.lost is None:
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as exc:
                # NO_OFFSET just means nothing new was stored since the last commit.
                if exc.args[0].code() != KafkaError._NO_OFFSET:
                    logger.warning("final offset commit failed: %s", exc)
        if consumer is not None:  # leaves the group: the successor gets every partition
            consumer.close()
        for side in (self.catalog, self.tracker, self.store_sync, self.publisher, self.erasures):
            if side is not None:
                side.stop()
        self.dead_letters.close()
        self.trainer.stop()
        self.metrics.close()
        logger.info("builder stopped after %d events", self.events_consumed)

    # -- the loop's steps ----------------------------------------------------------------
    def _step(self) -> None:
        # A short timeout: consume() waits for the full batch or the timeout, and every event
        # should reach the servers within a fraction of a second.
        messages = self.consumer.consume(num_messages=5000, timeout=0.02)
        if messages:
            self.kafka.records_arrived()
            self._apply_batch(messages)
        if self.erasures.apply(self.window, self.fresh, self.lock, self._forgotten):
            self.trainer.request()  # the next version must have no row for them
        self.fresh.flush(self.window, self.lock, self.publisher)
        self.dead_letters.poll()
        self.monitor.tick()

    def _apply_batch(self, messages: list[Message]) -> None:
        with self.lock:
            done = self.batches.apply(messages, self.sequence)
            self.events_consumed += done.applied
            self.events_since_refit += done.applied
            due = self.events_since_refit >= self.config.retrain_every
        self.metrics.events.inc(done.applied)
        self.metrics.live_scored.inc(done.scored)
        self._store_offsets(done.last.values())
        if due:
            self.trainer.request()

    def _forgotten(self, user: str) -> None:
        if self.publisher is not None:
            self.publisher.forget(user)

    def _store_offsets(self, messages) -> None:
        # Stored offsets are committed by auto-commit; they mark events already in the window.
        for msg in messages:
            try:
                self.consumer.store_offsets(message=msg)
            except KafkaException as exc:
                # The partition may have been revoked meanwhile; the next owner replays it.
                where = (msg.topic(), msg.partition(), msg.offset())
                logger.warning("could not store offset %s[%d]@%d: %s", *where, exc)

    def _on_consume_error(self, msg: Message) -> None:
        error = msg.error()
        logger.warning(
            "consume error on %s[%s]@%s: %s", msg.topic(), msg.partition(), msg.offset(), error
        )
        if error.fatal():
            raise KafkaException(error)

    # -- rebalance callbacks -------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        cfg = self.config
        committed = consumer.committed(partitions, timeout=30)
        resume, ranges, skipped = plan_assignment(consumer, committed, cfg.kafka, self.positions)
        result = replay(
            cfg.kafka,
            ranges,
            cfg.window,
            max_bytes=cfg.max_event_bytes,
            max_id_length=cfg.max_id_length,
            erased=self.erasures.ledger.covers,
        )
        with self.lock:
            for event in result.events:
                self.window.add(event)
            self.offsets_skipped += sum(skipped.values())
            self.positions.update(resume)
            self.positions.update(result.resume)
        for tp in committed:
            tp.offset = self.positions[(tp.topic, tp.partition)]
        consumer.assign(committed)
        where = [f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in committed]
        logger.info("assigned %s; window rebuilt with %d events", where, len(result.events))
        if result.events:
            self.trainer.request()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                logger.warning("offset commit on revoke failed: %s", exc)
        logger.info("revoked %s", [f"{tp.topic}[{tp.partition}]" for tp in partitions])
