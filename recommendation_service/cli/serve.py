"""``recsvc serve``: the HTTP server processes (Granian) over a model directory."""

from __future__ import annotations

from pathlib import Path

import click

from ..artifacts.object_store import StoreLocation
from ..config.checks import parse_action_weights
from ..config.kafka import KafkaSettings, parse_kafka_options
from ..config.server import ServerConfig
from ..errors import ConfigError
from ..experiments.variants import load_rules_file
from ..recommend.request import ExploreParams
from ..rules.expressions import RuleError
from .options import (
    config_or_exit,
    erasures_topic_option,
    kafka_options,
    kafka_or_exit,
    model_store_option,
    opt,
    split_env_list,
    updates_topic_option,
)


@click.command(short_help="Serve the HTTP API from a model directory (Granian).")
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
    help="I/O threads per process that read requests and write responses (Rust, off the GIL).",
)
@opt(
    "--client-timeout",
    default=ServerConfig.client_timeout,
    type=float,
    help="Seconds a client may take to send its headers, and its whole body (then 408).",
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
    "--ann-ef",
    default=ServerConfig.ann_ef,
    type=click.IntRange(10, 100_000),
    help="Search breadth when the model has an approximate index: higher finds more of the "
    "exact top-N, slower. Unset: each version's own, the smallest that reached the builder's "
    "--ann-target-recall on sampled users when it was published (128 for older versions).",
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
    help="Bearer token of rollback, training start and the dashboard's API (>= 16 "
    "characters; set it through the environment, not argv). Unset: rollback and training are "
    "off, the dashboard open on loopback only.",
)
@opt(
    "--app-token",
    default=None,
    help="Bearer token the app sends for POST /online/data/add, /predict and candidate "
    "ranking (>= 16 characters; through the environment). Unset, with no admin token: those "
    "are open on loopback only, 403 on other binds.",
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
@opt(
    "--rules-file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file of named rules ([rules]) and an A/B experiment ([experiment]); see README.",
)
@opt(
    "--explore-share",
    default=ExploreParams.share,
    type=float,
    help="Chance a brand-new catalog item (created_at, no events yet) is shown to a user; 0 = off.",
)
@opt(
    "--explore-half-life",
    default=ExploreParams.half_life / 3600,
    type=float,
    help="Hours after which that chance has halved; items older than 10 half-lives are not "
    "explored.",
)
@model_store_option
@updates_topic_option
@erasures_topic_option
@opt(
    "--impressions-topic",
    default=ServerConfig.impressions_topic,
    help="Topic the lists served in an experiment are published to (for attribution).",
)
def serve(**opts) -> None:
    """Serve the HTTP API (recommend, health, model, metrics) with Granian."""
    bootstrap = opts.pop("bootstrap_servers")
    rules_path = opts.pop("rules_file")
    store_url = opts.pop("model_store")
    updates_topic = opts.pop("updates_topic") or None
    explore_share = opts.pop("explore_share")
    half_life = opts.pop("explore_half_life")
    topic = opts.pop("topic")
    extra_options = opts.pop("kafka_option")
    action_weights = opts.pop("action_weights")

    def make():
        ingest = None
        if bootstrap:
            ingest = KafkaSettings(
                bootstrap_servers=bootstrap,
                topic=topic,
                options=parse_kafka_options(split_env_list(extra_options)),
            )
        try:
            rules_file = None if rules_path is None else load_rules_file(rules_path)
            explore = ExploreParams(explore_share, half_life * 3600, max_age=10 * half_life * 3600)
        except (RuleError, ValueError) as exc:
            raise ConfigError(str(exc)) from exc
        return ServerConfig(
            **opts,
            ingest=ingest,
            actions=parse_action_weights(split_env_list(action_weights)),
            rules_file=rules_file,
            explore=explore,
            model_store=StoreLocation.parse(store_url) if store_url else None,
            updates_topic=updates_topic,
        )

    config = config_or_exit(make)
    if config.ingest is not None:
        kafka_or_exit(config.ingest, "recsvc serve")
    from ..server.granian_runner import serve as run_server

    run_server(config)
