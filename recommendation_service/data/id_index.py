"""Dense integer slots for string ids, recycled when no event references an id any more."""

from __future__ import annotations

import numpy as np


class IdIndex:
    """Maps string ids to dense integer slots, recycling slots of ids no longer referenced."""

    def __init__(self) -> None:
        self._slot_of: dict[str, int] = {}
        self._ids: list[str | None] = []
        # A list, not an array: counts change once per event, and numpy's per-element
        # access costs several times a list's.
        self._refs: list[int] = []
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
                self._refs.append(0)
            self._slot_of[key] = slot
        self._refs[slot] += 1
        return slot

    def release(self, slot: int) -> None:
        """Drop one reference; forget the id when none is left."""
        refs = self._refs[slot] - 1
        self._refs[slot] = refs
        if refs == 0:
            key = self._ids[slot]
            del self._slot_of[key]
            self._ids[slot] = None
            self._free.append(slot)

    def live_slots(self) -> np.ndarray:
        """Slots currently holding an id, ascending."""
        return np.flatnonzero(np.asarray(self._refs, dtype=np.int64) > 0)

    def ids_of(self, slots: np.ndarray) -> list[str]:
        ids = self._ids
        return [ids[s] for s in slots.tolist()]
