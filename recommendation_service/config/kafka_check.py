"""Checking at start that the cluster accepts this process's Kafka settings.

A client with wrong or missing credentials does not fail on its own: librdkafka retries
forever, and a builder or server would sit silently with nothing flowing. Each process that
talks to Kafka asks the cluster for metadata once at start, with its settings: refused
credentials, a failed TLS handshake or a listener that expects TLS/SASL end the process with
the broker's reason. A cluster that is merely down is only logged: clients keep retrying, as
they do when it goes down later.
"""

from __future__ import annotations

import logging
import socket
import ssl

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from ..errors import KafkaRefused
from .kafka import KafkaSettings

logger = logging.getLogger(__name__)

#: librdkafka errors that mean "refused", not "unreachable".
_REFUSALS = {
    KafkaError._AUTHENTICATION,
    KafkaError._SSL,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
}
_HINT = "check the --kafka-option settings (security.protocol, sasl.*, ssl.*)"


class _Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _speaks_tls(bootstrap_servers: str, timeout: float = 3.0) -> bool:
    """Whether the first bootstrap server completes a TLS handshake (a listener that expects
    TLS, not a broker that dropped one connection for another reason)."""
    host, _, port = bootstrap_servers.split(",")[0].strip().rpartition(":")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only asking whether it speaks TLS at all
    try:
        address = (host.strip("[]"), int(port))
        with (
            socket.create_connection(address, timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=address[0] or None),
        ):
            return True
    except (OSError, ValueError):
        return False


def check_connection(settings: KafkaSettings, what: str, timeout: float = 5.0) -> None:
    """Ask the cluster for metadata with ``settings``; ``what`` names the client in messages.

    Raises
    ------
    KafkaRefused
        If the cluster refused the client, with the broker's (or TLS library's) reason.
    """
    errors: list[KafkaError] = []
    collected = _Collected()
    # A logger of its own: librdkafka's lines go to the checker, not the process's log.
    client_log = logging.getLogger(f"{__name__}.client")
    client_log.propagate = False
    client_log.handlers = [collected]
    client_log.setLevel(logging.INFO)  # "connection closed by peer" is an info line
    admin = AdminClient(
        {**settings.client_config(), "error_cb": errors.append, "logger": client_log}
    )
    try:
        admin.list_topics(timeout=timeout)
        return
    except KafkaException:
        admin.poll(0.5)  # serves the error callbacks that say why
    where = f"{what}: Kafka at {settings.bootstrap_servers}"
    refused = [e for e in errors if e.code() in _REFUSALS]
    if refused:
        raise KafkaRefused(f"{where} refused the connection: {refused[0].str()}; {_HINT}")
    if (
        "security.protocol" not in settings.options
        and any("APIVERSION_QUERY" in line and "closed by peer" in line for line in collected.lines)
        and _speaks_tls(settings.bootstrap_servers)
    ):
        raise KafkaRefused(
            f"{where} closed the connection at the first request: its listener expects TLS "
            f"or SASL and this client speaks plaintext; {_HINT}"
        )
    reason = errors[0].str() if errors else "no answer"
    logger.warning("%s did not answer within %g s (%s); retrying", where, timeout, reason)
