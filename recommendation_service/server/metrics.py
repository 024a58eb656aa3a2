"""Prometheus metrics of the server processes (multi-process safe).

Server workers are separate processes: ``recsvc serve`` points prometheus_client's
multi-process mode at a fresh directory before the workers start, every worker writes its
samples there, and ``GET /metrics`` on any worker aggregates all of them. Without that
directory (the Flask test client, an embedding app) the metrics live in one registry per app.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ..config.checks import PROMETHEUS_MULTIPROC_ENV

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def multiprocess_dir() -> str | None:
    # prometheus_client itself decides by this variable; we only mirror its decision.
    return os.environ.get(PROMETHEUS_MULTIPROC_ENV)


@dataclass
class ServerMetrics:
    requests: Counter
    latency: Histogram
    recommendations: Counter
    model_version: Gauge
    model_age: Gauge
    lists: Counter
    impressions: Counter
    registry: CollectorRegistry | None

    @classmethod
    def create(cls) -> ServerMetrics:
        multi = multiprocess_dir() is not None
        # In multi-process mode samples go to files; a registry would only double-count.
        registry = None if multi else CollectorRegistry()
        return cls(
            requests=Counter(
                "recsvc_http_requests",
                "HTTP requests by endpoint and status",
                ["endpoint", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "recsvc_http_request_seconds",
                "HTTP request latency by endpoint",
                ["endpoint"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            recommendations=Counter(
                "recsvc_recommendations",
                "Answers of /recommend by source (model or popular)",
                ["source"],
                registry=registry,
            ),
            model_version=Gauge(
                "recsvc_model_version",
                "Served model version (the oldest among workers)",
                registry=registry,
                multiprocess_mode="livemin",
            ),
            model_age=Gauge(
                "recsvc_model_age_seconds",
                "Age of the served model (the oldest among workers)",
                registry=registry,
                multiprocess_mode="livemax",
            ),
            lists=Counter(
                "recsvc_lists",
                "Lists answered with a recommendation_id and published as impressions, by "
                "endpoint and outcome (published, dropped)",
                ["endpoint", "outcome"],
                registry=registry,
            ),
            impressions=Counter(
                "recsvc_experiment_impressions",
                "Lists served in an experiment, by variant and whether the impression was "
                "published (published, dropped)",
                ["experiment", "variant", "outcome"],
                registry=registry,
            ),
            registry=registry,
        )

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def set_model(self, version: int, created_ts: float) -> None:
        self.model_version.set(version)
        self.model_age.set(max(0.0, time.time() - created_ts))

    def _registry(self) -> CollectorRegistry:
        if self.registry is not None:
            return self.registry
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry

    def snapshot(self) -> dict:
        """Cumulative request counts and latency buckets per endpoint, answers by status and
        by source, over every worker: the dashboard takes differences between two reads."""
        endpoints: dict[str, dict] = {}
        statuses: dict[str, float] = {}
        sources: dict[str, float] = {}
        for metric in self._registry().collect():
            for sample in metric.samples:
                labels = sample.labels
                if sample.name == "recsvc_http_request_seconds_bucket":
                    entry = endpoints.setdefault(labels["endpoint"], {"buckets": {}})
                    entry["buckets"][labels["le"]] = sample.value
                elif sample.name == "recsvc_http_request_seconds_count":
                    endpoints.setdefault(labels["endpoint"], {"buckets": {}})["count"] = (
                        sample.value
                    )
                elif sample.name == "recsvc_http_requests_total":
                    statuses[labels["status"]] = statuses.get(labels["status"], 0) + sample.value
                elif sample.name == "recsvc_recommendations_total":
                    sources[labels["source"]] = sources.get(labels["source"], 0) + sample.value
        return {"endpoints": endpoints, "statuses": statuses, "sources": sources}

    def exposition(self, extra=None) -> tuple[bytes, str]:
        """The text format; ``extra`` is a collector of values read at scrape time."""
        body = generate_latest(self._registry())
        if extra is not None:
            registry = CollectorRegistry()
            registry.register(extra)
            body += generate_latest(registry)
        return body, CONTENT_TYPE_LATEST


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (when the server replaces it)."""
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
