"""One active builder across hosts: the owner of a one-partition lease topic's partition.

Builders that share no disk (``--model-store s3://...``) coordinate through Kafka. Every
builder joins the consumer group ``<group>-lease`` on the one-partition topic of the same name;
the group coordinator gives that partition to exactly one member at a time, and takes it away
when the member's session times out (killed, stopped, cut off) or it leaves. The owner then
**claims** the lease by appending a record to the topic: the record's offset is its
**generation**, larger than any earlier claim's. Standbys stay in the lease group only; they
never join the interactions group while they wait.

Everything the active builder publishes carries its generation, and everything shared is
fenced by it (builder/lease_fencing.py): ``CURRENT`` in the object store is replaced only
through a conditional write on the ETag this builder last wrote, and the updates topic gets a
fence record on every partition, after which servers drop records of older generations.

On this side the builder holds a lease only while it can show it: a thread checks every half
second that no newer claim exists (the partition's end offset), and :meth:`KafkaLease.valid`
is false once no check has succeeded for half the session timeout, so a builder that was
paused or cut off stops writing on its own before a successor can have been chosen. It steps
down (:attr:`KafkaLease.lost`) when its partition is revoked or lost, or a newer claim shows.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from ...common.log_limits import RateLimitedLog
from ...common.single_partition_topics import TooManyPartitions, ensure_single_partition_topic
from ...config.kafka import KafkaSettings
from ...errors import ConfigError

logger = logging.getLogger(__name__)

#: How often the holder confirms that no newer claim exists.
CHECK_SECONDS = 0.5


def lease_topic_for(group_id: str) -> str:
    return f"{group_id}-lease"


def ensure_lease_topic(kafka: KafkaSettings, topic: str, timeout: float = 15.0) -> None:
    """Create the lease topic with one partition unless it exists.

    Raises
    ------
    ConfigError
        If it exists with more than one partition: each partition would have an owner.
    KafkaException
        If the cluster cannot be reached.
    """
    try:
        if ensure_single_partition_topic(kafka.client_config(), topic, timeout=timeout):
            logger.info("created the builder lease topic %s (one partition)", topic)
    except TooManyPartitions as exc:
        raise ConfigError(
            f"the lease topic {topic} has {exc.partitions} partitions; it needs exactly one "
            "(delete it, or give the builders another --group-id)"
        ) from exc


class KafkaLease:
    """The builder lease held through Kafka (see the module docstring).

    Parameters
    ----------
    kafka
        The cluster; its group id names the lease group and topic (``<group>-lease``).
    builder_id
        This process's id: the lease group member's client id and the claim's content.
    timeout
        The lease group's session timeout in seconds: how long after a builder stops
        heartbeating (killed, paused, cut off) a standby is given the lease.
    """

    kind = "kafka"

    def __init__(self, kafka: KafkaSettings, builder_id: str, timeout: float = 6.0) -> None:
        self.kafka, self.builder_id, self.timeout = kafka, builder_id, timeout
        self.topic = lease_topic_for(kafka.group_id)
        self.host = socket.gethostname()
        #: The offset of this builder's claim record, once it claimed the lease.
        self.generation: int | None = None
        #: Why the lease was lost (None while held or never held).
        self.lost: str | None = None
        self._assigned = False
        self._confirmed = 0.0  # monotonic time of the last check that found no newer claim
        self._checked = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._warn = RateLimitedLog(logger).warning

    # -- what the builder asks -----------------------------------------------------------
    @property
    def held(self) -> bool:
        return self.generation is not None and self.lost is None

    def try_acquire(self) -> bool:
        """True once this builder has claimed the lease (the thread claims it when assigned)."""
        if self._thread is not None and not self._thread.is_alive() and self.generation is None:
            self._thread = None  # its thread failed while standing by: join the group again
        if self._thread is None and not self._stop.is_set():
            try:
                self._start()
            except KafkaException as exc:  # cut off or down: a standby waits, and tries again
                self._warn("cannot join the builder lease group yet: %s", exc)
                self._consumer = self._producer = None
                return False
        return self.held

    def valid(self) -> bool:
        """Whether writing now is safe: held, and confirmed within half the session timeout."""
        return self.held and time.monotonic() - self._confirmed < self.timeout / 2

    def holder(self) -> str | None:
        return None  # the active builder names itself in its status, read through the store

    def status(self) -> dict:
        return {"kind": self.kind, "topic": self.topic, "generation": self.generation,
                "host": self.host, "session_timeout": self.timeout,
                "valid": self.valid(), "lost": self.lost}  # fmt: skip

    def release(self) -> None:
        """Leave the lease group (a standby is given the lease at once) and stop the thread."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(15)

    def lose(self, why: str) -> None:
        """Record that the lease is gone (from the thread, or a writer that was fenced)."""
        if self._stop.is_set():  # released: leaving the group revokes the partition
            self.lost = self.lost or "released"
            return
        if self.lost is None and self.generation is not None:
            logger.error("builder %s lost the lease (generation %d): %s",
                         self.builder_id, self.generation, why)  # fmt: skip
            self.lost = why

    # -- the lease thread ----------------------------------------------------------------
    def _start(self) -> None:
        ensure_lease_topic(self.kafka, self.topic)
        timeout_ms = int(self.timeout * 1000)
        config = {
            **self.kafka.consumer_config(self.kafka.group_id + "-lease"),
            "client.id": self.builder_id,
            "session.timeout.ms": timeout_ms,
            "heartbeat.interval.ms": max(100, timeout_ms // 10),
            # Sticky: a standby joining does not move the partition away from its owner.
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
            "error_cb": self._on_error,
        }
        self._consumer = Consumer(config)
        self._producer = Producer(
            {**self.kafka.client_config(), "acks": "all", "error_cb": self._on_error}
        )
        self._consumer.subscribe(
            [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )  # fmt: skip
        self._thread = threading.Thread(target=self._run, name="builder-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        consumer = self._consumer
        try:
            while not self._stop.is_set():
                consumer.poll(0.1)  # heartbeats run on librdkafka's thread; this serves callbacks
                if self._assigned and self.generation is None and self.lost is None:
                    self._claim()
                if self.held and time.monotonic() - self._checked >= CHECK_SECONDS:
                    self._check()
                silent = time.monotonic() - self._confirmed
                if self.held and silent > 1.5 * self.timeout:
                    # Its session has expired at the broker by now: a standby may hold the lease.
                    self.lose(f"no contact with the cluster for {silent:.0f} s")
        except Exception as exc:  # never leave a builder active on a lease nobody watches
            logger.exception("the builder lease thread failed")
            self.lose(f"the lease thread failed: {exc}")
        finally:
            consumer.close()  # leaves the group: a standby is given the partition now
            self._producer.flush(5)

    def _claim(self) -> None:
        claim = {"builder_id": self.builder_id, "host": self.host, "at": time.time()}
        offsets: list[int] = []

        def delivered(err, msg) -> None:
            if err is None:
                offsets.append(msg.offset())
            else:
                self._warn("cannot claim the builder lease on %s: %s", self.topic, err)

        self._producer.produce(
            self.topic, json.dumps(claim).encode(), b"claim", partition=0, on_delivery=delivered
        )
        self._producer.flush(self.timeout)
        if offsets:
            self._confirmed = self._checked = time.monotonic()
            self.generation = offsets[0]
            logger.info("builder %s holds the lease %s, generation %d",
                        self.builder_id, self.topic, self.generation)  # fmt: skip

    def _check(self) -> None:
        started = self._checked = time.monotonic()
        try:
            _, end = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, 0), timeout=1.0, cached=False
            )
        except KafkaException as exc:
            self._warn("cannot confirm the builder lease: %s", exc)
            return
        if end > self.generation + 1:
            self.lose(f"a newer claim was made on {self.topic} (end offset {end})")
        else:
            self._confirmed = started

    def _on_assign(self, consumer, partitions) -> None:
        if any(tp.partition == 0 for tp in partitions):
            self._assigned = True

    def _on_revoke(self, consumer, partitions) -> None:
        if any(tp.partition == 0 for tp in partitions):
            self._assigned = False
            self.lose("the lease partition was revoked")

    def _on_lost(self, consumer, partitions) -> None:
        self._assigned = False
        self.lose("the lease group session was lost (paused or cut off for too long)")

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._warn("builder lease %s: all brokers down", self.topic)
