"""``recsvc broker``: an Apache Kafka broker (KRaft, one node) until stopped."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from ..common.threads import StopFlag
from ..errors import BrokerError
from ..sandbox.brokers import ENGINE_CHOICES
from ..sandbox.kafka_broker import DEFAULT_HEAP, check_heap
from ..sandbox.kafka_jars import DEFAULT_REPOSITORY
from .options import opt, stack


def _heap(ctx, param, value: str) -> str:
    try:
        return check_heap(value)
    except BrokerError as exc:
        raise click.BadParameter(str(exc)) from exc


#: How the broker is started: shared by ``recsvc broker`` and ``recsvc demo``.
broker_option_list = [
    opt(
        "--engine",
        default="kafka",
        type=click.Choice(ENGINE_CHOICES),
        help="The broker: Apache Kafka 4.1 (auto, a former default, means kafka too).",
    ),
    opt(
        "--kafka-libs",
        default=None,
        type=click.Path(file_okay=False, path_type=Path),
        help="Cache of Apache Kafka's jars, fetched once when it lacks them [default: "
        "~/.cache/recsvc/kafka-VERSION].",
    ),
    opt(
        "--maven-repository",
        default=DEFAULT_REPOSITORY,
        help="Maven repository (or mirror) the jars are fetched from; https_proxy is honoured.",
    ),
    opt(
        "--kafka-heap",
        default=DEFAULT_HEAP,
        callback=_heap,
        help="Apache Kafka's JVM heap (-Xmx), e.g. 256m or 2g.",
    ),
]
broker_options = stack(broker_option_list)


@click.command(short_help="Run an Apache Kafka broker for the demo or tests.")
@broker_options
@opt("--host", default="127.0.0.1", help="Address to listen on.")
@opt(
    "--port",
    default=9092,
    type=click.IntRange(1, 65535),
    help="Port to listen on.",
)
@opt(
    "--data-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Apache Kafka's log directory, kept across restarts (default: temporary, removed).",
)
@opt(
    "--fetch-only",
    is_flag=True,
    help="Fetch and verify Apache Kafka's jars (and find Java) then exit, e.g. in an image build.",
)
def broker(
    engine: str, kafka_libs: Path | None, maven_repository: str, kafka_heap: str, host: str,
    port: int, data_dir: Path | None, fetch_only: bool,
) -> None:  # fmt: skip
    """Run Apache Kafka (KRaft, one node) for the demo or tests until stopped (Ctrl-C).

    Java is the one JAVA_HOME names, else java on PATH, else the OpenJDK runtime installed
    with this package (17+ in each case); the jars are fetched once into --kafka-libs.
    """
    from ..common.java_runtime import find_java
    from ..sandbox.kafka_broker import ApacheKafkaBroker
    from ..sandbox.kafka_jars import ensure_kafka_jars

    try:
        find_java()  # logs which Java runs the broker
        if fetch_only:
            libs = ensure_kafka_jars(kafka_libs, maven_repository)
            click.echo(f"Apache Kafka's jars are in {libs}, each checked against its SHA-256")
            return
        b = ApacheKafkaBroker(
            host, port, data_dir=data_dir, libs_dir=kafka_libs, repository=maven_repository,
            heap=kafka_heap,
        ).start()  # fmt: skip
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    keeps = f"log kept in {data_dir}" if data_dir else "temporary log, removed on stop"
    click.echo(f"{b.description} ready on {b.bootstrap_servers} ({keeps})")
    stop = StopFlag()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if b.process.poll() is not None:
                raise click.ClickException(f"broker exited with code {b.process.returncode}")
    finally:
        b.close()
