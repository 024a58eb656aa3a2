"""What ``recsvc builder`` runs with."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ..artifacts.object_store import StoreLocation
from ..data.erasures import erasures_topic_for
from ..data.events import DEFAULT_ACTION_WEIGHTS
from ..data.window import Decay
from ..errors import ConfigError
from ..training.associations import AssociationParams
from ..training.fold_in import RealtimeParams
from ..training.params import ALSParams
from ..training.ranker_fit import RankerParams
from ..training.successors import SequenceParams
from ..training.tuning import TuneParams
from ..vectors.ann import ANNParams
from .checks import require
from .kafka import KafkaSettings


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
            raise ConfigError("live quality needs 1 <= k <= 1000, size >= 1, 0 <= budget <= 1")


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
    sequence
        How sequential rules are learnt, and the sequence term's weights published with each
        version (None: versions carry no rules).
    tuning
        Whether refits search their settings on the window's newest events (on by default).
    ranker
        Whether and how refits fit the rank stage's rankers (on by default).
    catalog_topic
        The item catalog topic, read whole and published for the servers' filters (None: off).
    impressions_topic
        The topic servers publish experiment lists to; the builder joins them with events
        carrying a ``recommendation_id`` (None: experiments are not tracked).
    model_store
        ``s3://bucket/prefix`` that published versions are mirrored to (None: the model
        directory alone); see artifacts/object_store.py.
    updates_topic
        Compacted topic the fresh vectors of every update are also sent to, for servers on
        hosts without this model directory (None: update files only).
    trainer
        ``implicit`` (default) or ``spark`` (Spark MLlib's ALS; see training/spark_als.py).
    spark_master
        Spark master URL of the ``spark`` trainer.
    spark_scratch_dir
        Where the ``spark`` trainer writes each snapshot for the executors (a path they can
        read too; None: the temporary directory, right for ``local[*]``).
    niceness
        Scheduling niceness of the builder's consumer (0..19). On a host shared with servers,
        catch-ups then yield the CPU to request handling; alone on a host it changes nothing.
    train_niceness
        Scheduling niceness of the training thread (refits, tuning, index builds), at least
        ``niceness``; None: ``niceness``. At 19 a host whose servers keep every core busy
        refits almost never (fold-ins go on, the refitted model ages); at the consumer's
        niceness refits keep landing under such load, at the servers' cost (docs/deployment.md
        gives the measured trade).
    cpus
        CPUs the builder (and its training threads) may run on; None: any.
    erasures_topic
        The erasures topic (data/erasures.py), read whole at start before the window is
        rebuilt, then followed; empty: ``<topic>-erasures``.
    lease
        How builders agree which one is active: ``directory`` (a lock in the model directory,
        builder/lease/directory_lease.py) or ``kafka`` (the lease topic's owner,
        builder/lease/kafka_lease.py; needs ``model_store``).
    lease_timeout
        Seconds without heartbeats before the Kafka lease passes to a standby.
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
    sequence: SequenceParams | None = field(default_factory=SequenceParams)
    decay: Decay = field(default_factory=Decay)
    actions: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ACTION_WEIGHTS))
    update_interval: float = 0.1
    ann: ANNParams = field(default_factory=ANNParams)
    associations: AssociationParams = field(default_factory=AssociationParams)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    live_quality: LiveQualityParams = field(default_factory=LiveQualityParams)
    tuning: TuneParams = field(default_factory=TuneParams)
    ranker: RankerParams = field(default_factory=RankerParams)
    catalog_topic: str | None = "items"
    impressions_topic: str | None = None
    model_store: StoreLocation | None = None
    updates_topic: str | None = None
    trainer: str = "implicit"
    spark_master: str = "local[2]"
    spark_scratch_dir: Path | None = None
    niceness: int = 5
    train_niceness: int | None = None
    cpus: frozenset[int] | None = None
    erasures_topic: str = ""
    lease: str = "directory"
    lease_timeout: float = 6.0

    def __post_init__(self) -> None:
        require(self.lease in ("directory", "kafka"), "lease must be directory or kafka")
        require(self.lease == "directory" or self.model_store is not None,
                "--lease kafka needs --model-store")  # fmt: skip
        require(1 <= self.lease_timeout <= 300, "lease-timeout must be 1..300 s")
        if not self.erasures_topic:
            object.__setattr__(self, "erasures_topic", erasures_topic_for(self.kafka.topic))
        require(self.erasures_topic != self.kafka.topic, "the erasures topic must differ from "
                "the interactions topic")  # fmt: skip
        require(self.trainer in ("implicit", "spark"), "trainer must be implicit or spark")
        require(0 <= self.niceness <= 19, "nice must be 0..19")
        if self.train_niceness is None:
            object.__setattr__(self, "train_niceness", self.niceness)
        require(self.niceness <= self.train_niceness <= 19,
                "train-nice must be nice..19 (training never outranks the consumer)")  # fmt: skip
        require(self.cpus is None or bool(self.cpus), "cpus must name at least one CPU")
        require(self.window >= 1, "window must be >= 1 event")
        require(0.01 <= self.update_interval <= 60, "update-interval must be 0.01..60 s")
        require(0 <= self.metrics_port <= 65535, "metrics-port must be 0..65535 (0 = off)")
        for action, weight in self.actions.items():
            require(math.isfinite(weight) and weight != 0, f"action {action!r} needs weight != 0")
        object.__setattr__(self, "actions", MappingProxyType(dict(self.actions)))
        require(self.retrain_every >= 1, "retrain-every must be >= 1 event")
        require(self.keep_versions >= 2, "keep-versions must be >= 2 so readers never race")
        require(self.max_event_bytes >= 16, "max-event-bytes must be >= 16")
        require(self.max_id_length >= 1, "max-id-length must be >= 1")
        object.__setattr__(self, "model_dir", Path(self.model_dir))
