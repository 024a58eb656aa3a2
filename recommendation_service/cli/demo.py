"""``recsvc demo``: broker, builder, server and demo producers in one command."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import BrokerError
from .broker import broker_options
from .options import opt


@click.command(short_help="Run broker, builder, server and demo producers at once.")
@broker_options
@opt(
    "--port",
    default=9092,
    type=click.IntRange(1, 65535),
    help="Port of the broker.",
)
@opt(
    "--metrics-port",
    default=9108,
    type=click.IntRange(0, 65535),
    help="Port of the builder's Prometheus metrics (0 = off).",
)
@opt(
    "--http-port",
    default=5000,
    type=click.IntRange(1, 65535),
    help="Port of the recommendation server.",
)
@opt(
    "--model-dir",
    default=None,
    type=click.Path(path_type=Path),
    help="Model directory (default: a temporary directory).",
)
@opt("--rate", default=200.0, type=click.FloatRange(0.1, 100_000), help="Interactions per second.")
@opt("--users", default=200, type=click.IntRange(1, 10_000_000), help="Synthetic users.")
@opt("--items", "n_items", default=400, type=click.IntRange(1, 10_000_000), help="Catalog size.")
@opt("--window", default=20_000, type=click.IntRange(1), help="Builder window (W).")
@opt(
    "--retrain-every",
    default=1000,
    type=click.IntRange(1),
    help="Builder refit cadence (N).",
)
@opt(
    "--duration",
    default=0.0,
    type=click.FloatRange(0),
    help="Stop after this many seconds (0 = run until Ctrl-C).",
)
def demo(
    engine, kafka_libs, maven_repository, kafka_heap, port, metrics_port, http_port, model_dir,
    rate, users, n_items, window, retrain_every, duration,
):  # fmt: skip
    """Run everything: broker, builder, server and both demo producers; Ctrl-C stops it all."""
    from ..sandbox.demo_runner import DemoSettings, run_demo

    settings = DemoSettings(
        broker_port=port,
        kafka_libs=kafka_libs,
        maven_repository=maven_repository,
        kafka_heap=kafka_heap,
        metrics_port=metrics_port,
        http_port=http_port,
        model_dir=model_dir,
        rate=rate,
        users=users,
        items=n_items,
        window=window,
        retrain_every=retrain_every,
        duration=duration,
    )
    try:
        run_demo(settings)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
