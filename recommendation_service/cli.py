"""The ``recsvc`` command: broker, builder, serve and demo.

Every option can also be set by an environment variable named ``RECSVC_<OPTION>`` (shown in
``--help``). Options are parsed and validated here, once, into frozen config objects.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import click

from . import __version__
from .ann import IVFParams
from .config import (
    ALSParams,
    BuilderConfig,
    KafkaSettings,
    ServerConfig,
    parse_action_weights,
    parse_kafka_options,
)
from .errors import BrokerError, ConfigError
from .realtime import RealtimeParams
from .window import Decay

logger = logging.getLogger(__name__)


def _opt(*names, env: str, **kwargs):
    """A click option that also reads ``RECSVC_<env>`` and shows it in ``--help``."""
    return click.option(
        *names, envvar=f"RECSVC_{env}", show_envvar=True, show_default=True, **kwargs
    )


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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="recsvc")
@_opt(
    "--log-level",
    env="LOG_LEVEL",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
def main(log_level: str) -> None:
    """Real-time recommendations from a Kafka stream of user-item interactions."""
    _setup_logging(log_level)


@main.command()
@_opt("--host", env="BROKER_HOST", default="127.0.0.1", help="Address to listen on.")
@_opt(
    "--port",
    env="BROKER_PORT",
    default=9092,
    type=click.IntRange(1, 65535),
    help="Port to listen on.",
)
def broker(host: str, port: int) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, in-memory) until stopped."""
    from .broker import EmbeddedBroker

    try:
        b = EmbeddedBroker(host, port).start()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"broker ready on {b.bootstrap_servers} (in-memory: data is lost on stop)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        if b.process.poll() is not None:
            raise click.ClickException(f"broker exited with code {b.process.returncode}")
    b.stop()


_kafka_options = [
    _opt(
        "--bootstrap-servers",
        env="BOOTSTRAP_SERVERS",
        default="127.0.0.1:9092",
        help="Kafka bootstrap servers (host:port[,host:port...]).",
    ),
    _opt("--topic", env="TOPIC", default="interactions", help="Interactions topic."),
    _opt(
        "--kafka-option",
        "kafka_options",
        env="KAFKA_OPTIONS",
        multiple=True,
        metavar="KEY=VALUE",
        help="Extra librdkafka property, repeatable (env: whitespace-separated).",
    ),
]


_model_option_list = [
    _opt(
        "--window",
        env="WINDOW",
        default=BuilderConfig.window,
        type=int,
        help="Number of most recent events kept (W).",
    ),
    _opt(
        "--retrain-every",
        env="RETRAIN_EVERY",
        default=BuilderConfig.retrain_every,
        type=int,
        help="Refit ALS after this many new events (N).",
    ),
    _opt(
        "--factors", env="FACTORS", default=ALSParams.factors, type=int, help="ALS latent factors."
    ),
    _opt(
        "--regularization",
        env="REGULARIZATION",
        default=ALSParams.regularization,
        type=float,
        help="ALS L2 regularization.",
    ),
    _opt(
        "--alpha",
        env="ALPHA",
        default=ALSParams.alpha,
        type=float,
        help="ALS confidence scale for interaction weights.",
    ),
    _opt(
        "--iterations",
        env="ITERATIONS",
        default=ALSParams.iterations,
        type=int,
        help="ALS sweeps per refit.",
    ),
    _opt(
        "--num-threads",
        env="NUM_THREADS",
        default=ALSParams.num_threads,
        type=int,
        help="Threads for ALS (0 = all cores).",
    ),
]


def _stack(options):
    """One decorator applying a list of click options, in list order on the help page."""

    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


#: Window, refit cadence and ALS options (builder and evaluate).
_model_options = _stack(_model_option_list)


_realtime_option_list = [
    _opt(
        "--recent-boost",
        env="RECENT_BOOST",
        default=RealtimeParams.recent_boost,
        type=float,
        help="Extra fold-in weight of a user's newest event (1 + boost).",
    ),
    _opt(
        "--recent-half-life",
        env="RECENT_HALF_LIFE",
        default=RealtimeParams.recent_half_life,
        type=float,
        help="The boost halves every this many older events of the user.",
    ),
    _opt(
        "--similarity-weight",
        env="SIMILARITY_WEIGHT",
        default=RealtimeParams.similarity_weight,
        type=float,
        help="Weight of item-to-item similarity with the user's recent items.",
    ),
    _opt(
        "--decay-half-life-events",
        env="DECAY_HALF_LIFE_EVENTS",
        default=0.0,
        type=float,
        help="Halve an event's weight after this many newer events (0 = off).",
    ),
    _opt(
        "--decay-half-life-seconds",
        env="DECAY_HALF_LIFE_SECONDS",
        default=0.0,
        type=float,
        help="Halve an event's weight after this many seconds of event time (0 = off).",
    ),
]


_realtime_options = _stack(_realtime_option_list)


def _als(opts) -> ALSParams:
    return ALSParams(
        factors=opts["factors"],
        regularization=opts["regularization"],
        alpha=opts["alpha"],
        iterations=opts["iterations"],
        num_threads=opts["num_threads"],
    )


def _realtime(opts) -> RealtimeParams:
    try:
        return RealtimeParams(
            opts["recent_boost"], opts["recent_half_life"], opts["similarity_weight"]
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _decay(opts) -> Decay:
    try:
        return Decay(opts["decay_half_life_events"], opts["decay_half_life_seconds"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


@main.command()
@_kafka_options[0]
@_kafka_options[1]
@_opt("--group-id", env="GROUP_ID", default="recsvc-builder", help="Consumer group.")
@_opt(
    "--dead-letter-topic",
    env="DEAD_LETTER_TOPIC",
    default=None,
    help="Copy malformed messages to this topic (off when unset).",
)
@_kafka_options[2]
@_opt(
    "--model-dir",
    env="MODEL_DIR",
    default="models",
    type=click.Path(path_type=Path),
    help="Directory models are published to.",
)
@_model_options
@_opt(
    "--keep-versions",
    env="KEEP_VERSIONS",
    default=BuilderConfig.keep_versions,
    type=int,
    help="Model versions kept on disk.",
)
@_opt(
    "--max-event-bytes",
    env="MAX_EVENT_BYTES",
    default=BuilderConfig.max_event_bytes,
    type=int,
    help="Larger messages are rejected as malformed.",
)
@_realtime_options
@_opt(
    "--action-weight",
    "action_weights",
    env="ACTION_WEIGHTS",
    multiple=True,
    metavar="ACTION=WEIGHT",
    help="Override or add an action weight, repeatable (env: whitespace-separated).",
)
@_opt(
    "--update-interval",
    env="UPDATE_INTERVAL",
    default=BuilderConfig.update_interval,
    type=float,
    help="Seconds between writes of fresh user vectors for the servers.",
)
@_opt(
    "--ann-min-items",
    env="ANN_MIN_ITEMS",
    default=IVFParams.min_items,
    type=click.IntRange(1),
    help="Publish an approximate (IVF) index for catalogs of at least this many items.",
)
@_opt("--metrics-host", env="METRICS_HOST", default="127.0.0.1", help="Builder metrics address.")
@_opt(
    "--metrics-port",
    env="METRICS_PORT",
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
                options=parse_kafka_options(_split_env_list(opts["kafka_options"])),
            ),
            model_dir=opts["model_dir"],
            als=_als(opts),
            window=opts["window"],
            retrain_every=opts["retrain_every"],
            keep_versions=opts["keep_versions"],
            max_event_bytes=opts["max_event_bytes"],
            realtime=_realtime(opts),
            decay=_decay(opts),
            actions=parse_action_weights(_split_env_list(opts["action_weights"])),
            update_interval=opts["update_interval"],
            ivf=IVFParams(min_items=opts["ann_min_items"]),
            metrics_host=opts["metrics_host"],
            metrics_port=opts["metrics_port"],
        )

    config = _config_or_exit(make)
    from .builder import ModelBuilder

    worker = ModelBuilder(config)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: worker.stop())
    worker.run()


def _split_env_list(values: tuple[str, ...]) -> list[str]:
    # From the environment click passes one string; split it like a shell word list.
    return [part for value in values for part in value.split()]


@main.command()
@_opt(
    "--model-dir",
    env="MODEL_DIR",
    default="models",
    type=click.Path(path_type=Path),
    help="Directory the builder publishes to.",
)
@_opt("--host", env="HOST", default="127.0.0.1", help="Address to listen on.")
@_opt("--port", env="PORT", default=5000, type=int, help="Port to listen on.")
@_opt("--workers", env="WORKERS", default=1, type=int, help="Server processes.")
@_opt(
    "--threads",
    env="THREADS",
    default=ServerConfig.threads,
    type=int,
    help="Request threads per process (requests are CPU-bound; see README).",
)
@_opt(
    "--reload-interval",
    env="RELOAD_INTERVAL",
    default=ServerConfig.reload_interval,
    type=float,
    help="Seconds between checks for new model versions and user updates.",
)
@_opt("--max-n", env="MAX_N", default=1000, type=int, help="Largest n a client may ask for.")
@_opt(
    "--access-log/--no-access-log",
    env="ACCESS_LOG",
    default=True,
    help="Write one JSON access-log line per request to stdout.",
)
@_opt(
    "--ann-probes",
    env="ANN_PROBES",
    default=ServerConfig.ann_probes,
    type=int,
    help="Clusters scanned per query when the model has an approximate index.",
)
@_opt(
    "--metrics-dir",
    env="METRICS_DIR",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for multi-process metrics (default: a fresh temporary one).",
)
@_opt(
    "--bootstrap-servers",
    env="BOOTSTRAP_SERVERS",
    default=None,
    help="Kafka for POST /online/data/add (ingest is off when unset).",
)
@_opt("--topic", env="TOPIC", default="interactions", help="Topic ingested events go to.")
@_kafka_options[2]
@_opt(
    "--admin-token",
    env="ADMIN_TOKEN",
    default=None,
    help="Bearer token of rollback and training start (off when unset; >= 16 characters).",
)
@_opt(
    "--action-weight",
    "action_weights",
    env="ACTION_WEIGHTS",
    multiple=True,
    metavar="ACTION=WEIGHT",
    help="Action table for validating ingested samples (use the builder's).",
)
@_opt(
    "--max-batch",
    env="MAX_BATCH",
    default=ServerConfig.max_batch,
    type=int,
    help="Most samples per POST /online/data/add.",
)
def serve(**opts) -> None:
    """Serve the HTTP API (recommend, health, model, metrics) with gunicorn."""
    bootstrap = opts.pop("bootstrap_servers")
    topic = opts.pop("topic")
    kafka_options = opts.pop("kafka_options")
    action_weights = opts.pop("action_weights")

    def make():
        ingest = None
        if bootstrap:
            ingest = KafkaSettings(
                bootstrap_servers=bootstrap,
                topic=topic,
                options=parse_kafka_options(_split_env_list(kafka_options)),
            )
        return ServerConfig(
            **opts, ingest=ingest, actions=parse_action_weights(_split_env_list(action_weights))
        )

    config = _config_or_exit(make)
    from .server import serve as run_server

    run_server(config)


@main.command()
@click.argument("log", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_opt("--user-col", env="EVAL_USER_COL", default="user", help="User column: name or 0-based index.")
@_opt("--item-col", env="EVAL_ITEM_COL", default="item", help="Item column: name or index.")
@_opt("--time-col", env="EVAL_TIME_COL", default="timestamp", help="Time column: name or index.")
@_opt("--weight-col", env="EVAL_WEIGHT_COL", default=None, help="Optional weight column.")
@_opt("--delimiter", env="EVAL_DELIMITER", default=None, help="Field separator (default: by name).")
@_opt("--header/--no-header", env="EVAL_HEADER", default=True, help="First row names columns.")
@_opt(
    "--test-fraction",
    env="EVAL_TEST_FRACTION",
    default=0.1,
    type=click.FloatRange(0.001, 0.999),
    help="Share of the newest events that are scored.",
)
@_opt(
    "--max-test-events",
    env="EVAL_MAX_TEST_EVENTS",
    default=0,
    type=click.IntRange(0),
    help="Score only this many test events (0 = all).",
)
@_opt(
    "--json-out",
    env="EVAL_JSON_OUT",
    default=None,
    type=click.Path(path_type=Path),
    help="Also write the figures as JSON here.",
)
@_model_options
@_realtime_options
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
            als=_als(opts),
            realtime=_realtime(opts),
            decay=_decay(opts),
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


@main.command()
@_opt(
    "--port",
    env="DEMO_BROKER_PORT",
    default=9092,
    type=click.IntRange(1, 65535),
    help="Port of the embedded broker.",
)
@_opt(
    "--http-port",
    env="DEMO_HTTP_PORT",
    default=5000,
    type=click.IntRange(1, 65535),
    help="Port of the recommendation server.",
)
@_opt(
    "--model-dir",
    env="DEMO_MODEL_DIR",
    default=None,
    type=click.Path(path_type=Path),
    help="Model directory (default: a temporary directory).",
)
@_opt("--rate", env="DEMO_RATE", default=200.0, type=float, help="Interactions per second.")
@_opt("--users", env="DEMO_USERS", default=200, type=int, help="Synthetic users.")
@_opt("--items", "n_items", env="DEMO_ITEMS", default=400, type=int, help="Catalog size.")
@_opt("--window", env="DEMO_WINDOW", default=20_000, type=int, help="Builder window (W).")
@_opt(
    "--retrain-every",
    env="DEMO_RETRAIN_EVERY",
    default=1000,
    type=int,
    help="Builder refit cadence (N).",
)
@_opt(
    "--duration",
    env="DEMO_DURATION",
    default=0.0,
    type=float,
    help="Stop after this many seconds (0 = run until Ctrl-C).",
)
def demo(port, http_port, model_dir, rate, users, n_items, window, retrain_every, duration):
    """Run everything: broker, builder, server and both demo producers; Ctrl-C stops it all."""
    from .demo_runner import DemoSettings, run_demo

    settings = DemoSettings(
        broker_port=port,
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
