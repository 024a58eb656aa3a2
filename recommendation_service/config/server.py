"""What ``recsvc serve`` runs with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ..artifacts.object_store import StoreLocation
from ..data.erasures import erasures_topic_for
from ..data.events import DEFAULT_ACTION_WEIGHTS
from ..experiments.variants import Experiment, RulesFile
from ..recommend.request import ExploreParams
from ..rules.expressions import Rule
from .checks import require
from .kafka import KafkaSettings


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
        Connection threads per process (Granian's Rust I/O threads): they read requests and
        write responses off the GIL, while the app runs one request at a time per process
        (see :mod:`~recommendation_service.server.rsgi_bridge`). A slow client holds none of
        them; one is enough on 2 cores.
    client_timeout
        Seconds a client may take to send its headers, and its whole request body, before
        the connection is closed (a body gets a JSON 408 first).
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
        ``efSearch``: recall vs. speed). None: each version's own, chosen by the builder
        to reach its target recall.
    max_body_bytes
        Larger request bodies are refused with 413.
    metrics_dir
        Directory for multi-process metrics (default: a fresh temporary one).
    ingest
        Where ``POST /online/data/add`` publishes events; None disables the endpoint.
    admin_token
        Bearer token of the write endpoints (rollback, training start) and the dashboard's
        API; None disables the former (see server/access.py).
    app_token
        Bearer token an app sends to write events and score items it names for a user
        (``POST /online/data/add``, ``/predict``, candidate ranking); the admin token works
        there too. Without either, those endpoints are open on loopback only.
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
    erasures_topic
        Where ``DELETE /users/{user}`` records erasures and every worker reads them from
        (``ingest``'s cluster; empty: ``<topic>-erasures``). Without ``ingest`` the server
        cannot erase, and forgets erased users with the builder's next version.
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
    ann_ef: int | None = None
    max_body_bytes: int = 1 << 20
    metrics_dir: Path | None = None
    ingest: KafkaSettings | None = None
    admin_token: str | None = None
    app_token: str | None = None
    max_batch: int = 1000
    actions: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ACTION_WEIGHTS))
    rules_file: RulesFile | None = None
    explore: ExploreParams = field(default_factory=ExploreParams)
    impressions_topic: str = "impressions"
    model_store: StoreLocation | None = None
    updates_topic: str | None = None
    erasures_topic: str = ""

    @property
    def rules(self) -> Mapping[str, Rule]:
        return MappingProxyType(self.rules_file.rules if self.rules_file else {})

    @property
    def experiment(self) -> Experiment | None:
        return self.rules_file.experiment if self.rules_file else None

    def __post_init__(self) -> None:
        require(
            self.experiment is None or self.ingest is not None,
            "an experiment needs --bootstrap-servers: servers publish each list as an impression",
        )
        require(
            self.experiment is None or bool(self.impressions_topic),
            "an experiment needs an --impressions-topic",
        )
        require(
            self.updates_topic is None or self.ingest is not None,
            "--updates-topic needs --bootstrap-servers: the fresh vectors come from Kafka",
        )
        if self.ingest is not None and not self.erasures_topic:
            object.__setattr__(self, "erasures_topic", erasures_topic_for(self.ingest.topic))
        require(0 <= self.port <= 65535, "port must be between 0 and 65535")
        require(1 <= self.workers <= 64, "workers must be between 1 and 64")
        require(1 <= self.threads <= 64, "threads must be between 1 and 64")
        require(0.1 <= self.client_timeout <= 3600, "client-timeout must be 0.1..3600 s")
        require(0.01 <= self.reload_interval <= 3600, "reload-interval must be 0.01..3600 s")
        require(1 <= self.max_n <= 100_000, "max-n must be between 1 and 100000")
        require(
            self.ann_ef is None or 10 <= self.ann_ef <= 100_000,
            "ann-ef must be between 10 and 100000 (or unset: each version's own)",
        )
        require(1 <= self.max_batch <= 100_000, "max-batch must be between 1 and 100000")
        require(
            self.admin_token is None or len(self.admin_token) >= 16,
            "admin token must be at least 16 characters",
        )
        require(
            self.app_token is None or len(self.app_token) >= 16,
            "app token must be at least 16 characters",
        )
        object.__setattr__(self, "model_dir", Path(self.model_dir))
