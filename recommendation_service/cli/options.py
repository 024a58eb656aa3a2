"""The option sets ``recsvc`` commands share, and turning parsed options into config objects.

Every option also reads an environment variable, by one rule (click's automatic variables):
``RECSVC_<COMMAND>_<OPTION>``, upper case, dashes as underscores -- ``recsvc builder --window``
is ``RECSVC_BUILDER_WINDOW``, ``recsvc item-producer --seed`` is ``RECSVC_ITEM_PRODUCER_SEED``,
and options of ``recsvc`` itself drop the command (``RECSVC_LOG_LEVEL``). ``--help`` shows each.
"""

from __future__ import annotations

import click

from ..common.param_types import FiniteFloat
from ..config.builder import BuilderConfig
from ..config.kafka import KafkaSettings
from ..config.kafka_check import check_connection
from ..data.window import Decay
from ..errors import ConfigError, KafkaRefused
from ..training.associations import AssociationParams
from ..training.fold_in import RealtimeParams
from ..training.params import ALSParams
from ..training.ranker_fit import RankerParams
from ..training.successors import SequenceParams
from ..training.tuning import ALS_KNOBS, REALTIME_KNOBS, SEQUENCE_KNOBS, TuneParams
from ..vectors.sequences import SequenceWeights

#: Prefix of every environment variable; commands add their name (see the module docstring).
ENV_PREFIX = "RECSVC"


def config_or_exit(factory):
    """Build a config object, turning a :class:`ConfigError` into a usage error (exit 2)."""
    try:
        return factory()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


def kafka_or_exit(settings: KafkaSettings, what: str) -> None:
    """Check that the cluster accepts ``settings`` (config/kafka_check.py); a refusal ends the
    command with the broker's reason (exit 1)."""
    try:
        check_connection(settings, what)
    except KafkaRefused as exc:
        raise click.ClickException(str(exc)) from exc


def opt(*names, **kwargs):
    """A click option that shows its default and its environment variable in ``--help``.

    A float option only takes finite numbers (``nan`` would slip through every range check).
    """
    kind = kwargs.get("type")
    if kind is float:
        kwargs["type"] = FiniteFloat()
    elif isinstance(kind, click.FloatRange) and not isinstance(kind, FiniteFloat):
        kwargs["type"] = FiniteFloat(kind.min, kind.max, kind.min_open, kind.max_open, kind.clamp)
    return click.option(*names, show_envvar=True, show_default=True, **kwargs)


kafka_options = [
    opt(
        "--bootstrap-servers",
        default="127.0.0.1:9092",
        help="Kafka bootstrap servers (host:port[,host:port...]).",
    ),
    opt("--topic", default="interactions", help="Interactions topic."),
    opt(
        "--kafka-option",
        "kafka_option",
        multiple=True,
        metavar="KEY=VALUE",
        help="Extra librdkafka property, repeatable (env: whitespace-separated).",
    ),
]


#: Builder and server share it: the builder mirrors versions up, each server host down.
model_store_option = opt(
    "--model-store",
    default=None,
    help="s3://bucket/prefix to mirror model versions to (builder) or fetch them from (serve); "
    "credentials and endpoint from the AWS_* variables. --model-dir is then a local copy.",
)


#: Builder, server and ``recsvc forget`` share it.
erasures_topic_option = opt(
    "--erasures-topic",
    default="",
    help="Compacted one-partition topic of user erasures (DELETE /users/{user}, recsvc "
    "forget), created when missing; the builder drops erased users' events, servers forget "
    "them. Empty: <topic>-erasures.",
)


#: Builder and server share it: the builder sends fresh vectors, every server process reads them.
updates_topic_option = opt(
    "--updates-topic",
    default="",
    help="Compacted topic of fresh user and new-item vectors between refits: the builder sends "
    "them (creating the topic when missing), servers on hosts without the builder's directory "
    "apply them (needs --bootstrap-servers). Empty: update files only.",
)


model_option_list = [
    opt(
        "--window",
        default=BuilderConfig.window,
        type=int,
        help="Number of most recent events kept (W).",
    ),
    opt(
        "--retrain-every",
        default=BuilderConfig.retrain_every,
        type=int,
        help="Refit ALS after this many new events (N).",
    ),
    opt("--factors", default=ALSParams.factors, type=int, help="ALS latent factors."),
    opt(
        "--regularization",
        default=ALSParams.regularization,
        type=float,
        help="ALS L2 regularization.",
    ),
    opt(
        "--alpha",
        default=ALSParams.alpha,
        type=float,
        help="ALS confidence scale for interaction weights.",
    ),
    opt(
        "--iterations",
        default=ALSParams.iterations,
        type=int,
        help="ALS sweeps per refit.",
    ),
    opt(
        "--warm-iterations",
        default=ALSParams.warm_iterations,
        type=int,
        help="ALS sweeps of a refit started from the previous version's factors "
        "(0 = every refit from random factors).",
    ),
    opt(
        "--num-threads",
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
        default=RealtimeParams.recent_boost,
        type=float,
        help="Extra fold-in weight of a user's newest event (1 + boost).",
    ),
    opt(
        "--recent-half-life",
        default=RealtimeParams.recent_half_life,
        type=float,
        help="The boost halves every this many older events of the user.",
    ),
    opt(
        "--similarity-weight",
        default=RealtimeParams.similarity_weight,
        type=float,
        help="Weight of item-to-item similarity with the user's recent items.",
    ),
    opt(
        "--decay-half-life-events",
        default=0.0,
        type=float,
        help="Halve an event's weight after this many newer events (0 = off).",
    ),
    opt(
        "--decay-half-life-seconds",
        default=0.0,
        type=float,
        help="Halve an event's weight after this many seconds of event time (0 = off).",
    ),
]


realtime_options = stack(realtime_option_list)


sequence_option_list = [
    opt(
        "--sequence-weight",
        default=SequenceWeights.weight,
        type=click.FloatRange(0, 1000),
        help="Weight of what follows a user's most recent items in the window's sequences "
        "(1: the best such item counts about as much as a confident ALS prediction; 0: off). "
        "With tuning on, the starting point of the search.",
    ),
    opt(
        "--sequence-depth",
        default=SequenceWeights.depth,
        type=click.IntRange(1, SequenceParams.recent),
        help="How many of a user's most recent distinct items the sequence term follows.",
    ),
    opt(
        "--sequence-distance",
        default=SequenceParams.distance,
        type=click.IntRange(0, 50),
        help="Events of a user at most this far apart form a sequential rule "
        "(0: versions carry no rules and the sequence term is off).",
    ),
]

#: The order-aware term (builder and evaluate).
sequence_options = stack(sequence_option_list)


tuning_option_list = [
    opt(
        "--tune",
        type=click.Choice(["on", "off"]),
        default="on",
        help="At refits, hold out the window's newest events and pick factors, "
        "regularization, alpha and the real-time settings that predict them best; settings "
        "given explicitly (option or environment) are kept and not searched.",
    ),
    opt(
        "--tune-every",
        default=TuneParams.every,
        type=click.IntRange(1),
        help="Tune at every k-th refit; the refits between reuse the last choice.",
    ),
    opt(
        "--tune-backoff",
        default=TuneParams.backoff,
        type=click.IntRange(1),
        help="While tunings keep choosing the same settings, the gap between them doubles, "
        "up to this many times --tune-every (1: a fixed gap).",
    ),
    opt(
        "--tune-holdout",
        default=TuneParams.holdout,
        type=click.FloatRange(0.01, 0.49),
        help="Share of the window's newest events held out to score settings.",
    ),
]

#: Settings search of refits (builder and evaluate).
tuning_options = stack(tuning_option_list)


ranker_option_list = [
    opt(
        "--ranker",
        type=click.Choice(["on", "off"]),
        default="on",
        help="At refits, fit rankers (boosted trees, a linear fusion) on the window's newest "
        "events and rank candidates from every channel by the one that beats the sum of the "
        "score terms on them; off: rank by the sum.",
    ),
    opt(
        "--ranker-every",
        default=RankerParams.every,
        type=click.IntRange(1),
        help="Fit the rankers at every k-th refit and at every tuned one; the refits between "
        "keep the last ones.",
    ),
    opt(
        "--ranker-queries",
        default=RankerParams.max_queries,
        type=click.IntRange(100),
        help="Most held-out events the rankers learn and are chosen on.",
    ),
]

#: The rank stage's learned rankers (builder and evaluate).
ranker_options = stack(ranker_option_list)


def _switched_on(opts, name: str, off_by_default: bool) -> bool:
    """Whether an ``on|off`` option is on; ``off_by_default``: only when given explicitly."""
    ctx = click.get_current_context()
    if off_by_default and ctx.get_parameter_source(name) == click.core.ParameterSource.DEFAULT:
        return False
    return opts[name] == "on"


def ranker_params(opts, off_by_default: bool = False) -> RankerParams:
    """The rank stage's settings; ``off_by_default``: on only when ``--ranker on`` is given."""
    return RankerParams(
        enabled=_switched_on(opts, "ranker", off_by_default),
        every=opts["ranker_every"],
        max_queries=opts["ranker_queries"],
    )


def tune_params(opts, off_by_default: bool = False) -> TuneParams:
    """The tuning settings; what the user set explicitly is pinned (never searched).

    ``off_by_default``: tuning runs only when ``--tune on`` is given explicitly.
    """
    ctx = click.get_current_context()
    enabled = _switched_on(opts, "tune", off_by_default)
    pinned = {
        knob
        for knob in (*ALS_KNOBS, *REALTIME_KNOBS, *SEQUENCE_KNOBS)
        if ctx.get_parameter_source(knob)
        not in (click.core.ParameterSource.DEFAULT, click.core.ParameterSource.DEFAULT_MAP)
    }
    try:
        return TuneParams(
            enabled=enabled,
            every=opts["tune_every"],
            backoff=opts["tune_backoff"],
            holdout=opts["tune_holdout"],
            pinned=frozenset(pinned),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def als_params(opts) -> ALSParams:
    return ALSParams(
        factors=opts["factors"],
        regularization=opts["regularization"],
        alpha=opts["alpha"],
        iterations=opts["iterations"],
        warm_iterations=opts["warm_iterations"],
        num_threads=opts["num_threads"],
    )


def realtime_params(opts) -> RealtimeParams:
    try:
        return RealtimeParams(
            opts["recent_boost"], opts["recent_half_life"], opts["similarity_weight"]
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def sequence_params(opts) -> SequenceParams | None:
    """How sequential rules are learnt and weighted (None: off)."""
    if opts["sequence_distance"] == 0:
        return None
    try:
        weights = SequenceWeights(opts["sequence_weight"], opts["sequence_depth"])
        return SequenceParams(distance=opts["sequence_distance"], weights=weights)
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
