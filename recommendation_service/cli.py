"""The ``recsvc`` command: broker, builder, serve and demo.

Every option can also be set by an environment variable, ``RECSVC_<COMMAND>_<OPTION>`` (see
:mod:`~recommendation_service.cli_options`; shown in ``--help``). Options are parsed and
validated here, once, into frozen config objects.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import click

from . import __version__
from .ann import IVFParams
from .associations import AssociationParams
from .cli_options import (
    ENV_PREFIX,
    als_params,
    association_params,
    decay_params,
    kafka_options,
    model_options,
    opt,
    realtime_options,
    realtime_params,
    split_env_list,
)
from .config import (
    BuilderConfig,
    KafkaSettings,
    ServerConfig,
    parse_action_weights,
    parse_kafka_options,
)
from .errors import BrokerError, ConfigError

logger = logging.getLogger(__name__)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
    )


def _config_or_exit(factory):
    try:
        return factory()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


@click.group(
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        "auto_envvar_prefix": ENV_PREFIX,
    }
)
@click.version_option(__version__, prog_name="recsvc")
@opt(
    "--log-level",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
def main(log_level: str) -> None:
    """Real-time recommendations from a Kafka stream of user-item interactions."""
    _setup_logging(log_level)


@main.command(short_help="Run a Kafka broker: embedded Tansu or Apache Kafka.")
@opt(
    "--engine",
    default="tansu",
    type=click.Choice(["tansu", "kafka"]),
    help="tansu: embedded, in-memory, pip-only. kafka: Apache Kafka (needs Java 17+), log on disk.",
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
    from .broker import make_broker

    try:
        if fetch_only:
            from .kafka_broker import default_libs_dir, ensure_kafka_jars, java_binary

            java_binary()
            libs = ensure_kafka_jars(kafka_libs or default_libs_dir())
            click.echo(f"Apache Kafka's jars are in {libs}")
            return
        b = make_broker(engine, host, port, data_dir=data_dir, kafka_libs=kafka_libs).start()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    keeps = "log kept in " + str(data_dir) if engine == "kafka" and data_dir else (
        "in-memory: data is lost on stop" if engine == "tansu" else "temporary log, removed on stop"
    )
    click.echo(f"{b.description} ready on {b.bootstrap_servers} ({keeps})")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if b.process.poll() is not None:
                raise click.ClickException(f"broker exited with code {b.process.returncode}")
    finally:
        b.close()


@main.command(short_help="Consume interactions, refit ALS, publish model versions.")
@kafka_options[0]
@kafka_options[1]
@opt("--group-id", default="recsvc-builder", help="Consumer group.")
@opt(
    "--dead-letter-topic",
    default=None,
    help="Copy malformed messages to this topic (off when unset).",
)
@kafka_options[2]
@opt(
    "--model-dir",
    default="models",
    type=click.Path(path_type=Path),
    help="Directory models are published to.",
)
@model_options
@opt(
    "--keep-versions",
    default=BuilderConfig.keep_versions,
    type=int,
    help="Model versions kept on disk.",
)
@opt(
    "--max-event-bytes",
    default=BuilderConfig.max_event_bytes,
    type=int,
    help="Larger messages are rejected as malformed.",
)
@realtime_options
@opt(
    "--action-weight",
    "action_weights",
    multiple=True,
    metavar="ACTION=WEIGHT",
    help="Override or add an action weight, repeatable (env: whitespace-separated).",
)
@opt(
    "--update-interval",
    default=BuilderConfig.update_interval,
    type=float,
    help="Seconds between writes of fresh user vectors for the servers.",
)
@opt(
    "--ann-min-items",
    default=IVFParams.min_items,
    type=click.IntRange(1),
    help="Publish an approximate (IVF) index for catalogs of at least this many items.",
)
@opt(
    "--session-gap",
    default=AssociationParams.session_gap,
    type=float,
    help="Seconds between a user's events that end a basket (events without a basket id).",
)
@opt(
    "--min-support",
    default=AssociationParams.min_support,
    type=int,
    help="Baskets two items must share to be listed as bought together.",
)
@opt("--metrics-host", default="127.0.0.1", help="Builder metrics address.")
@opt(
    "--metrics-port",
    default=9108,
    type=click.IntRange(0, 65535),
    help="Builder metrics port (GET /metrics); 0 turns them off.",
)
def builder(**opts) -> None:
    """Consume interactions, keep the sliding window, retrain ALS and publish models."""

    def make():
        return BuilderConfig(
            kafka=KafkaSettings(
                bootstrap_servers=opts["bootstrap_servers"],
                topic=opts["topic"],
                group_id=opts["group_id"],
                dead_letter_topic=opts["dead_letter_topic"] or None,
                options=parse_kafka_options(split_env_list(opts["kafka_options"])),
            ),
            model_dir=opts["model_dir"],
            als=als_params(opts),
            window=opts["window"],
            retrain_every=opts["retrain_every"],
            keep_versions=opts["keep_versions"],
            max_event_bytes=opts["max_event_bytes"],
            realtime=realtime_params(opts),
            decay=decay_params(opts),
            actions=parse_action_weights(split_env_list(opts["action_weights"])),
            update_interval=opts["update_interval"],
            ivf=IVFParams(min_items=opts["ann_min_items"]),
            associations=association_params(opts),
            metrics_host=opts["metrics_host"],
            metrics_port=opts["metrics_port"],
        )

    config = _config_or_exit(make)
    from .builder import ModelBuilder

    worker = ModelBuilder(config)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: worker.stop())
    worker.run()


@main.command(short_help="Serve the HTTP API from a model directory (gunicorn).")
@opt(
    "--model-dir",
    default="models",
    type=click.Path(path_type=Path),
    help="Directory the builder publishes to.",
)
@opt("--host", default="127.0.0.1", help="Address to listen on.")
@opt("--port", default=5000, type=int, help="Port to listen on.")
@opt("--workers", default=1, type=int, help="Server processes.")
@opt(
    "--threads",
    default=ServerConfig.threads,
    type=int,
    help="Connection threads per process (8 when slow clients connect directly; see README).",
)
@opt(
    "--client-timeout",
    default=ServerConfig.client_timeout,
    type=float,
    help="Seconds a client may take to send a request body or block a socket read/write.",
)
@opt(
    "--reload-interval",
    default=ServerConfig.reload_interval,
    type=float,
    help="Seconds between checks for new model versions and user updates.",
)
@opt("--max-n", default=1000, type=int, help="Largest n a client may ask for.")
@opt(
    "--access-log/--no-access-log",
    default=True,
    help="Write one JSON access-log line per request to stdout.",
)
@opt(
    "--ann-probes",
    default=ServerConfig.ann_probes,
    type=int,
    help="Clusters scanned per query when the model has an approximate index.",
)
@opt(
    "--metrics-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for multi-process metrics (default: a fresh temporary one).",
)
@opt(
    "--bootstrap-servers",
    default=None,
    help="Kafka for POST /online/data/add (ingest is off when unset).",
)
@opt("--topic", default="interactions", help="Topic ingested events go to.")
@kafka_options[2]
@opt(
    "--admin-token",
    default=None,
    help="Bearer token of rollback and training start (off when unset; >= 16 characters).",
)
@opt(
    "--action-weight",
    "action_weights",
    multiple=True,
    metavar="ACTION=WEIGHT",
    help="Action table for validating ingested samples (use the builder's).",
)
@opt(
    "--max-batch",
    default=ServerConfig.max_batch,
    type=int,
    help="Most samples per POST /online/data/add.",
)
def serve(**opts) -> None:
    """Serve the HTTP API (recommend, health, model, metrics) with gunicorn."""
    bootstrap = opts.pop("bootstrap_servers")
    topic = opts.pop("topic")
    extra_options = opts.pop("kafka_options")
    action_weights = opts.pop("action_weights")

    def make():
        ingest = None
        if bootstrap:
            ingest = KafkaSettings(
                bootstrap_servers=bootstrap,
                topic=topic,
                options=parse_kafka_options(split_env_list(extra_options)),
            )
        return ServerConfig(
            **opts, ingest=ingest, actions=parse_action_weights(split_env_list(action_weights))
        )

    config = _config_or_exit(make)
    from .server import serve as run_server

    run_server(config)


@main.command(short_help="Replay a log file and score the recommendations.")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@opt("--user-col", default="user", help="User column: name or 0-based index.")
@opt("--item-col", default="item", help="Item column: name or index.")
@opt("--time-col", default="timestamp", help="Time column: name or index.")
@opt("--weight-col", default=None, help="Optional weight column.")
@opt("--delimiter", default=None, help="Field separator (default: by name).")
@opt("--header/--no-header", default=True, help="First row names columns.")
@opt(
    "--test-fraction",
    default=0.1,
    type=click.FloatRange(0.001, 0.999),
    help="Share of the newest events that are scored.",
)
@opt(
    "--max-test-events",
    default=0,
    type=click.IntRange(0),
    help="Score only this many test events (0 = all).",
)
@opt(
    "--json-out",
    default=None,
    type=click.Path(path_type=Path),
    help="Also write the figures as JSON here.",
)
@model_options
@realtime_options
def evaluate(log, **opts) -> None:
    """Replay LOG (CSV/TSV, .gz accepted) and score the service against baselines."""
    import json

    from tqdm import tqdm

    from .evaluation import METHODS, EvalConfig
    from .evaluation import evaluate as run_evaluation
    from .interaction_log import LogFormat, read_log

    fmt = LogFormat(
        opts["user_col"],
        opts["item_col"],
        opts["time_col"],
        opts["weight_col"],
        opts["delimiter"],
        opts["header"],
    )
    config = _config_or_exit(
        lambda: EvalConfig(
            window=opts["window"],
            retrain_every=opts["retrain_every"],
            als=als_params(opts),
            realtime=realtime_params(opts),
            decay=decay_params(opts),
            test_fraction=opts["test_fraction"],
            max_test_events=opts["max_test_events"],
        )
    )
    try:
        events, skipped = read_log(log, fmt)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    n_test = len(events) - int(len(events) * (1 - config.test_fraction))
    if config.max_test_events:
        n_test = min(n_test, config.max_test_events)
    click.echo(f"{len(events)} events ({skipped} unreadable rows skipped); scoring {n_test}")
    with tqdm(total=n_test, unit="ev", disable=None) as bar:
        report = run_evaluation(events, config, progress=bar.update)
    figures = report.as_dict()
    pop = report.hit_rate("popularity")
    seed = report.hit_rate("refit-only")
    click.echo(f"\n{'method':<20}{'HR@10':>9}{'NDCG@10':>9}")
    for method in METHODS:
        click.echo(f"{method:<20}{report.hit_rate(method):>9.4f}{report.ndcg(method):>9.4f}")
    service = report.hit_rate("service")
    if pop and seed:
        click.echo(
            f"\nservice / popularity: {service / pop:.2f}x   "
            f"service / refit-only: {service / seed:.2f}x"
        )
    click.echo(
        f"{figures['scored_events']} scored of {figures['test_events']} test events, "
        f"{figures['events_per_second']} events/s, {figures['refits']} refits, "
        f"{figures['refit_seconds_mean']} s per refit"
    )
    if opts["json_out"]:
        figures["config"] = {
            "window": config.window,
            "retrain_every": config.retrain_every,
            "als": vars(config.als),
            "realtime": vars(config.realtime),
        }
        opts["json_out"].write_text(json.dumps(figures, indent=2))


@main.command(short_help="Run broker, builder, server and demo producers at once.")
@opt(
    "--engine",
    default="tansu",
    type=click.Choice(["tansu", "kafka"]),
    help="Broker to start: tansu (embedded, in-memory) or kafka (Apache Kafka, needs Java 17+).",
)
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
@opt("--rate", default=200.0, type=float, help="Interactions per second.")
@opt("--users", default=200, type=int, help="Synthetic users.")
@opt("--items", "n_items", default=400, type=int, help="Catalog size.")
@opt("--window", default=20_000, type=int, help="Builder window (W).")
@opt(
    "--retrain-every",
    default=1000,
    type=int,
    help="Builder refit cadence (N).",
)
@opt(
    "--duration",
    default=0.0,
    type=float,
    help="Stop after this many seconds (0 = run until Ctrl-C).",
)
def demo(
    engine, port, metrics_port, http_port, model_dir, rate, users, n_items, window,
    retrain_every, duration,
):  # fmt: skip
    """Run everything: broker, builder, server and both demo producers; Ctrl-C stops it all."""
    from .demo_runner import DemoSettings, run_demo

    settings = DemoSettings(
        broker_port=port,
        engine=engine,
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


def _add_producers() -> None:
    from .demo_producers import item_producer, user_interactions_producer

    main.add_command(item_producer)
    main.add_command(user_interactions_producer)


_add_producers()
