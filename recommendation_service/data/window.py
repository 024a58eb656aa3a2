"""The sliding window: the last W events, with user and item ids mapped to matrix slots.

Events live in fixed-size numpy ring buffers, so the window never grows past W. Ids are
reference-counted by the events that mention them; when the last such event leaves the window
the id is forgotten and its slot is reused, so ids that leave stop taking space.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .events import Event
from .id_index import IdIndex


def _basket_key(basket: str | None) -> int:
    if basket is None:
        return 0
    digest = hashlib.blake2b(basket.encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest, "little") >> 1) or 1


@dataclass(frozen=True)
class Decay:
    """Exponential down-weighting of older events inside the window.

    Parameters
    ----------
    half_life_events
        An event loses half its weight after this many newer events (0 = off).
    half_life_seconds
        An event loses half its weight after this many seconds of event time (0 = off).
    """

    half_life_events: float = 0.0
    half_life_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.half_life_events < 0 or self.half_life_seconds < 0:
            raise ValueError("half-lives must be >= 0")

    @property
    def enabled(self) -> bool:
        return self.half_life_events > 0 or self.half_life_seconds > 0

    def factors(self, seq: np.ndarray, ts: np.ndarray, now_seq: int, now_ts: float) -> np.ndarray:
        """Multipliers in (0, 1] for events with these sequence numbers and times."""
        exponent = np.zeros(len(seq), dtype=np.float64)
        if self.half_life_events > 0:
            exponent += (now_seq - seq) / self.half_life_events
        if self.half_life_seconds > 0:
            exponent += np.maximum(now_ts - ts, 0.0) / self.half_life_seconds
        return np.exp2(-exponent)


@dataclass(frozen=True)
class UserHistory:
    """One user's events in the window, oldest first."""

    items: list[str]
    weights: np.ndarray  # float32, decay applied
    ts: np.ndarray


@dataclass(frozen=True)
class EventArrays:
    """Events as arrays, oldest first: user row, item column, time, basket key, weight."""

    rows: np.ndarray
    cols: np.ndarray
    ts: np.ndarray
    baskets: np.ndarray
    weights: np.ndarray | None = None


@dataclass(frozen=True)
class WindowSnapshot:
    """A compact, immutable copy of the window, ready for training.

    ``matrix`` is a users x items CSR matrix whose entries are the summed (and decayed) weights
    of each (user, item) pair in the window; rows and columns follow ``user_ids`` and
    ``item_ids``. ``seen`` has the same shape and holds every pair present in the window.
    """

    matrix: sp.csr_matrix
    seen: sp.csr_matrix
    user_ids: list[str]
    item_ids: list[str]
    n_events: int
    last_ts: float
    positive_events: EventArrays | None = None
    #: Every event of the window with its (decayed) weight, for holding the newest ones out.
    events: EventArrays | None = None
    #: Erasure records the window had applied (see :attr:`SlidingWindow.erasures_applied`).
    erasures_applied: int = 0

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
    decay
        Optional down-weighting of older events, applied in snapshots and user histories.
    """

    def __init__(self, capacity: int, decay: Decay | None = None) -> None:
        if capacity < 1:
            raise ValueError("window capacity must be >= 1")
        self.capacity = capacity
        self.decay = decay or Decay()
        #: Erasure records applied to the window so far (the position in the erasures topic,
        #: data/erasures.py): a version made from it has forgotten every user erased before.
        self.erasures_applied = 0
        self._clear()

    def _clear(self) -> None:
        """Empty the window (its capacity, decay and erasures applied stay)."""
        capacity = self.capacity
        self.users = IdIndex()
        self.items = IdIndex()
        self._user_slots = np.zeros(capacity, dtype=np.int32)
        self._item_slots = np.zeros(capacity, dtype=np.int32)
        self._weights = np.zeros(capacity, dtype=np.float32)
        self._ts = np.zeros(capacity, dtype=np.float64)
        # Basket ids as 63-bit hashes (0 = none): enough to group, without storing strings.
        self._basket = np.zeros(capacity, dtype=np.int64)
        self._seq = np.zeros(capacity, dtype=np.int64)
        # Ring positions of each user's (and item's) events, by slot, oldest first.
        self._user_positions: dict[int, deque[int]] = {}
        self._item_positions: dict[int, deque[int]] = {}
        # Events per (user slot, item slot) pair, and distinct users per item slot, kept
        # incrementally so popularity is always current.
        self._pair_events: dict[tuple[int, int], int] = {}
        self._item_users = np.zeros(1024, dtype=np.int64)
        self._next = 0  # ring position the next event is written to
        self._size = 0
        self.total_added = 0

    def __len__(self) -> int:
        return self._size

    def add(self, event: Event) -> None:
        """Append ``event``, evicting the oldest event when the window is full."""
        self.add_many([event])

    def add_many(self, events: list[Event]) -> None:
        """Append ``events`` in order, evicting the oldest as needed: the same window as
        :meth:`add` one by one, in a fraction of the time (a catch-up adds thousands at once).
        """
        for start in range(0, len(events), self.capacity):
            self._add_chunk(events[start : start + self.capacity])

    def forget_user(self, user: str) -> int:
        """Remove every event of ``user`` (an erasure); returns how many there were.

        The other events keep their order, times, weights, baskets and sequence numbers
        (decay by event count is unchanged); the user's id, and ids only they referenced,
        leave the window. Costs a pass over the window: erasures are rare.
        """
        slot = self.users.slot(user)
        if slot is None:
            return 0
        order = self._order()
        keep = order[self._user_slots[order] != slot]
        removed = self._size - len(keep)
        users = self.users.ids_of(self._user_slots[keep])
        items = self.items.ids_of(self._item_slots[keep])
        weights, ts = self._weights[keep].tolist(), self._ts[keep].tolist()
        baskets, seq = self._basket[keep].copy(), self._seq[keep].copy()
        total = self.total_added
        self._clear()
        self._add_chunk([Event(u, i, w, t) for u, i, w, t in zip(users, items, weights, ts)],
                        baskets)  # fmt: skip
        self._seq[: len(keep)] = seq
        self.total_added = total
        return removed

    def _add_chunk(self, events: list[Event], baskets: np.ndarray | None = None) -> None:
        n = len(events)
        if not n:
            return
        capacity, first = self.capacity, self._next
        positions = (first + np.arange(n)) % capacity
        users, items = np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32)
        acquire_user, acquire_item = self.users.acquire, self.items.acquire
        user_positions, item_positions = self._user_positions, self._item_positions
        pair_events = self._pair_events
        new_pairs, gone_pairs = [], []
        size = self._size
        pos = first
        # The events this chunk overwrites, read before any is written (positions are distinct).
        old_users = self._user_slots[positions].tolist()
        old_items = self._item_slots[positions].tolist()
        release_user, release_item = self.users.release, self.items.release
        # One event at a time where order matters: an eviction frees ids (and their slots)
        # before the next event takes one, exactly as :meth:`add` would.
        for k, event in enumerate(events):
            if size == capacity:  # evict the oldest event, at ``pos``
                user, item = old_users[k], old_items[k]
                positions_of = user_positions[user]
                positions_of.popleft()  # events leave oldest first, so this is ``pos``
                if not positions_of:
                    del user_positions[user]
                positions_of = item_positions[item]
                positions_of.popleft()
                if not positions_of:
                    del item_positions[item]
                pair = (user, item)
                count = pair_events[pair] - 1
                if count:
                    pair_events[pair] = count
                else:
                    del pair_events[pair]
                    gone_pairs.append(item)
                release_user(user)
                release_item(item)
            else:
                size += 1
            user = acquire_user(event.user)
            item = acquire_item(event.item)
            users[k], items[k] = user, item
            positions_of = user_positions.get(user)
            if positions_of is None:
                positions_of = user_positions[user] = deque()
            positions_of.append(pos)
            positions_of = item_positions.get(item)
            if positions_of is None:
                positions_of = item_positions[item] = deque()
            positions_of.append(pos)
            pair = (user, item)
            count = pair_events.get(pair, 0)
            pair_events[pair] = count + 1
            if count == 0:
                new_pairs.append(item)
            pos += 1
            if pos == capacity:
                pos = 0
        self._size = size
        self._user_slots[positions] = users
        self._item_slots[positions] = items
        self._weights[positions] = [e.weight for e in events]
        self._ts[positions] = [e.ts for e in events]
        self._basket[positions] = (
            baskets if baskets is not None else [_basket_key(e.basket) for e in events]
        )
        self._seq[positions] = np.arange(self.total_added, self.total_added + n)
        if new_pairs:
            top = max(new_pairs)
            if top >= len(self._item_users):
                grown = np.zeros(2 * top + 2, dtype=np.int64)
                grown[: len(self._item_users)] = self._item_users
                self._item_users = grown
            np.add.at(self._item_users, new_pairs, 1)
        if gone_pairs:
            np.subtract.at(self._item_users, gone_pairs, 1)
        self._next = pos
        self.total_added += n

    def user_history(self, user: str) -> UserHistory | None:
        """The user's events in the window (decay applied), or None if there are none."""
        slot = self.users.slot(user)
        if slot is None:
            return None
        pos = np.fromiter(self._user_positions[slot], dtype=np.int64)
        weights = self._decayed_weights(pos)
        return UserHistory(self.items.ids_of(self._item_slots[pos]), weights, self._ts[pos])

    def item_history(self, item: str) -> tuple[list[str], np.ndarray] | None:
        """Users of ``item``'s events in the window and their summed (decayed) weights."""
        slot = self.items.slot(item)
        if slot is None:
            return None
        pos = np.fromiter(self._item_positions[slot], dtype=np.int64)
        weights = self._decayed_weights(pos)
        users, inverse = np.unique(self._user_slots[pos], return_inverse=True)
        summed = np.bincount(inverse, weights=weights, minlength=len(users))
        return self.users.ids_of(users), summed

    def popular_items(self, n: int, exclude: set[str] = frozenset()) -> list[str]:
        """The ``n`` items with the most distinct users in the window, minus ``exclude``."""
        counts = self._item_users[: self.items.capacity]
        k = min(len(counts), n + len(exclude))
        if k == 0:
            return []
        top = np.argpartition(-counts, k - 1)[:k] if k < len(counts) else np.arange(len(counts))
        top = top[np.lexsort((top, -counts[top]))]
        ids = self.items.ids_of(top[counts[top] > 0])
        return [i for i in ids if i not in exclude][:n]

    def _decayed_weights(self, pos: np.ndarray) -> np.ndarray:
        """Weights of the events at ring positions ``pos``, as float64, decay applied."""
        weights = self._weights[pos].astype(np.float64)
        if self.decay.enabled:
            weights *= self.decay.factors(
                self._seq[pos], self._ts[pos], self.total_added - 1, self._newest_ts()
            )
        return weights

    def span(self) -> tuple[float, float] | None:
        """(oldest, newest) event time in the window, or None when it is empty."""
        if not self._size:
            return None
        oldest = 0 if self._size < self.capacity else self._next
        return float(self._ts[oldest]), self._newest_ts()

    def _newest_ts(self) -> float:
        return float(self._ts[(self._next - 1) % self.capacity]) if self._size else 0.0

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
        weights = self._decayed_weights(order)
        # COO -> CSR sums duplicate (user, item) entries: each event's weight counts once.
        matrix = sp.coo_matrix(
            (weights.astype(np.float32), (rows, cols)),
            shape=(len(live_users), len(live_items)),
        ).tocsr()
        matrix.sum_duplicates()
        matrix.sort_indices()
        # Every pair the user touched is "seen" (never recommended back), even if its weights
        # cancelled out; training must not see explicit zeros (implicit reads 0 as negative).
        seen = matrix.copy()
        matrix.eliminate_zeros()
        positive = self._weights[order] > 0
        ts = self._ts[order]
        baskets = self._basket[order]
        return WindowSnapshot(
            matrix=matrix,
            seen=seen,
            user_ids=self.users.ids_of(live_users),
            item_ids=self.items.ids_of(live_items),
            n_events=self._size,
            last_ts=float(self._ts[order[-1]]) if self._size else 0.0,
            positive_events=EventArrays(
                rows[positive], cols[positive], ts[positive], baskets[positive]
            ),
            events=EventArrays(rows, cols, ts, baskets, weights),
            erasures_applied=self.erasures_applied,
        )
