"""The sliding window: the last W events, with user and item ids mapped to matrix slots.

Events live in fixed-size numpy ring buffers, so the window never grows past W. Ids are
reference-counted by the events that mention them; when the last such event leaves the window
the id is forgotten and its slot is reused, so ids that leave stop taking space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .events import Event


class IdIndex:
    """Maps string ids to dense integer slots, recycling slots of ids no longer referenced."""

    def __init__(self) -> None:
        self._slot_of: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._refs = np.zeros(1024, dtype=np.int64)
        self._free: list[int] = []

    def __len__(self) -> int:
        """Number of ids currently referenced."""
        return len(self._slot_of)

    def __contains__(self, key: str) -> bool:
        return key in self._slot_of

    @property
    def capacity(self) -> int:
        """Number of slots ever handed out (live plus free)."""
        return len(self._ids)

    def slot(self, key: str) -> int | None:
        return self._slot_of.get(key)

    def acquire(self, key: str) -> int:
        """Return the slot of ``key``, allocating one if needed, and take a reference."""
        slot = self._slot_of.get(key)
        if slot is None:
            if self._free:
                slot = self._free.pop()
                self._ids[slot] = key
            else:
                slot = len(self._ids)
                self._ids.append(key)
                if slot >= len(self._refs):
                    self._refs = np.concatenate([self._refs, np.zeros_like(self._refs)])
            self._slot_of[key] = slot
        self._refs[slot] += 1
        return slot

    def release(self, slot: int) -> None:
        """Drop one reference; forget the id when none is left."""
        self._refs[slot] -= 1
        if self._refs[slot] == 0:
            key = self._ids[slot]
            del self._slot_of[key]
            self._ids[slot] = None
            self._free.append(slot)

    def live_slots(self) -> np.ndarray:
        """Slots currently holding an id, ascending."""
        return np.flatnonzero(self._refs[: len(self._ids)] > 0)

    def ids_of(self, slots: np.ndarray) -> list[str]:
        ids = self._ids
        return [ids[s] for s in slots.tolist()]


@dataclass(frozen=True)
class WindowSnapshot:
    """A compact, immutable copy of the window, ready for training.

    ``matrix`` is a users x items CSR matrix whose entries are the summed weights of each
    (user, item) pair in the window; rows and columns follow ``user_ids`` and ``item_ids``.
    """

    matrix: sp.csr_matrix
    user_ids: list[str]
    item_ids: list[str]
    n_events: int
    last_ts: float

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


class SlidingWindow:
    """Keeps the most recent ``capacity`` events.

    Parameters
    ----------
    capacity
        W, the number of events kept; adding one more evicts the oldest.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("window capacity must be >= 1")
        self.capacity = capacity
        self.users = IdIndex()
        self.items = IdIndex()
        self._user_slots = np.zeros(capacity, dtype=np.int32)
        self._item_slots = np.zeros(capacity, dtype=np.int32)
        self._weights = np.zeros(capacity, dtype=np.float32)
        self._ts = np.zeros(capacity, dtype=np.float64)
        self._next = 0  # ring position the next event is written to
        self._size = 0
        self.total_added = 0

    def __len__(self) -> int:
        return self._size

    def add(self, event: Event) -> None:
        """Append ``event``, evicting the oldest event when the window is full."""
        pos = self._next
        if self._size == self.capacity:
            self.users.release(int(self._user_slots[pos]))
            self.items.release(int(self._item_slots[pos]))
        else:
            self._size += 1
        self._user_slots[pos] = self.users.acquire(event.user)
        self._item_slots[pos] = self.items.acquire(event.item)
        self._weights[pos] = event.weight
        self._ts[pos] = event.ts
        self._next = (pos + 1) % self.capacity
        self.total_added += 1

    def _order(self) -> np.ndarray:
        """Ring positions of the live events, oldest first."""
        if self._size < self.capacity:
            return np.arange(self._size)
        return (np.arange(self.capacity) + self._next) % self.capacity

    def events(self) -> list[Event]:
        """The events in the window, oldest first (for inspection and tests)."""
        order = self._order()
        users = self.users.ids_of(self._user_slots[order])
        items = self.items.ids_of(self._item_slots[order])
        return [
            Event(u, i, float(w), float(t))
            for u, i, w, t in zip(users, items, self._weights[order], self._ts[order])
        ]

    def snapshot(self) -> WindowSnapshot:
        """Build the summed user x item matrix over only the ids present in the window."""
        order = self._order()
        live_users = self.users.live_slots()
        live_items = self.items.live_slots()
        user_row = np.full(self.users.capacity, -1, dtype=np.int64)
        user_row[live_users] = np.arange(len(live_users))
        item_col = np.full(self.items.capacity, -1, dtype=np.int64)
        item_col[live_items] = np.arange(len(live_items))
        rows = user_row[self._user_slots[order]]
        cols = item_col[self._item_slots[order]]
        # COO -> CSR sums duplicate (user, item) entries: each event's weight counts once.
        matrix = sp.coo_matrix(
            (self._weights[order].astype(np.float32), (rows, cols)),
            shape=(len(live_users), len(live_items)),
        ).tocsr()
        matrix.sum_duplicates()
        matrix.sort_indices()
        return WindowSnapshot(
            matrix=matrix,
            user_ids=self.users.ids_of(live_users),
            item_ids=self.items.ids_of(live_items),
            n_events=self._size,
            last_ts=float(self._ts[order[-1]]) if self._size else 0.0,
        )
