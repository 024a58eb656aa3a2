"""Experiments on the server: impressions out, counts in.

Each list served in an experiment is published to the impressions topic (JSON:
``recommendation_id``, ``experiment``, ``variant``, ``user``, ``items``, ``ts``, keyed by
user) without waiting for the broker: a request never blocks on it, and a list the producer
cannot queue is counted as dropped. The builder's tracker joins impressions with the events
that carry their ``recommendation_id`` and writes the counts to ``experiments.json`` in the
model directory, which ``GET /experiments`` and ``/metrics`` read.
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
from ..experiments.stats import analyse, metric_families
from ..experiments.variants import new_recommendation_id

logger = logging.getLogger(__name__)

bp = Blueprint("experiments", __name__)


#: Every publisher of this process, for flushing when a gunicorn worker exits.
_PUBLISHERS: weakref.WeakSet = weakref.WeakSet()


def flush_impressions(timeout: float = 5.0) -> None:
    """Send what is still queued (gunicorn's ``worker_exit`` hook)."""
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
            producer.produce(self.topic, json.dumps(record).encode(), str(record["user"]).encode())
            producer.poll(0)  # serve delivery callbacks; never waits
            return True
        except (BufferError, KafkaException) as exc:
            logger.debug("impression not queued: %s", exc)
            return False

    def close(self, timeout: float = 5.0) -> None:
        if self._producer is not None:
            self._producer.flush(timeout)


def impression(plan, user: str, items: list[str]) -> dict:
    """Publish the list of an experiment's request; the response fields that name it."""
    if plan.variant is None:
        return {}
    config: ServerConfig = current_app.config["RECSVC"]
    rid = new_recommendation_id()
    name = config.experiment.name
    record = {"recommendation_id": rid, "experiment": name, "variant": plan.variant.name,
              "user": user, "items": items, "ts": time.time()}  # fmt: skip
    ok = current_app.extensions["recsvc_impressions"].publish(record)
    metrics = current_app.extensions["recsvc_metrics"]
    metrics.impressions.labels(name, plan.variant.name, "published" if ok else "dropped").inc()
    return {"variant": plan.variant.name, "recommendation_id": rid}


def read_counts(model_dir: Path) -> dict | None:
    """The tracker's file, or None when the builder does not track (or it is unreadable)."""
    return ControlFiles(ModelStore(model_dir)).read_experiments()


class TrackerCollector:
    """Per-variant lists, clicks and conversions from the tracker's file, at scrape time."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    def collect(self):
        yield from metric_families(read_counts(self.model_dir) or {})


@bp.get("/experiments")
def experiments():
    """The running experiment, its per-variant counts, and click-through and conversion
    compared to the first variant (rates with 95% intervals, two-proportion test)."""
    config: ServerConfig = current_app.config["RECSVC"]
    data = read_counts(config.model_dir)
    experiment = config.experiment
    body: dict = {
        "experiment": experiment.describe() if experiment else None,
        "tracking": data is not None,
        "tracker_updated_at": data.get("updated_at") if data else None,
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
