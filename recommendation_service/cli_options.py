"""The option sets ``recsvc`` commands share, and turning parsed options into config objects.

Every option also reads ``RECSVC_<NAME>`` from the environment (shown in ``--help``).
"""

from __future__ import annotations

import click

from .associations import AssociationParams
from .config import ALSParams, BuilderConfig
from .errors import ConfigError
from .realtime import RealtimeParams
from .window import Decay


def opt(*names, env: str, **kwargs):
    """A click option that also reads ``RECSVC_<env>`` and shows it in ``--help``."""
    return click.option(
        *names, envvar=f"RECSVC_{env}", show_envvar=True, show_default=True, **kwargs
    )


kafka_options = [
    opt(
        "--bootstrap-servers",
        env="BOOTSTRAP_SERVERS",
        default="127.0.0.1:9092",
        help="Kafka bootstrap servers (host:port[,host:port...]).",
    ),
    opt("--topic", env="TOPIC", default="interactions", help="Interactions topic."),
    opt(
        "--kafka-option",
        "kafka_options",
        env="KAFKA_OPTIONS",
        multiple=True,
        metavar="KEY=VALUE",
        help="Extra librdkafka property, repeatable (env: whitespace-separated).",
    ),
]


model_option_list = [
    opt(
        "--window",
        env="WINDOW",
        default=BuilderConfig.window,
        type=int,
        help="Number of most recent events kept (W).",
    ),
    opt(
        "--retrain-every",
        env="RETRAIN_EVERY",
        default=BuilderConfig.retrain_every,
        type=int,
        help="Refit ALS after this many new events (N).",
    ),
    opt(
        "--factors", env="FACTORS", default=ALSParams.factors, type=int, help="ALS latent factors."
    ),
    opt(
        "--regularization",
        env="REGULARIZATION",
        default=ALSParams.regularization,
        type=float,
        help="ALS L2 regularization.",
    ),
    opt(
        "--alpha",
        env="ALPHA",
        default=ALSParams.alpha,
        type=float,
        help="ALS confidence scale for interaction weights.",
    ),
    opt(
        "--iterations",
        env="ITERATIONS",
        default=ALSParams.iterations,
        type=int,
        help="ALS sweeps per refit.",
    ),
    opt(
        "--num-threads",
        env="NUM_THREADS",
        default=ALSParams.num_threads,
        type=int,
        help="Threads for ALS (0 = all cores).",
    ),
]


def stack(options):
    """One decorator applying a list of click options, in list order on the help page."""

    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


#: Window, refit cadence and ALS options (builder and evaluate).
model_options = stack(model_option_list)


realtime_option_list = [
    opt(
        "--recent-boost",
        env="RECENT_BOOST",
        default=RealtimeParams.recent_boost,
        type=float,
        help="Extra fold-in weight of a user's newest event (1 + boost).",
    ),
    opt(
        "--recent-half-life",
        env="RECENT_HALF_LIFE",
        default=RealtimeParams.recent_half_life,
        type=float,
        help="The boost halves every this many older events of the user.",
    ),
    opt(
        "--similarity-weight",
        env="SIMILARITY_WEIGHT",
        default=RealtimeParams.similarity_weight,
        type=float,
        help="Weight of item-to-item similarity with the user's recent items.",
    ),
    opt(
        "--decay-half-life-events",
        env="DECAY_HALF_LIFE_EVENTS",
        default=0.0,
        type=float,
        help="Halve an event's weight after this many newer events (0 = off).",
    ),
    opt(
        "--decay-half-life-seconds",
        env="DECAY_HALF_LIFE_SECONDS",
        default=0.0,
        type=float,
        help="Halve an event's weight after this many seconds of event time (0 = off).",
    ),
]


realtime_options = stack(realtime_option_list)


def als_params(opts) -> ALSParams:
    return ALSParams(
        factors=opts["factors"],
        regularization=opts["regularization"],
        alpha=opts["alpha"],
        iterations=opts["iterations"],
        num_threads=opts["num_threads"],
    )


def realtime_params(opts) -> RealtimeParams:
    try:
        return RealtimeParams(
            opts["recent_boost"], opts["recent_half_life"], opts["similarity_weight"]
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def association_params(opts) -> AssociationParams:
    try:
        return AssociationParams(opts["session_gap"], opts["min_support"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def decay_params(opts) -> Decay:
    try:
        return Decay(opts["decay_half_life_events"], opts["decay_half_life_seconds"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def split_env_list(values: tuple[str, ...]) -> list[str]:
    # From the environment click passes one string; split it like a shell word list.
    return [part for value in values for part in value.split()]
