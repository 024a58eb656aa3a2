"""``recsvc builder``: the model builder process (consume, window, refit, publish)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import click
from confluent_kafka import KafkaException

from ..artifacts.object_store import StoreLocation
from ..common.threads import parse_cpus
from ..config.builder import BuilderConfig, LiveQualityParams
from ..config.checks import parse_action_weights
from ..config.kafka import KafkaSettings, parse_kafka_options
from ..errors import ConfigError
from ..training.associations import AssociationParams
from ..vectors.ann import KINDS as ANN_KINDS
from ..vectors.ann import ANNParams
from .options import (
    als_params,
    association_params,
    config_or_exit,
    decay_params,
    erasures_topic_option,
    kafka_options,
    kafka_or_exit,
    model_options,
    model_store_option,
    opt,
    ranker_options,
    ranker_params,
    realtime_options,
    realtime_params,
    sequence_options,
    sequence_params,
    split_env_list,
    tune_params,
    tuning_options,
    updates_topic_option,
)


def lease_of(choice: str, model_store: str | None) -> str:
    if choice == "auto":
        return "kafka" if model_store else "directory"
    if choice == "kafka" and not model_store:
        raise ConfigError("--lease kafka needs --model-store: builders on other hosts share "
                          "versions only through it")  # fmt: skip
    return choice


def _ann_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in ANN_KINDS]
    if unknown or not kinds:
        raise ConfigError(f"--ann-kinds: {', '.join(unknown) or 'none given'}: expected a "
                          f"comma-separated list of {', '.join(ANN_KINDS)}")  # fmt: skip
    return kinds


def cpus_of(text: str) -> frozenset[int] | None:
    if not text.strip():
        return None
    try:
        cpus = parse_cpus(text)
    except ValueError as exc:
        raise ConfigError(f"--cpus: {exc}") from exc
    available = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else cpus
    if not cpus <= available:
        raise ConfigError(f"--cpus: {sorted(cpus - available)} not available here")
    return cpus


@click.command(short_help="Consume interactions, refit ALS, publish model versions.")
@kafka_options[0]
@kafka_options[1]
@opt("--group-id", default="recsvc-builder", help="Consumer group.")
@opt(
    "--catalog-topic",
    default="items",
    help="Item catalog topic (JSON; read whole, published for request-time filters); "
    "empty turns it off.",
)
@model_store_option
@opt(
    "--lease",
    type=click.Choice(["auto", "directory", "kafka"]),
    default="auto",
    help="How builders agree which one is active: kafka (the owner of the one-partition topic "
    "<group-id>-lease; builders on any host, with --model-store), directory (a lock in "
    "--model-dir, shared by every builder). auto: kafka with --model-store, else directory.",
)
@opt(
    "--lease-timeout",
    type=click.FloatRange(1, 300),
    default=6.0,
    help="Seconds after an active builder stops heartbeating (killed, paused, cut off) before "
    "a standby takes over (--lease kafka; brokers refuse less than their "
    "group.min.session.timeout.ms, 6 s by default).",
)
@updates_topic_option
@erasures_topic_option
@opt(
    "--impressions-topic",
    default="",
    help="Topic the servers publish experiment lists to; set it to count clicks and purchases "
    "per variant (empty: experiments are not tracked).",
)
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
@sequence_options
@tuning_options
@ranker_options
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
    default=ANNParams.min_items,
    type=click.IntRange(1),
    help="Publish an approximate index for catalogs of at least this many items.",
)
@opt(
    "--ann-target-recall",
    default=ANNParams.target_recall,
    type=click.FloatRange(0.5, 1.0),
    help="Recall@10 against exact search that each version's index must reach; measured at "
    "publish on sampled users, the index kind and breadth that reach it fastest are recorded "
    "in the manifest and used by the servers.",
)
@opt(
    "--ann-kinds",
    default=",".join(ANN_KINDS),
    help=f"Index kinds the probe compares, comma-separated: {', '.join(ANN_KINDS)}.",
)
@opt(
    "--ann-recheck-every",
    default=ANNParams.recheck_every,
    type=click.IntRange(1),
    help="Refits between comparisons of every index kind; in between, the last version's "
    "kind is probed alone and kept while it reaches the target recall.",
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
@opt(
    "--live-quality-budget",
    default=LiveQualityParams.budget,
    type=click.FloatRange(0, 1),
    help="Share of the consumer's time spent scoring events against the served top 10 "
    "(live HR@10 and NDCG@10); events beyond it are sampled out, 0 turns it off.",
)
@opt(
    "--nice",
    default=BuilderConfig.niceness,
    type=click.IntRange(0, 19),
    help="Scheduling niceness of the builder's consumer, so catch-ups yield the CPU to servers "
    "on the same host.",
)
@opt(
    "--train-nice",
    default=None,
    type=click.IntRange(0, 19),
    help="Scheduling niceness of refits, tuning and index builds, at least --nice (default: "
    "--nice's). At 19 a host whose servers keep every core busy hardly ever refits.",
)
@opt(
    "--cpus",
    default="",
    help="CPUs the builder may use, e.g. 2,3 or 0-1 (empty: any), to keep it off the cores "
    "the servers use.",
)
@opt("--metrics-host", default="127.0.0.1", help="Builder metrics address.")
@opt(
    "--metrics-port",
    default=9108,
    type=click.IntRange(0, 65535),
    help="Builder metrics port (GET /metrics); 0 turns them off.",
)
@opt(
    "--trainer",
    type=click.Choice(["implicit", "spark"]),
    default="implicit",
    help="Who fits ALS: implicit in this process, or Spark MLlib (pip install "
    "'recommendation-service[spark]', Java 17+; for windows beyond one machine's cores). "
    "With spark, --tune and --ranker default to off: every tuning trial and the rankers' "
    "hold-out fit would be a Spark job.",
)
@opt("--spark-master", default="local[2]", help="Spark master URL of --trainer spark.")
@opt(
    "--spark-scratch-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where --trainer spark writes each window for the executors; on a cluster, a shared "
    "mount they all see (default: the temporary directory, right for local[N]).",
)
def builder(**opts) -> None:
    """Consume interactions, keep the sliding window, retrain ALS and publish models."""

    def make():
        if opts["trainer"] == "spark":
            from ..training.spark_als import spark_unavailable

            if (reason := spark_unavailable()) is not None:
                raise ConfigError(f"--trainer spark: {reason}")
        return BuilderConfig(
            kafka=KafkaSettings(
                bootstrap_servers=opts["bootstrap_servers"],
                topic=opts["topic"],
                group_id=opts["group_id"],
                dead_letter_topic=opts["dead_letter_topic"] or None,
                options=parse_kafka_options(split_env_list(opts["kafka_option"])),
            ),
            model_dir=opts["model_dir"],
            als=als_params(opts),
            window=opts["window"],
            retrain_every=opts["retrain_every"],
            keep_versions=opts["keep_versions"],
            max_event_bytes=opts["max_event_bytes"],
            realtime=realtime_params(opts),
            sequence=sequence_params(opts),
            decay=decay_params(opts),
            actions=parse_action_weights(split_env_list(opts["action_weights"])),
            update_interval=opts["update_interval"],
            ann=ANNParams(
                min_items=opts["ann_min_items"],
                target_recall=opts["ann_target_recall"],
                kinds=_ann_kinds(opts["ann_kinds"]),
                recheck_every=opts["ann_recheck_every"],
            ),
            associations=association_params(opts),
            metrics_host=opts["metrics_host"],
            niceness=opts["nice"],
            train_niceness=opts["train_nice"],
            cpus=cpus_of(opts["cpus"]),
            metrics_port=opts["metrics_port"],
            live_quality=LiveQualityParams(budget=opts["live_quality_budget"]),
            tuning=tune_params(opts, off_by_default=opts["trainer"] == "spark"),
            ranker=ranker_params(opts, off_by_default=opts["trainer"] == "spark"),
            catalog_topic=opts["catalog_topic"] or None,
            impressions_topic=opts["impressions_topic"] or None,
            updates_topic=opts["updates_topic"] or None,
            erasures_topic=opts["erasures_topic"],
            trainer=opts["trainer"],
            spark_master=opts["spark_master"],
            spark_scratch_dir=opts["spark_scratch_dir"],
            model_store=StoreLocation.parse(opts["model_store"]) if opts["model_store"] else None,
            lease=lease_of(opts["lease"], opts["model_store"]),
            lease_timeout=opts["lease_timeout"],
        )

    config = config_or_exit(make)
    kafka_or_exit(config.kafka, "recsvc builder")
    from ..builder.lease.directory_lease import LeaseError
    from ..builder.model_builder import ModelBuilder

    current: list[ModelBuilder] = []  # the running one, for the signal handlers
    stopped = []

    def stop(*_) -> None:
        stopped.append(True)
        for worker in current:
            worker.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    try:
        while not stopped:
            # A builder that lost the lease steps down and stands by again, with a clean slate.
            current[:] = [ModelBuilder(config)]
            if not current[0].run():
                break
    except (LeaseError, KafkaException, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
