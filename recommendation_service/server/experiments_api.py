"""Attribution on the server: an id on every list, impressions out, counts in.

Every list answer (recommend, similar, bought together, popular, the dashboard's) carries a
fresh ``recommendation_id``. With Kafka configured, each list is published to the
impressions topic (JSON: ``recommendation_id``, ``endpoint``, ``user``, ``items``, ``ts``,
and ``experiment`` / ``variant`` when served in one; keyed by user) without waiting for the
broker: a request never blocks on it, and a list the producer cannot queue is counted as
dropped. The builder's tracker joins impressions with the events that carry their
``recommendation_id`` and writes the counts to ``experiments.json`` in the model directory,
which ``GET /attribution``, ``GET /experiments``, ``/metrics`` and the dashboard read.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from pathlib import Path

from confluent_kafka import KafkaException, Producer
from flask import Blueprint, current_app, jsonify

from ..artifacts.control_files import ControlFiles
from ..artifacts.store import ModelStore
from ..config.kafka import KafkaSettings
from ..config.server import ServerConfig
from ..experiments.attribution import rates
from ..experiments.stats import analyse, metric_families
from ..experiments.variants import new_recommendation_id

logger = logging.getLogger(__name__)

bp = Blueprint("experiments", __name__)


#: Every publisher of this process, for flushing when a server worker exits.
_PUBLISHERS: weakref.WeakSet = weakref.WeakSet()


def flush_impressions(timeout: float = 5.0) -> None:
    """Send what is still queued (when a server worker stops)."""
    for publisher in list(_PUBLISHERS):
        publisher.close(timeout)


class ImpressionPublisher:
    """A non-blocking producer of impressions, shared by one worker's request threads."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.settings, self.topic = settings, topic
        self._producer: Producer | None = None
        self._lock = threading.Lock()
        _PUBLISHERS.add(self)

    def _get(self) -> Producer:
        with self._lock:
            if self._producer is None:
                # Impressions are counted, not read by a person: batch them for 100 ms, so a busy
                # server sends a few large batches rather than one per request.
                self._producer = Producer(
                    {"linger.ms": 100, "acks": "1", **self.settings.client_config()}
                )
            return self._producer

    def publish(self, record: dict) -> bool:
        """Queue one impression; False if the producer could not take it."""
        producer = self._get()
        try:
            key = None if record["user"] is None else str(record["user"]).encode()
            producer.produce(self.topic, json.dumps(record).encode(), key)
            producer.poll(0)  # serve delivery callbacks; never waits
            return True
        except (BufferError, KafkaException) as exc:
            logger.debug("impression not queued: %s", exc)
            return False

    def close(self, timeout: float = 5.0) -> None:
        if self._producer is not None:
            self._producer.flush(timeout)


def impression(plan, user: str | None, items: list[str], endpoint: str = "recommend") -> dict:
    """Name one served list and publish it as an impression; the response fields that name it
    (``recommendation_id``, and ``variant`` in an experiment).

    ``plan`` is the request's plan (None outside the experiment's endpoints); ``user`` None
    for lists asked without one (similar items, popular).
    """
    rid = new_recommendation_id()
    fields = {"recommendation_id": rid}
    variant = None if plan is None else plan.variant
    if variant is not None:
        fields["variant"] = variant.name
    publisher = current_app.extensions.get("recsvc_impressions")
    if publisher is None:
        return fields  # no Kafka: the id still lets the app join its own logs
    config: ServerConfig = current_app.config["RECSVC"]
    record = {"recommendation_id": rid, "endpoint": endpoint, "user": user, "items": items,
              "ts": time.time()}  # fmt: skip
    if variant is not None:
        record.update(experiment=config.experiment.name, variant=variant.name)
    ok = publisher.publish(record)
    metrics = current_app.extensions["recsvc_metrics"]
    outcome = "published" if ok else "dropped"
    metrics.lists.labels(endpoint, outcome).inc()
    if variant is not None:
        metrics.impressions.labels(config.experiment.name, variant.name, outcome).inc()
    return fields


def read_counts(model_dir: Path) -> dict | None:
    """The tracker's file, or None when the builder does not track (or it is unreadable)."""
    return ControlFiles(ModelStore(model_dir)).read_experiments()


class TrackerCollector:
    """Per-variant lists, clicks and conversions from the tracker's file, at scrape time."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    def collect(self):
        yield from metric_families(read_counts(self.model_dir) or {})


def with_rates(windows: dict) -> dict:
    """``{"all": counts, "last_hour": counts}`` with click-through and conversion added."""
    return {window: {**counts, **rates(counts)} for window, counts in windows.items()}


@bp.get("/attribution")
@bp.get("/experiments")
def experiments():
    """What users did with the lists: lists, click-through, conversion and clicks by position
    for the service and each endpoint (since start and over the last hour); and the running
    experiment with its per-variant counts, compared to the first variant (rates with 95%
    intervals, two-proportion test). ``/experiments`` is the same answer."""
    config: ServerConfig = current_app.config["RECSVC"]
    data = read_counts(config.model_dir)
    experiment = config.experiment
    body: dict = {
        "tracking": data is not None,
        "tracker_updated_at": data.get("updated_at") if data else None,
        "service": with_rates((data or {}).get("service") or {}),
        "endpoints": {
            name: with_rates(windows)
            for name, windows in sorted(((data or {}).get("endpoints") or {}).items())
        },
        "experiment": experiment.describe() if experiment else None,
    }
    if experiment is not None:
        counts = (data or {}).get("experiments", {}).get(experiment.name, {})
        ordered = {v.name: counts.get(v.name, {"lists": 0}) for v in experiment.variants}
        body["counts"] = ordered
        body["click_through"] = analyse(ordered, "clicked_lists")
        body["conversion"] = analyse(ordered, "converted_lists")
    if data is not None:
        body["unattributed"] = data.get("unattributed", {})
    return jsonify(body)
