"""Id tables that live in the shared, memory-mapped model files instead of in each worker.

A table is three arrays: the ids' UTF-8 bytes back to back, their offsets, and the rows in
byte order of their ids. Reading the id of a row decodes a few bytes; finding the row of an id
is a binary search of about log2(n) decodes. Nothing is copied into a worker's private memory,
so a second server process adds no per-id dictionaries or string lists.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence

import numpy as np


def encode_strings(values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Pack strings as one UTF-8 byte blob plus int64 offsets (no pickle, no padding)."""
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def decode_strings(blob: np.ndarray, offsets: np.ndarray) -> list[str]:
    raw = blob.tobytes()
    bounds = offsets.tolist()
    return [raw[a:b].decode("utf-8") for a, b in itertools.pairwise(bounds)]


def byte_order(values: Sequence[str]) -> np.ndarray:
    """Rows of ``values`` sorted by their UTF-8 bytes (the order :class:`IdTable` searches)."""
    keys = [v.encode("utf-8") for v in values]
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


class _SortedKeys(Sequence):
    """The ids in byte order, as bytes, decoded on access (for :func:`bisect`).

    It holds the arrays, not the table: a reference cycle would keep a replaced model's
    memory maps (and their file descriptors) alive until the cyclic garbage collector runs.
    """

    def __init__(self, blob: np.ndarray, offsets: np.ndarray, order: np.ndarray) -> None:
        self._blob, self._offsets, self._order = blob, offsets, order

    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, k):
        row = int(self._order[k])
        return self._blob[self._offsets[row] : self._offsets[row + 1]].tobytes()


class IdTable(Sequence):
    """Row <-> id lookups over memory-mapped arrays.

    Parameters
    ----------
    blob, offsets
        The ids, as written by :func:`encode_strings`.
    order
        Rows sorted by id bytes, as written by :func:`byte_order`.
    """

    def __init__(self, blob: np.ndarray, offsets: np.ndarray, order: np.ndarray) -> None:
        self.blob, self.offsets, self.order = blob, offsets, order
        self._keys = _SortedKeys(blob, offsets, order)
        # Slicing a memoryview costs a fraction of slicing the array and copying it out.
        self._bytes = memoryview(np.ascontiguousarray(blob)).cast("B")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def bytes_at(self, row: int) -> bytes:
        return self.blob[self.offsets[row] : self.offsets[row + 1]].tobytes()

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[r] for r in range(*row.indices(len(self)))]
        return self.bytes_at(int(row)).decode("utf-8")

    def ids_of(self, rows: np.ndarray) -> list[str]:
        """The ids of ``rows`` (a request's list of ten: several times faster than one by one)."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self.offsets[rows].tolist(), self.offsets[rows + 1].tolist()
        raw = self._bytes
        return [str(raw[a:b], "utf-8") for a, b in zip(starts, ends)]

    def __iter__(self) -> Iterator[str]:
        return iter(decode_strings(self.blob, self.offsets))

    def row_of(self, key: str) -> int | None:
        """The row of ``key``, or None."""
        target = key.encode("utf-8", "surrogatepass")
        k = bisect.bisect_left(self._keys, target)
        if k < len(self) and self._keys[k] == target:
            return int(self.order[k])
        return None

    def consistency_problem(self) -> str | None:
        """A description of what is wrong with the arrays, or None (cheap, vectorised)."""
        n = len(self)
        if n < 0 or self.offsets[0] != 0 or self.offsets[-1] != len(self.blob):
            return "offsets do not cover the id bytes"
        if np.any(np.diff(self.offsets) < 0):
            return "offsets go backwards"
        if (
            len(self.order) != n
            or (n and np.bincount(self.order.clip(0, n - 1), minlength=n).max() != 1)
            or (n and (self.order.min() < 0 or self.order.max() >= n))
        ):
            return "lookup order is not a permutation of the rows"
        return None
