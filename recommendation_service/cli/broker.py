"""``recsvc broker``: a Kafka broker (embedded Tansu or Apache Kafka) until stopped."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from ..common.threads import StopFlag
from ..errors import BrokerError
from ..sandbox.brokers import ENGINE_CHOICES
from .options import (
    opt,
)


@click.command(short_help="Run a Kafka broker: embedded Tansu or Apache Kafka.")
@opt(
    "--engine",
    default="auto",
    type=click.Choice(ENGINE_CHOICES),
    help="kafka: Apache Kafka (Java 17+; jars fetched once with Maven), log on disk. tansu: "
    "embedded, in-memory, pip-only (stalls on producers that send one message per batch). "
    "auto: kafka where it can run, else tansu.",
)
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
    "--kafka-libs",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache of Apache Kafka's jars, fetched with Maven when empty [default: "
    "~/.cache/recsvc/kafka-VERSION].",
)
@opt(
    "--fetch-only",
    is_flag=True,
    help="Fetch Apache Kafka's jars (and check Java) then exit, e.g. while building an image.",
)
def broker(
    engine: str, host: str, port: int, data_dir: Path | None, kafka_libs: Path | None,
    fetch_only: bool,
) -> None:  # fmt: skip
    """Run a Kafka broker for the demo or tests until stopped (Ctrl-C)."""
    from ..sandbox.brokers import TANSU_LIMIT, make_broker, resolve_engine

    try:
        if fetch_only:
            from ..sandbox.kafka_broker import default_libs_dir, ensure_kafka_jars, java_binary

            java_binary()
            libs = ensure_kafka_jars(kafka_libs or default_libs_dir())
            click.echo(f"Apache Kafka's jars are in {libs}")
            return
        engine, why = resolve_engine(engine, kafka_libs)
        click.echo(f"engine {engine}: {why}")
        if engine == "tansu":
            click.echo(TANSU_LIMIT)
        b = make_broker(engine, host, port, data_dir=data_dir, kafka_libs=kafka_libs).start()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    keeps = (
        "log kept in " + str(data_dir)
        if engine == "kafka" and data_dir
        else (
            "in-memory: data is lost on stop"
            if engine == "tansu"
            else "temporary log, removed on stop"
        )
    )
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
