"""Typed, frozen configuration objects, validated once where they are built.

The CLI parses options and ``RECSVC_*`` environment variables into these objects and passes
them down; nothing deeper in the package reads the environment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from .errors import ConfigError
from .model.ann import ANNParams
from .model.associations import AssociationParams
from .model.events import DEFAULT_ACTION_WEIGHTS
from .model.experiments import Experiment, RulesFile
from .model.exploration import ExploreParams
from .model.object_store import StoreLocation
from .model.realtime import RealtimeParams
from .model.rule_expr import Rule
from .model.trainer import ALSParams
from .model.tuning import TuneParams
from .model.window import Decay

#: librdkafka settings that make group joins take seconds instead of ~20 s, and keep a fetch
#: from idling at the broker for long (Tansu, the embedded broker, holds a fetch for its full wait
#: even when data is there: ~200 ms median delay with the 500 ms default, ~30 ms with 50).
#: Users override any of them with ``--kafka-option``; they suit production brokers too.
DEFAULT_CONSUMER_OPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "500",
        "fetch.wait.max.ms": "50",
        "fetch.max.bytes": "52428800",
        "max.partition.fetch.bytes": "10485760",
    }
)

# Keys the builder controls itself because its offset guarantees depend on them.
_RESERVED_CONSUMER_KEYS = frozenset(
    {"group.id", "bootstrap.servers", "enable.auto.offset.store", "enable.partition.eof"}
)


#: Environment variable that switches prometheus_client to multi-process mode. ``recsvc serve``
#: sets it before any worker imports prometheus_client (which reads it once, at import).
PROMETHEUS_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def parse_action_weights(pairs: tuple[str, ...] | list[str]) -> dict[str, float]:
    """Parse ``action=weight`` overrides on top of the default table.

    Raises
    ------
    ConfigError
        If an entry is not ``name=number``.
    """
    table = dict(DEFAULT_ACTION_WEIGHTS)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            table[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"action weight {pair!r} must look like name=number") from None
    return table


def parse_kafka_options(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Parse ``key=value`` librdkafka properties given on the command line.

    Raises
    ------
    ConfigError
        If an entry has no ``=`` or an empty key.
    """
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"Kafka option {pair!r} must look like key=value")
        options[key] = value.strip()
    return options


@dataclass(frozen=True)
class KafkaSettings:
    """Where the interactions live and how to reach them.

    Parameters
    ----------
    bootstrap_servers
        Comma-separated ``host:port`` list.
    topic
        The interactions topic.
    group_id
        Consumer group of the builder; its committed offsets mark what the window holds.
    dead_letter_topic
        Optional topic that receives a copy of every malformed message.
    options
        Extra librdkafka properties passed to every client (security, timeouts, fetch sizes).
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "interactions"
    group_id: str = "recsvc-builder"
    dead_letter_topic: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(bool(self.bootstrap_servers.strip()), "bootstrap servers must not be empty")
        _require(bool(self.topic.strip()), "topic must not be empty")
        _require(bool(self.group_id.strip()), "group id must not be empty")
        _require(
            self.dead_letter_topic is None or self.dead_letter_topic != self.topic,
            "the dead-letter topic must differ from the interactions topic",
        )
        reserved = _RESERVED_CONSUMER_KEYS & set(self.options)
        _require(not reserved, f"these Kafka options are set by the service: {sorted(reserved)}")
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def client_config(self) -> dict[str, str]:
        """Common settings for any client (producer, admin) of this cluster."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.options}

    def consumer_config(self, group_id: str | None = None) -> dict[str, object]:
        """Consumer settings: fast-join defaults, then the user's options, then ours."""
        config: dict[str, object] = {
            **DEFAULT_CONSUMER_OPTIONS,
            "auto.offset.reset": "earliest",
            **self.client_config(),
        }
        config.update(
            {
                "group.id": group_id or self.group_id,
                # Offsets are stored only after an event is in the window; auto-commit then
                # commits exactly what was applied.
                "enable.auto.offset.store": False,
                "enable.partition.eof": False,
            }
        )
        return config


@dataclass(frozen=True)
class LiveQualityParams:
    """How live quality is measured.

    Parameters
    ----------
    k
        Length of the recommendation list an event is checked against.
    size
        Scored events the rolling figures cover.
    budget
        Largest share of the consumer thread's time spent scoring (0 turns scoring off).
    """

    k: int = 10
    size: int = 10_000
    budget: float = 0.02

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 1000 or self.size < 1 or not 0 <= self.budget <= 1:
            raise ValueError("live quality needs 1 <= k <= 1000, size >= 1, 0 <= budget <= 1")


@dataclass(frozen=True)
class BuilderConfig:
    """Everything the model builder needs.

    Parameters
    ----------
    kafka
        Broker, topic and client settings.
    als
        Training hyper-parameters.
    model_dir
        Directory the model versions are published to.
    window
        Number of most recent events kept (W).
    retrain_every
        Refit after this many new events (N).
    keep_versions
        Published versions kept on disk; older ones are pruned.
    max_event_bytes
        Messages larger than this are malformed.
    max_id_length
        User or item ids longer than this (in characters) are malformed.
    live_quality
        How incoming events are scored against what the service would have recommended.
    tuning
        Whether refits search their settings on the window's newest events (on by default).
    catalog_topic
        The item catalog topic, read whole and published for the servers' filters (None: off).
    impressions_topic
        The topic servers publish experiment lists to; the builder joins them with events
        carrying a ``recommendation_id`` (None: experiments are not tracked).
    model_store
        ``s3://bucket/prefix`` that published versions are mirrored to (None: the model
        directory alone); see object_store.py.
    updates_topic
        Compacted topic the fresh vectors of every update are also sent to, for servers on
        hosts without this model directory (None: update files only).
    trainer
        ``implicit`` (default) or ``spark`` (Spark MLlib's ALS; see spark_trainer.py).
    spark_master
        Spark master URL of the ``spark`` trainer.
    spark_scratch_dir
        Where the ``spark`` trainer writes each snapshot for the executors (a path they can
        read too; None: the temporary directory, right for ``local[*]``).
    """

    kafka: KafkaSettings
    model_dir: Path
    als: ALSParams = field(default_factory=ALSParams)
    window: int = 100_000
    retrain_every: int = 10_000
    keep_versions: int = 3
    max_event_bytes: int = 16_384
    max_id_length: int = 256
    realtime: RealtimeParams = field(default_factory=RealtimeParams)
    decay: Decay = field(default_factory=Decay)
    actions: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ACTION_WEIGHTS))
    update_interval: float = 0.1
    ann: ANNParams = field(default_factory=ANNParams)
    associations: AssociationParams = field(default_factory=AssociationParams)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    live_quality: LiveQualityParams = field(default_factory=LiveQualityParams)
    tuning: TuneParams = field(default_factory=TuneParams)
    catalog_topic: str | None = "items"
    impressions_topic: str | None = None
    model_store: StoreLocation | None = None
    updates_topic: str | None = None
    trainer: str = "implicit"
    spark_master: str = "local[2]"
    spark_scratch_dir: Path | None = None

    def __post_init__(self) -> None:
        _require(self.trainer in ("implicit", "spark"), "trainer must be implicit or spark")
        _require(self.window >= 1, "window must be >= 1 event")
        _require(0.01 <= self.update_interval <= 60, "update-interval must be 0.01..60 s")
        _require(0 <= self.metrics_port <= 65535, "metrics-port must be 0..65535 (0 = off)")
        for action, weight in self.actions.items():
            _require(math.isfinite(weight) and weight != 0, f"action {action!r} needs weight != 0")
        object.__setattr__(self, "actions", MappingProxyType(dict(self.actions)))
        _require(self.retrain_every >= 1, "retrain-every must be >= 1 event")
        _require(self.keep_versions >= 2, "keep-versions must be >= 2 so readers never race")
        _require(self.max_event_bytes >= 16, "max-event-bytes must be >= 16")
        _require(self.max_id_length >= 1, "max-id-length must be >= 1")
        object.__setattr__(self, "model_dir", Path(self.model_dir))


@dataclass(frozen=True)
class ServerConfig:
    """Settings of the HTTP server.

    Parameters
    ----------
    model_dir
        Directory the builder publishes to.
    host, port
        Listening address.
    workers
        Number of server processes.
    threads
        Connection threads per process: they read requests and write responses, while the
        app runs one request at a time per process (see
        :mod:`~recommendation_service.server.request_gate`). A slow client holds one of them for up
        to ``client_timeout``; more threads cost throughput (request parsing contends for the
        GIL), so the default suits a server behind a buffering proxy or load balancer.
    client_timeout
        Seconds a client may take to send a request body, and that any one socket read or
        write may block, before the connection is closed.
    reload_interval
        Seconds between checks for a newly published model.
    max_n
        Upper bound of the ``n`` query parameter.
    max_id_length
        Longest accepted user id.
    access_log
        One JSON line per request on stdout.
    ann_ef
        Candidate list size of a search for models with an approximate index (HNSW's
        ``efSearch``: recall vs. speed).
    max_body_bytes
        Larger request bodies are refused with 413.
    metrics_dir
        Directory for multi-process metrics (default: a fresh temporary one).
    ingest
        Where ``POST /online/data/add`` publishes events; None disables the endpoint.
    admin_token
        Bearer token of the write endpoints (rollback, training start); None disables them.
    max_batch
        Most samples one ``POST /online/data/add`` may carry.
    actions
        Action -> weight table used to validate ``action_type`` (same as the builder's).
    rules_file
        Named rules and the running experiment (``--rules-file``); None: neither.
    explore
        How much new catalog items are shown before they have events.
    impressions_topic
        Where lists served in an experiment are published (needs ``ingest``'s cluster).
    model_store
        ``s3://bucket/prefix`` the versions are fetched from into ``model_dir`` (then a local
        cache); None: ``model_dir`` is the builder's directory itself.
    updates_topic
        Topic of the builder's fresh vectors, read by every worker from ``ingest``'s cluster
        (None: only update files in ``model_dir``).
    """

    model_dir: Path
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    threads: int = 1
    client_timeout: float = 5.0
    reload_interval: float = 0.1
    max_n: int = 1000
    max_id_length: int = 256
    access_log: bool = True
    ann_ef: int = 128
    max_body_bytes: int = 1 << 20
    metrics_dir: Path | None = None
    ingest: KafkaSettings | None = None
    admin_token: str | None = None
    max_batch: int = 1000
    actions: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ACTION_WEIGHTS))
    rules_file: RulesFile | None = None
    explore: ExploreParams = field(default_factory=ExploreParams)
    impressions_topic: str = "impressions"
    model_store: StoreLocation | None = None
    updates_topic: str | None = None

    @property
    def rules(self) -> Mapping[str, Rule]:
        return MappingProxyType(self.rules_file.rules if self.rules_file else {})

    @property
    def experiment(self) -> Experiment | None:
        return self.rules_file.experiment if self.rules_file else None

    def __post_init__(self) -> None:
        _require(
            self.experiment is None or self.ingest is not None,
            "an experiment needs --bootstrap-servers: servers publish each list as an impression",
        )
        _require(
            self.experiment is None or bool(self.impressions_topic),
            "an experiment needs an --impressions-topic",
        )
        _require(
            self.updates_topic is None or self.ingest is not None,
            "--updates-topic needs --bootstrap-servers: the fresh vectors come from Kafka",
        )
        _require(0 <= self.port <= 65535, "port must be between 0 and 65535")
        _require(1 <= self.workers <= 64, "workers must be between 1 and 64")
        _require(1 <= self.threads <= 64, "threads must be between 1 and 64")
        _require(0.1 <= self.client_timeout <= 3600, "client-timeout must be 0.1..3600 s")
        _require(0.01 <= self.reload_interval <= 3600, "reload-interval must be 0.01..3600 s")
        _require(1 <= self.max_n <= 100_000, "max-n must be between 1 and 100000")
        _require(10 <= self.ann_ef <= 100_000, "ann-ef must be between 10 and 100000")
        _require(1 <= self.max_batch <= 100_000, "max-batch must be between 1 and 100000")
        _require(
            self.admin_token is None or len(self.admin_token) >= 16,
            "admin token must be at least 16 characters",
        )
        object.__setattr__(self, "model_dir", Path(self.model_dir))
