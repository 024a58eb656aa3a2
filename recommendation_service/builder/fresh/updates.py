"""Fresh vectors between refits: which users and items changed since the served version, and
writing their update every ``update_interval``.

Every applied event marks its user and item; every interval the marked ones are folded in
against the served version (fresh_state.py) and written as the next update file -- and sent
to the updates topic when there is one. A snapshot for the next refit starts a second set of
marks: users and items with events after it, which the new version does not contain yet and
must be folded into it once it is published. A failed write is retried after a backoff, with
whatever changed meanwhile.

Not thread-safe by itself: ``touched``, ``snapshot_taken`` and ``version_published`` run under
the builder's lock; ``flush`` takes that lock itself for the moment it swaps the marks.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ...artifacts.store import ModelStore
from ...data.window import SlidingWindow
from ...errors import LeaseLost
from ...training.fold_in import FoldIn
from ..observability.metrics import BuilderMetrics
from ..refits.write_failures import WriteFailures
from .state import fresh_state

if TYPE_CHECKING:
    import threading

    from .publisher import UpdatePublisher


class FreshUpdates:
    """The marks, fold-in state and write schedule of the builder's update files.

    Parameters
    ----------
    store
        Where update files are written.
    interval
        Seconds between updates (at least; see :meth:`flush`).
    metrics
        The builder's metrics (updates written).
    """

    def __init__(self, store: ModelStore, interval: float, metrics: BuilderMetrics) -> None:
        self.store = store
        self.interval = interval
        self.metrics = metrics
        self.failures = WriteFailures(f"update file to {store.root}", maximum=30.0)
        #: The served version's fold-in, and its name (None before the first publish).
        self.fold: FoldIn | None = None
        self.version: str | None = None
        self.seq = 0
        self.written = 0
        self._dirty: set[str] = set()
        self._dirty_items: set[str] = set()
        # Users and items with events since the last snapshot: the next version must redo them.
        self._since_snapshot: set[str] = set()
        self._since_snapshot_items: set[str] = set()
        # (version, users, items, arrays) of an update whose write failed, to retry as is.
        self._unwritten: tuple | None = None
        self._next_flush = 0.0

    def touched(self, user: str, item: str) -> None:
        """An event of ``user`` on ``item`` entered the window."""
        self._dirty.add(user)
        self._since_snapshot.add(user)
        self._dirty_items.add(item)
        self._since_snapshot_items.add(item)

    def touched_many(self, events) -> None:
        """Events (with ``user`` and ``item``) entered the window."""
        users = {e.user for e in events}
        items = {e.item for e in events}
        self._dirty |= users
        self._since_snapshot |= users
        self._dirty_items |= items
        self._since_snapshot_items |= items

    def forget(self, user: str) -> None:
        """``user`` was erased: no fresh vector of their old events is to be written."""
        self._dirty.discard(user)
        self._since_snapshot.discard(user)

    def snapshot_taken(self) -> None:
        """A refit's snapshot was taken: later events are not in the version it makes."""
        self._since_snapshot = set()
        self._since_snapshot_items = set()

    def version_published(self, manifest: dict, fold: FoldIn) -> None:
        """``manifest`` is served now: fold everything since its snapshot into it."""
        self.fold, self.version, self.seq = fold, manifest["name"], 0
        self._dirty |= self._since_snapshot
        self._dirty_items |= self._since_snapshot_items

    def flush(
        self,
        window: SlidingWindow,
        lock: threading.Lock,
        publisher: UpdatePublisher | None = None,
    ) -> None:
        """Write fresh vectors of the marked users, at most every ``interval``.

        The window only changes on the calling (consumer) thread, so it is read unlocked.
        """
        now = time.monotonic()
        if now < self._next_flush or not self.failures.ready():
            return
        with lock:
            retry = self._unwritten
            if retry is not None and retry[0] != self.version:
                # A new version re-folds everything since its snapshot; the old update is moot,
                # and the version's own publish just wrote to the same directory.
                retry = self._unwritten = None
                if not self._dirty:
                    self.failures.succeeded()
                    return
            if self.fold is None or not (self._dirty or retry):
                return
            fold, version, users, self._dirty = self.fold, self.version, self._dirty, set()
            items, self._dirty_items = self._dirty_items, set()
            self.seq += 1
            seq = self.seq
        if retry is not None and not users:
            # Nothing changed since the failed write: write the same arrays, not recompute them.
            _, users, items, fresh = retry
        else:
            if retry is not None:
                users, items = users | retry[1], items | retry[2]
            fresh = fresh_state(window, fold, users, items)
        try:
            if fresh is not None:
                self.store.write_update(version, seq, fresh)
                if publisher is not None:
                    publisher.publish(version, fresh)
                self.written += 1
                self.metrics.updates.inc()
        except LeaseLost:
            self._unwritten = None  # another builder took over: this one is stepping down
        except OSError as exc:
            # Retried after a backoff, with whatever changes meanwhile.
            self.failures.failed(exc)
            self._unwritten = (version, users, items, fresh)
        else:
            self._unwritten = None
            self.failures.succeeded()
        # While catching up on a backlog, many users change per interval; spacing flushes by
        # nine times their cost caps fold-in at a tenth of the time, and users coalesce.
        spent = time.monotonic() - now
        self._next_flush = now + max(self.interval, 9 * spent)
