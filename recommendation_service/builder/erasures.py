"""The builder's side of erasure: follow the erasures topic, forget erased users' events.

The feed's thread only queues records; the consumer loop applies them between batches (the
window changes on that thread alone), under the builder's lock:

1. **record** the erasure in the ledger -- from then on, events of the user below the
   erasure's offsets are dropped wherever they come from (a batch, a window rebuild);
2. **forget** the user's events in the window and their pending fresh-vector marks, and count
   the window's erasures applied (the next version and updates carry that count, so servers
   know they are made without the user);
3. **tombstone** the user's record on the updates topic (compaction then deletes their fresh
   vector from Kafka), and ask for a refit so the next version has no row for them.

At start the builder reads the whole topic before it rebuilds its window (:meth:`catch_up`).
Erased user ids are not logged: the log would keep what the erasure removes.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from ..config.builder import BuilderConfig
from ..data.erasures import Erasure, ErasureLedger
from ..data.window import SlidingWindow
from ..erasure.feed import ErasureFeed
from .fresh.updates import FreshUpdates

logger = logging.getLogger(__name__)


class BuilderErasures:
    """The erasures ledger, feed and queue of one builder.

    Parameters
    ----------
    config
        The builder's configuration (cluster, ``erasures_topic``).
    """

    def __init__(self, config: BuilderConfig) -> None:
        self.kafka, self.topic = config.kafka, config.erasures_topic
        self.ledger = ErasureLedger()
        self.feed: ErasureFeed | None = None
        self.applied = 0
        self.events_erased = 0
        self._queue: deque[tuple[int, Erasure]] = deque()

    def status(self) -> dict:
        feed = self.feed.status() if self.feed is not None else {"topic": self.topic}
        return {**feed, "applied": self.applied, "events_erased": self.events_erased}

    def start(self) -> BuilderErasures:
        """Follow the topic (created when missing; the feed retries until it can)."""
        self.feed = ErasureFeed(self.kafka, self.topic, self._arrived).start()
        return self

    def stop(self) -> None:
        if self.feed is not None:
            self.feed.stop()

    def catch_up(self, stopped: Callable[[], bool]) -> bool:
        """Wait until every erasure already recorded has arrived (False: stopped first)."""
        return self.feed is not None and self.feed.wait_caught_up(stopped)

    def _arrived(self, position: int, erasure: Erasure) -> None:
        self._queue.append((position, erasure))  # deque appends are thread-safe

    def apply(
        self,
        window: SlidingWindow,
        fresh: FreshUpdates,
        lock: threading.Lock,
        on_forgotten: Callable[[str], None],
    ) -> int:
        """Apply the queued erasures; returns how many users had events in the window.

        ``on_forgotten(user)`` runs after the lock is released, for each such user.
        """
        if not self._queue:
            return 0
        forgotten = []
        with lock:
            while self._queue:
                position, erasure = self._queue.popleft()
                self.ledger.record(position, erasure)
                removed = window.forget_user(erasure.user)
                window.erasures_applied = position + 1
                fresh.forget(erasure.user)
                self.applied += 1
                self.events_erased += removed
                if removed:
                    forgotten.append(erasure.user)
                logger.info("erasure %d applied: %d events left the window", position, removed)
        for user in forgotten:
            on_forgotten(user)
        return len(forgotten)
