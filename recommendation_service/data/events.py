"""Parsing interaction messages into events, and counting the ones that do not parse.

Two wire formats are accepted on the interactions topic:

* ``userid:itemid`` -- UTF-8 text with exactly one ``:``; weight 1, Kafka timestamp.
* a JSON object ``{"user": ..., "item": ..., "action": ..., "value": ..., "weight": ...,
  "ts": ...}`` where everything but ``user`` and ``item`` is optional: ``action`` maps through
  the action->weight table (no action: weight 1), ``value`` is the rating for ``action: "rating"``,
  ``weight`` (default 1) multiplies the action's weight, ``ts`` defaults to the Kafka
  message timestamp, ``basket`` (or ``session``) groups events bought together, and
  ``recommendation_id`` names the experiment list the event came from (read by the
  builder's experiment tracker; the window ignores it).

A negative resulting weight is negative feedback (``dislike``, low ratings).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import NamedTuple

from ..errors import MalformedEvent

logger = logging.getLogger(__name__)

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
#: Weights above this are rejected rather than allowed to dominate the model.
MAX_WEIGHT = 1e6

#: Default action -> weight table: stronger intent, more confidence; negative = keep it away.
#: ``rating`` is special: its weight is ``table["rating"] * (value - RATING_MIDPOINT)``.
DEFAULT_ACTION_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "view": 1.0,
        "click": 2.0,
        "add_to_cart": 4.0,
        "purchase": 8.0,
        "rating": 1.0,
        "dislike": -4.0,
    }
)
RATING_MIDPOINT = 2.5


class Event(NamedTuple):
    """One user--item interaction (a named tuple: a catch-up makes millions of them, and a
    frozen dataclass costs twice as much to build)."""

    user: str
    item: str
    weight: float = 1.0
    ts: float = 0.0
    basket: str | None = None  # basket or session id, for "bought together"


def check_id(value: object, name: str, max_length: int) -> str:
    """``value`` as an id, or :class:`MalformedEvent` saying what an id must be.

    The one rule for ids, in events and in HTTP requests alike.
    """
    # Integers are common ids in JSON; bools are ints in Python but never ids.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MalformedEvent(f"bad_{name}", f"{name} must be a non-empty string or integer id")
    text = str(value)
    if not text or not text.strip():
        raise MalformedEvent(f"empty_{name}")
    if len(text) > max_length:
        raise MalformedEvent(f"long_{name}", f"{name} must be at most {max_length} characters")
    if _CONTROL_CHARS.search(text):
        raise MalformedEvent(
            f"bad_{name}", f"{name} must not contain control characters (NUL, CR, LF, ...)"
        )
    return text


def _parse_weight(value: object) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedEvent("bad_weight", "weight must be a number")
    weight = float(value)
    if not math.isfinite(weight) or weight <= 0 or weight > MAX_WEIGHT:
        raise MalformedEvent("bad_weight", f"weight must be finite and in (0, {MAX_WEIGHT:g}]")
    return weight


def _parse_ts(value: object, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool):
        raise MalformedEvent("bad_ts", "ts must be epoch seconds or an ISO-8601 string")
    if isinstance(value, (int, float)):
        ts = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise MalformedEvent("bad_ts", "ts is not an ISO-8601 timestamp") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        ts = parsed.timestamp()
    else:
        raise MalformedEvent("bad_ts", "ts must be epoch seconds or an ISO-8601 string")
    if not math.isfinite(ts) or ts < 0:
        raise MalformedEvent("bad_ts", "ts must be a finite, non-negative number of seconds")
    return ts


def _parse_action(obj: dict, actions: Mapping[str, float]) -> float:
    action = obj.get("action")
    if action is None:
        return 1.0
    if not isinstance(action, str) or action not in actions:
        raise MalformedEvent("unknown_action", f"action must be one of {sorted(actions)}")
    if action != "rating":
        return actions[action]
    value = obj.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MalformedEvent("bad_value", "a rating needs a numeric 'value'")
    if not 0 <= value <= 10:
        raise MalformedEvent("bad_value", "rating 'value' must be between 0 and 10")
    return actions["rating"] * (float(value) - RATING_MIDPOINT)


def parse_event(
    value: bytes | None,
    kafka_ts: float = 0.0,
    *,
    max_bytes: int = 16_384,
    max_id_length: int = 256,
    actions: Mapping[str, float] = DEFAULT_ACTION_WEIGHTS,
) -> Event:
    """Parse one message value into an :class:`Event`.

    Parameters
    ----------
    value
        The raw Kafka message value.
    kafka_ts
        The message timestamp in seconds, used when the event carries none.
    max_bytes
        Larger values are rejected before decoding.
    max_id_length
        Longest accepted user or item id, in characters.
    actions
        The action -> weight table for JSON events.

    Raises
    ------
    MalformedEvent
        With a short ``reason`` tag (``empty``, ``too_large``, ``bad_utf8``, ``bad_json``, ...).
    """
    if not value:
        raise MalformedEvent("empty")
    if len(value) > max_bytes:
        raise MalformedEvent("too_large", f"{len(value)} bytes > {max_bytes}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEvent("bad_utf8") from None
    text = text.strip()
    if text.startswith("{"):
        return _parse_json(text, kafka_ts, max_id_length, actions)
    user, colon, item = text.partition(":")
    if not colon or ":" in item:
        raise MalformedEvent("bad_format", "expected userid:itemid or a JSON object")
    # The common case in one pass over the text; anything unusual gets check_id's verdict.
    if (
        not user.strip()
        or not item.strip()
        or len(user) > max_id_length
        or len(item) > max_id_length
        or _CONTROL_CHARS.search(text)
    ):
        user = check_id(user, "user", max_id_length)
        item = check_id(item, "item", max_id_length)
    return Event(user, item, 1.0, kafka_ts)


def _parse_json(
    text: str, kafka_ts: float, max_id_length: int, actions: Mapping[str, float]
) -> Event:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise MalformedEvent("bad_json") from None
    if not isinstance(obj, dict):
        raise MalformedEvent("bad_json", "expected a JSON object")
    user = check_id(obj.get("user"), "user", max_id_length)
    item = check_id(obj.get("item"), "item", max_id_length)
    weight = _parse_action(obj, actions) * _parse_weight(obj.get("weight"))
    if weight == 0:
        raise MalformedEvent("zero_weight", "the action and weight give this event no weight")
    basket = obj.get("basket", obj.get("session"))
    if basket is not None:
        basket = check_id(basket, "basket", max_id_length)
    return Event(user, item, weight, _parse_ts(obj.get("ts"), kafka_ts), basket)


class MalformedCounter:
    """Counts malformed events by reason and logs them at a limited rate.

    Parameters
    ----------
    log_interval
        At most one log line per this many seconds; the line says how many were suppressed.
    """

    def __init__(self, log_interval: float = 10.0, clock=time.monotonic) -> None:
        self.by_reason: Counter[str] = Counter()
        self._log_interval = log_interval
        self._clock = clock
        self._last_log = -math.inf
        self._suppressed = 0

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def record(self, error: MalformedEvent, where: str) -> None:
        """Count ``error``; log it unless a line was logged within ``log_interval``."""
        self.by_reason[error.reason] += 1
        now = self._clock()
        if now - self._last_log < self._log_interval:
            self._suppressed += 1
            return
        logger.warning(
            "malformed event at %s: %s (%d similar suppressed, %d malformed in total)",
            where,
            error,
            self._suppressed,
            self.total,
        )
        self._last_log = now
        self._suppressed = 0
