"""Fresh vectors as Kafka records, for server hosts that do not share the builder's disk.

An update file (update_files.py) is split into one record per user and one per new item,
keyed ``u:<user>`` / ``i:<item>`` so a compacted topic keeps each one's latest state. The
value is JSON (no pickle; readable with any console consumer)::

    {"version": "v00000007", "vector": "<base64 float32>", "seen": [3, 17],
     "seen_new": ["sku-new"], "last_ts": 1700000000.0, "recent": [17, 3],
     "erasures": 2}                                               # a user
    {"version": "v00000007", "row": "<base64 float32>"}          # a new item

The version is also the ``recsvc-version`` header, so a reader skips records of versions it
no longer serves without parsing them. Servers gather records into :class:`PendingUpdate`
per version and apply its arrays exactly like an update file's.

Under the Kafka builder lease every record also has a ``recsvc-generation`` header: the
builder's lease generation. A builder that takes the lease first writes a **fence** record
(key ``lease``, that header, no version) to every partition; a reader then drops records of
older generations that come after it, which is all a builder that lost the lease can still
deliver (its queued records reach the topic only after the fence).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import numpy as np

from ..common.files import VERSION_NAME
from ..common.id_table import decode_strings
from .update_files import UserVector, update_arrays

VERSION_HEADER = "recsvc-version"
GENERATION_HEADER = "recsvc-generation"
USER_PREFIX, ITEM_PREFIX = b"u:", b"i:"
FENCE_KEY = b"lease"


def _vector_text(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _vector(text: object, what: str) -> np.ndarray:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be base64 text")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:  # binascii.Error
        raise ValueError(f"{what} is not base64: {exc}") from exc
    if not raw or len(raw) % 4:
        raise ValueError(f"{what} is not a float32 array")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def _recent_of(arrays: dict[str, np.ndarray], k: int) -> list[int]:
    if "recent_indptr" not in arrays:  # an update of an earlier release
        return []
    bounds = arrays["recent_indptr"]
    return arrays["recent_indices"][bounds[k] : bounds[k + 1]].tolist()


def update_records(version: str, arrays: dict[str, np.ndarray]) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of every user and new item in one update's arrays."""
    users = decode_strings(arrays["user_ids.blob"], arrays["user_ids.offsets"])
    indptr, indices = arrays["seen_indptr"], arrays["seen_indices"]
    new_bounds = arrays["seen_new_indptr"]
    seen_new = decode_strings(arrays["seen_new_ids.blob"], arrays["seen_new_ids.offsets"])
    for k, user in enumerate(users):
        value = {
            "version": version,
            "vector": _vector_text(arrays["vectors"][k]),
            "seen": indices[indptr[k] : indptr[k + 1]].tolist(),
            "seen_new": seen_new[new_bounds[k] : new_bounds[k + 1]],
            "last_ts": float(arrays["last_ts"][k]),
            "recent": _recent_of(arrays, k),
            "erasures": int(arrays["erasures"][k]) if "erasures" in arrays else 0,
        }
        yield USER_PREFIX + user.encode(), json.dumps(value, separators=(",", ":")).encode()
    items = decode_strings(arrays["new_item_ids.blob"], arrays["new_item_ids.offsets"])
    for item, row in zip(items, arrays["new_item_rows"]):
        value = {"version": version, "row": _vector_text(row)}
        yield ITEM_PREFIX + item.encode(), json.dumps(value, separators=(",", ":")).encode()


def record_version(headers: list[tuple[str, bytes]] | None) -> str | None:
    """The model version a record's header names (None if absent)."""
    for name, value in headers or ():
        if name == VERSION_HEADER and value:
            return value.decode("ascii", "replace")
    return None


def record_generation(headers: list[tuple[str, bytes]] | None) -> int | None:
    """The builder-lease generation a record's header names (None if absent or not a number)."""
    for name, value in headers or ():
        if name == GENERATION_HEADER and value and value.isdigit():
            return int(value)
    return None


class PendingUpdate:
    """Records of one version not yet applied; later records of a key replace earlier ones."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.users: dict[str, UserVector] = {}
        self.seen_new: dict[str, list[str]] = {}
        self.items: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.users) + len(self.items)

    def add(self, key: bytes, value: bytes) -> None:
        """Take one record of this version.

        Raises
        ------
        ValueError
            If the key or value is malformed (the record is then skipped by the caller).
        """
        try:
            body = json.loads(value)
            name = key[2:].decode("utf-8")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not UTF-8 JSON: {exc}") from exc
        if not isinstance(body, dict) or body.get("version") != self.version or not name:
            raise ValueError("value without this record's version, or an empty key")
        if key.startswith(ITEM_PREFIX):
            self.items[name] = _vector(body.get("row"), "row")
            return
        if not key.startswith(USER_PREFIX):
            raise ValueError("key is neither u:<user> nor i:<item>")
        seen, seen_new, last_ts = body.get("seen"), body.get("seen_new"), body.get("last_ts")
        if not (isinstance(seen, list) and all(type(i) is int for i in seen)):
            raise ValueError("seen must be a list of item numbers")
        if not (isinstance(seen_new, list) and all(isinstance(i, str) for i in seen_new)):
            raise ValueError("seen_new must be a list of item ids")
        if not isinstance(last_ts, int | float):
            raise ValueError("last_ts must be a number")
        vector = _vector(body.get("vector"), "vector")
        recent = body.get("recent", [])  # absent from records of earlier releases
        if not (isinstance(recent, list) and all(type(i) is int for i in recent)):
            raise ValueError("recent must be a list of item numbers")
        erasures = body.get("erasures", 0)  # absent from records of earlier releases
        if type(erasures) is not int or erasures < 0:
            raise ValueError("erasures must be a count")
        self.users[name] = UserVector(
            vector, np.array(seen, dtype=np.int32), float(last_ts), np.array(recent, np.int32),
            erasures,
        )  # fmt: skip
        self.seen_new[name] = seen_new

    def split(self) -> Iterator[PendingUpdate]:
        """One update per user and per item (to find the records that do not fit)."""
        for user, vector in self.users.items():
            one = PendingUpdate(self.version)
            one.users[user], one.seen_new[user] = vector, self.seen_new[user]
            yield one
        for item, row in self.items.items():
            one = PendingUpdate(self.version)
            one.items[item] = row
            yield one

    def arrays(self) -> dict[str, np.ndarray]:
        """The records as one update file's arrays (vectors of one width; others dropped)."""
        users = list(self.users)
        widths = {len(v.vector) for v in self.users.values()} | {
            len(r) for r in self.items.values()
        }
        if len(widths) > 1:
            raise ValueError(f"records of {self.version} disagree on the vector width: {widths}")
        return update_arrays(
            users,
            [self.users[u] for u in users],
            [self.seen_new[u] for u in users],
            list(self.items),
            list(self.items.values()),
        )


def is_version_name(name: str | None) -> bool:
    return bool(name) and VERSION_NAME.match(name) is not None
