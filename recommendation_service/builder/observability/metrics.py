"""Prometheus metrics of the builder, served by a small HTTP server on a port of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class BuilderMetrics:
    """The builder's own metrics, served by a small HTTP server on a port of its own."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.events = Counter("recsvc_builder_events", "Events applied to the window", registry=r)
        self.malformed = Counter(
            "recsvc_builder_malformed_events",
            "Malformed messages by reason",
            ["reason"],
            registry=r,
        )
        self.lag = Gauge(
            "recsvc_builder_consumer_lag",
            "Messages behind the partition end",
            ["topic", "partition"],
            registry=r,
        )
        self.window_events = Gauge(
            "recsvc_builder_window_events", "Events in the window", registry=r
        )
        self.window_users = Gauge("recsvc_builder_window_users", "Users in the window", registry=r)
        self.window_items = Gauge("recsvc_builder_window_items", "Items in the window", registry=r)
        self.training = Histogram(
            "recsvc_builder_training_seconds",
            "Seconds per ALS refit",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.last_publish = Gauge(
            "recsvc_builder_last_publish_timestamp_seconds",
            "When the last model was published",
            registry=r,
        )
        self.model_version = Gauge(
            "recsvc_builder_model_version", "Last published version", registry=r
        )
        self.updates = Counter(
            "recsvc_builder_update_files", "Fresh-vector update files written", registry=r
        )
        self.write_failures = Gauge(
            "recsvc_builder_write_failures",
            "Consecutive failed writes to the model directory (0 when the last one worked)",
            ["what"],
            registry=r,
        )

        self.live_hit_rate = Gauge(
            "recsvc_builder_live_hit_rate",
            "Share of recent scored events whose item was in the top 10, by method",
            ["method"],
            registry=r,
        )
        self.live_ndcg = Gauge(
            "recsvc_builder_live_ndcg",
            "NDCG@10 over recent scored events, by method",
            ["method"],
            registry=r,
        )
        self.live_scored = Counter(
            "recsvc_builder_live_scored_events", "Events scored for live quality", registry=r
        )

    def serve(self, host: str, port: int) -> None:
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        """Free the port: a builder that steps down is followed by a new one in the process."""
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()
            self._server = None
