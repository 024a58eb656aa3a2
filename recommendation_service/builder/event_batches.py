"""Applying one consumed batch of messages to the window, in bulk.

A catch-up after an outage or a replay hands the builder thousands of messages per poll; doing
each one's steps separately (parse, score, add to the window, mark for fold-in, remember the
offset) costs Python overhead per step. Here each step runs over the whole batch:

1. **parse** every message (malformed ones go to the dead letters), remembering the newest
   offset per partition;
2. **score** live quality on the batch's first scorable event while the time budget allows,
   against the window *before* that event enters it (what the service answered the user
   then);
3. **add** the events to the window in one call (the same window as one by one);
4. **mark** their users and items for the next fresh-vector flush (fold-ins coalesce per user).

The window, the offsets and the fresh vectors come out exactly as when the same events are
applied one at a time (``tests/builder/test_event_batches.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from confluent_kafka import Message

from ..config.builder import BuilderConfig
from ..data.erasures import ErasureLedger
from ..data.events import Event, parse_event
from ..data.window import SlidingWindow
from ..errors import MalformedEvent
from .dead_letters import DeadLetters
from .fresh.updates import FreshUpdates
from .observability.live_quality import LiveQuality


class Applied(NamedTuple):
    """What one batch did: events applied, events scored, the newest message per partition."""

    applied: int
    scored: int
    last: dict[tuple[str, int], Message]


class EventBatches:
    """The builder's per-batch steps over its window, live quality and fresh-vector marks.

    Not thread-safe: the builder calls :meth:`apply` under its lock.
    """

    def __init__(
        self,
        config: BuilderConfig,
        window: SlidingWindow,
        quality: LiveQuality,
        fresh: FreshUpdates,
        dead_letters: DeadLetters,
        positions: dict[tuple[str, int], int],
        on_error: Callable[[Message], None],
        erasures: ErasureLedger | None = None,
    ) -> None:
        self.config, self.window, self.quality = config, window, quality
        self.fresh, self.dead_letters, self.positions = fresh, dead_letters, positions
        self.on_error = on_error
        self.erasures = erasures or ErasureLedger()

    def apply(self, messages: list[Message], sequence: tuple | None) -> Applied:
        events, last = self.parse(messages)
        scored, added = self.score(events, sequence)
        self.window.add_many(events[added:] if added else events)
        self.fresh.touched_many(events)
        for key, msg in last.items():
            self.positions[key] = msg.offset() + 1
        return Applied(len(events), scored, last)

    def parse(self, messages: list[Message]) -> tuple[list[Event], dict]:
        cfg = self.config
        max_bytes, max_id, actions = cfg.max_event_bytes, cfg.max_id_length, cfg.actions
        events: list[Event] = []
        last: dict[tuple[str, int], Message] = {}
        erased = self.erasures.covers if len(self.erasures) else None
        for msg in messages:
            if msg.error():
                self.on_error(msg)
                continue
            try:
                event = parse_event(
                    msg.value(),
                    msg.timestamp()[1] / 1000.0,
                    max_bytes=max_bytes,
                    max_id_length=max_id,
                    actions=actions,
                )
            except MalformedEvent as exc:
                self.dead_letters.record(msg, exc)
            else:
                # Dropped: an event produced before its user's erasure, consumed after it.
                if erased is None or not erased(event.user, msg.partition(), msg.offset()):
                    events.append(event)
            last[(msg.topic(), msg.partition())] = msg
        return events, last

    def score(self, events: list[Event], sequence: tuple | None) -> tuple[int, int]:
        """Score positive events, each against the window just before it, while the time
        budget allows (usually a few per batch); the others count as skipped for the budget.

        Returns how many were scored and how many of ``events`` (those before the last one
        scored) this added to the window already.
        """
        fold = self.fresh.fold
        if not events or fold is None:
            return 0, 0
        quality, window = self.quality, self.window
        added = scored = tried = 0
        for k, event in enumerate(events):
            if not quality.due():
                break
            if event.weight <= 0:
                continue
            window.add_many(events[added:k])
            added = k
            tried += 1
            scored += quality.score(event, window, fold, sequence)
        quality.skipped += len(events) - tried
        return scored, added
