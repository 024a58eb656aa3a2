"""``POST /online/data/add``: validating samples and publishing them to the interactions topic.

A sample ``{"user_id", "item_id", "label", "action_type", "parameters", "ts", "basket",
"recommendation_id"}`` becomes the builder's JSON event. Rules (documented in the README):

* ``label`` 1 (default) is positive; ``label`` 0 is negative feedback: action ``dislike``.
* ``action_type`` maps through the same action -> weight table as Kafka events (no action:
  weight 1).
* ``parameters.stars`` (0-5) makes the sample a ``rating`` with that value;
  ``parameters.completion_rate`` (0-1] multiplies the weight. Other parameters are ignored.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping

from confluent_kafka import KafkaException, Producer

from ..config.kafka import KafkaSettings
from ..data.events import parse_event
from ..errors import MalformedEvent


def sample_to_event(sample: object, actions: Mapping[str, float], max_id_length: int) -> dict:
    """The builder event for one sample.

    Raises
    ------
    MalformedEvent
        With a reason that says what was expected.
    """
    if not isinstance(sample, dict):
        raise MalformedEvent("bad_sample", "each sample must be a JSON object")
    label = sample.get("label", 1)
    if label not in (0, 1) or isinstance(label, bool):
        raise MalformedEvent("bad_label", "label must be 1 (positive) or 0 (negative)")
    event: dict = {"user": sample.get("user_id"), "item": sample.get("item_id")}
    params = sample.get("parameters") or {}
    if not isinstance(params, dict):
        raise MalformedEvent("bad_parameters", "parameters must be an object")
    action = sample.get("action_type")
    stars = params.get("stars")
    if label == 0:
        event["action"] = "dislike"
    elif stars is not None:
        event.update(action="rating", value=stars)
        if not isinstance(stars, (int, float)) or isinstance(stars, bool) or not 0 <= stars <= 5:
            raise MalformedEvent("bad_parameters", "parameters.stars must be a number 0..5")
    elif action is not None:
        event["action"] = action
    rate = params.get("completion_rate")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise MalformedEvent("bad_parameters", "parameters.completion_rate must be in (0, 1]")
        event["weight"] = float(rate)
    for key in ("ts", "basket"):
        if key in sample:
            event[key] = sample[key]
    rid = sample.get("recommendation_id")
    if rid is not None:
        # Attributes the event to the experiment list it came from (attribution_tracker.py).
        if not isinstance(rid, str) or not 0 < len(rid) <= 64:
            raise MalformedEvent("bad_recommendation_id", "recommendation_id must be a string id")
        event["recommendation_id"] = rid
    # The builder's own parser is the single definition of a valid event.
    parse_event(
        json.dumps(event, allow_nan=False).encode(),
        0.0,
        max_id_length=max_id_length,
        actions=actions,
    )
    return event


class EventPublisher:
    """A Kafka producer shared by the request threads of one worker process."""

    def __init__(self, settings: KafkaSettings, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    def _get(self) -> Producer:
        with self._lock:
            if self._producer is None:
                # acks=all: a 200 means the broker has the events.
                self._producer = Producer({"acks": "all", **self.settings.client_config()})
            return self._producer

    def publish(self, events: list[dict]) -> list[str | None]:
        """Produce ``events`` and wait for delivery; returns an error text or None per event."""
        producer = self._get()
        results: list[str | None] = ["not delivered in time"] * len(events)

        def report(k):
            def callback(err, _msg):
                results[k] = None if err is None else str(err)

            return callback

        for k, event in enumerate(events):
            try:
                producer.produce(
                    self.settings.topic,
                    json.dumps(event).encode(),
                    str(event["user"]).encode(),
                    on_delivery=report(k),
                )
            except (BufferError, KafkaException) as exc:
                results[k] = str(exc)
        producer.flush(self.timeout)
        return results
