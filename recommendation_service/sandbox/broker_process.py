"""A Kafka broker child process: start, wait until it answers, stop."""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from pathlib import Path

from ..errors import BrokerError

logger = logging.getLogger(__name__)


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_kafka(
    bootstrap_servers: str, timeout: float = 30.0, options: dict[str, str] | None = None
) -> None:
    """Block until the cluster answers a metadata request.

    Raises
    ------
    BrokerError
        If it does not within ``timeout`` seconds.
    """
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0, **(options or {})})
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

    #: Human-readable name for logs and messages.
    description = "broker"

    def __init__(self, host: str, port: int, log_file: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def client_options(self) -> dict[str, str]:
        """librdkafka settings a client needs beyond the bootstrap servers (none: PLAINTEXT)."""
        return {}

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
            wait_for_kafka(
                self.bootstrap_servers, max(1.0, deadline - time.monotonic()), self.client_options
            )
        except BaseException:
            self.stop()
            raise
        logger.info("%s listening on %s", self.description, self.bootstrap_servers)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        """Stop the broker and remove what it keeps on disk (nothing by default)."""
        self.stop()

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()
