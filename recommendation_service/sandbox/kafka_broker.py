"""A single-node Apache Kafka broker (KRaft, combined broker and controller) as a child process.

Nothing to install but Java 17+: the jars of ``org.apache.kafka:kafka_2.13`` and its
dependencies are fetched once from Maven Central with Maven (``mvn
dependency:copy-dependencies`` on a pom shipped in this package) into a cache directory.
Storage is formatted on first start; the log survives :meth:`~BrokerProcess.stop` and
:meth:`~BrokerProcess.start` (a restarted broker has its topics and group offsets), and a
temporary data directory is removed on :meth:`ApacheKafkaBroker.close`.
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
from importlib import resources
from pathlib import Path

from ..errors import BrokerError
from .broker_process import BrokerProcess
from .kafka_security import BROKER_USER, SaslSsl

logger = logging.getLogger(__name__)

#: The Apache Kafka release the broker runs (the pom's default, passed to Maven explicitly).
KAFKA_VERSION = "4.1.1"
MIN_JAVA = 17

_JAVA_HINT = (
    "install a Java 17+ runtime (Debian/Ubuntu: apt-get install openjdk-17-jre-headless; "
    "macOS: brew install openjdk@17) or use the embedded broker (--engine tansu)"
)


def default_libs_dir() -> Path:
    """Where the jars are cached unless told otherwise: ``~/.cache/recsvc/kafka-<version>``."""
    return Path.home() / ".cache" / "recsvc" / f"kafka-{KAFKA_VERSION}"


def java_binary() -> str:
    """The ``java`` on PATH, checked to be version 17 or newer.

    Raises
    ------
    BrokerError
        If there is none, or it is older, with what to install.
    """
    java = shutil.which("java")
    if java is None:
        raise BrokerError(f"Apache Kafka needs Java, and there is no java on PATH: {_JAVA_HINT}")
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"cannot run {java} -version: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if match is None:
        raise BrokerError(f"cannot tell the version of {java} ({out.strip()[:200]!r})")
    major = int(match.group(1))
    if major == 1:  # "1.8.0_..." style
        major = int(match.group(2) or 0)
    if major < MIN_JAVA:
        raise BrokerError(
            f"Apache Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+, {java} is "
            f"Java {major}: {_JAVA_HINT}"
        )
    return java


def kafka_jars_present(libs_dir: Path) -> bool:
    return any(libs_dir.glob(f"kafka_2.13-{KAFKA_VERSION}.jar"))


def ensure_kafka_jars(libs_dir: Path) -> Path:
    """Fetch Apache Kafka's jars into ``libs_dir`` unless they are there; returns ``libs_dir``.

    The download goes to a sibling temporary directory renamed into place, so an interrupted
    fetch never leaves a half-filled cache that looks complete.

    Raises
    ------
    BrokerError
        If the jars are missing and Maven is not installed, or the fetch fails.
    """
    if kafka_jars_present(libs_dir):
        return libs_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            f"Apache Kafka's jars are not in {libs_dir}, and Maven is not installed to fetch "
            "them: install Maven (Debian/Ubuntu: apt-get install maven; macOS: brew install "
            f"maven), or copy org.apache.kafka:kafka_2.13:{KAFKA_VERSION} and its runtime "
            f"dependencies into {libs_dir}"
        )
    libs_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=libs_dir.parent))
    try:
        pom = work / "pom.xml"
        pom.write_bytes(resources.files(__package__).joinpath("kafka_broker_pom.xml").read_bytes())
        logger.info(
            "fetching Apache Kafka %s from Maven Central into %s (once, about 45 MB)",
            KAFKA_VERSION,
            libs_dir,
        )
        cmd = [
            mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-Dkafka.version={KAFKA_VERSION}", "-DincludeScope=runtime",
            f"-DoutputDirectory={work / 'libs'}",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0 or not kafka_jars_present(work / "libs"):
            tail = (done.stdout + done.stderr).strip()[-2000:]
            raise BrokerError(f"fetching Apache Kafka's jars with Maven failed:\n{tail}")
        try:
            (work / "libs").rename(libs_dir)
        except OSError:
            if not kafka_jars_present(libs_dir):  # not a concurrent fetch that won the race
                raise
    except subprocess.TimeoutExpired as exc:
        raise BrokerError("fetching Apache Kafka's jars took over 15 minutes") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return libs_dir


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
    heap
        JVM heap size (``-Xmx``).
    security
        SASL_SSL material and users (kafka_security.py): the client listener then speaks
        SASL_SSL only. None: PLAINTEXT.
    """

    description = f"Apache Kafka {KAFKA_VERSION} (KRaft, single node)"
    durable = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        *,
        log_file: Path | None = None,
        data_dir: Path | None = None,
        libs_dir: Path | None = None,
        heap: str = "512m",
        security: SaslSsl | None = None,
    ) -> None:
        super().__init__(host, port, log_file)
        self.security = security
        self._owns_data = data_dir is None
        self.data_dir = (
            Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="recsvc-kafka-"))
        )
        self.libs_dir = Path(libs_dir) if libs_dir else default_libs_dir()
        self.heap = heap
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
        java = java_binary()
        libs = ensure_kafka_jars(self.libs_dir)
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
