"""A single-node Apache Kafka broker (KRaft, combined broker and controller) as a child process.

Nothing to install by hand: the Java runtime is the user's Java 17+ or the pip one
(:mod:`~recommendation_service.common.java_runtime`), and the jars are fetched once from a
pinned list (:mod:`~recommendation_service.sandbox.kafka_jars`). Storage is formatted on first
start; the log survives :meth:`~BrokerProcess.stop` and :meth:`~BrokerProcess.start` (a
restarted broker has its topics and group offsets), and a temporary data directory is removed
on :meth:`ApacheKafkaBroker.close`.
"""

from __future__ import annotations

import base64
import logging
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

from ..common.java_runtime import find_java
from ..errors import BrokerError
from .broker_process import BrokerProcess
from .kafka_jars import DEFAULT_REPOSITORY, KAFKA_VERSION, default_libs_dir, ensure_kafka_jars
from .kafka_security import BROKER_USER, SaslSsl

logger = logging.getLogger(__name__)

#: The broker's JVM heap unless ``--kafka-heap`` says otherwise: room for the demo's and the
#: tests' topics on a laptop (docs/measured.md has its resident memory).
DEFAULT_HEAP = "512m"
_HEAP = re.compile(r"^[1-9]\d*[mMgG]$")


def check_heap(heap: str) -> str:
    """``heap`` if it is a JVM size such as ``512m`` or ``2g``.

    Raises
    ------
    BrokerError
        Otherwise, saying what is expected.
    """
    if not _HEAP.match(heap):
        raise BrokerError(f"broker heap {heap!r}: expected a size such as 256m, 512m or 2g")
    return heap


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ApacheKafkaBroker(BrokerProcess):
    """Apache Kafka, one node in KRaft mode, its log in ``data_dir``.

    Parameters
    ----------
    host, port
        The client listener. The controller listener takes another free port.
    log_file
        Where the broker's output goes (discarded when None).
    data_dir
        Log and metadata directory; a temporary one, removed on :meth:`close`, when None.
    libs_dir
        Cache of the jars (:func:`default_libs_dir` when None); fetched on first start.
    repository
        The Maven repository the jars are fetched from when the cache lacks them.
    heap
        JVM heap size (``-Xmx``, :data:`DEFAULT_HEAP`).
    security
        SASL_SSL material and users (kafka_security.py): the client listener then speaks
        SASL_SSL only. None: PLAINTEXT.
    """

    description = f"Apache Kafka {KAFKA_VERSION} (KRaft, single node)"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        *,
        log_file: Path | None = None,
        data_dir: Path | None = None,
        libs_dir: Path | None = None,
        repository: str = DEFAULT_REPOSITORY,
        heap: str = DEFAULT_HEAP,
        security: SaslSsl | None = None,
    ) -> None:
        super().__init__(host, port, log_file)
        self.security = security
        self._owns_data = data_dir is None
        self.data_dir = (
            Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="recsvc-kafka-"))
        )
        self.libs_dir = Path(libs_dir) if libs_dir else default_libs_dir()
        self.repository = repository
        self.heap = check_heap(heap)
        self.controller_port: int | None = None

    def _properties(self) -> str:
        host, log_dir = self.host, self.data_dir / "log"
        client = "PLAINTEXT" if self.security is None else "SASL_SSL"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{host}:{self.controller_port}",
            "listeners": f"{client}://{host}:{self.port},CONTROLLER://{host}:{self.controller_port}",
            "advertised.listeners": f"{client}://{host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": client,
            "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{client}:{client}",
            "log.dirs": str(log_dir),
            "num.partitions": "1",
            # One node: the internal topics cannot have more than one replica.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # A first consumer should not wait 3 s for others that will never come.
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            **({} if self.security is None else self.security.listener_properties(client)),
        }
        return "".join(f"{k}={v}\n" for k, v in settings.items())

    def _prepare(self) -> None:
        java = str(find_java().java)
        libs = ensure_kafka_jars(self.libs_dir, self.repository)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        meta = self.data_dir / "controller-port"
        # The controller's address is part of the formatted metadata: keep it across restarts.
        if meta.exists():
            self.controller_port = int(meta.read_text())
        else:
            self.controller_port = _free_port(self.host)
            meta.write_text(str(self.controller_port))
        config = self.data_dir / "server.properties"
        config.write_text(self._properties())
        self._java = [
            java, f"-Xmx{self.heap}", "-Xss1m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=" + ("info" if self.log_file else "warn"),
            "-cp", f"{libs}/*",
        ]  # fmt: skip
        if (self.data_dir / "log" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # One id in 64 starts with "-": as a separate argument it would parse as an option.
        done = subprocess.run(
            [*self._java, "kafka.tools.StorageTool", "format", "--standalone",
             f"--cluster-id={cluster_id}", "-c", str(config),
             *([] if self.security is None else self.security.scram_arguments())],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise BrokerError(
                f"formatting Kafka storage failed:\n{(done.stdout + done.stderr)[-2000:]}"
            )

    def _command(self) -> list[str]:
        return [*self._java, "kafka.Kafka", str(self.data_dir / "server.properties")]

    @property
    def client_options(self) -> dict[str, str]:
        """What a client needs beyond the bootstrap servers: SASL_SSL as the broker's own
        user when the listener is secured (tests: ``security.client_options(user)``)."""
        if self.security is None:
            return {}
        return self.security.client_options(BROKER_USER)

    def close(self) -> None:
        self.stop()
        if self._owns_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
