"""Erasure records: what forgetting a user means, as one record on a compacted topic.

An erasure of user ``u`` is a record keyed ``u`` on the erasures topic (one partition, so
every reader sees erasures in one order; compacted, so it keeps each user's latest erasure
for as long as the topic lives)::

    {"user": "u", "erased_at": 1733390000.0, "before": {"0": 1234, "1": 98}}

``before`` holds, per partition of the interactions topic, the offset its next event would
get when the erasure was requested: events of ``u`` below it are erased wherever they are
(the builder's window, a window rebuilt after a restart or takeover, a catch-up that has not
reached them yet); events at or above it are new, and make ``u`` a new user.

An erasure's *position* is its offset on the erasures topic. Whatever the builder publishes
carries how many erasure records it had applied when it made it (``erasures_applied`` in a
version's manifest, ``erasures`` in an update): a user erased at position ``p`` is hidden
from every version and fresh vector made at a count ``<= p`` -- made before the builder forgot
them -- and only those (:class:`ErasureLedger`).
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field

from ..errors import MalformedEvent

#: The erasures topic when none is named: the interactions topic's, with this suffix.
TOPIC_SUFFIX = "-erasures"


def erasures_topic_for(interactions_topic: str, named: str | None = None) -> str:
    """The erasures topic: ``named`` if given, else ``<interactions topic>-erasures``."""
    return named or f"{interactions_topic}{TOPIC_SUFFIX}"


@dataclass(frozen=True)
class Erasure:
    """One user's erasure: who, when, and where their erased events end per partition."""

    user: str
    erased_at: float
    before: dict[int, int] = field(default_factory=dict)

    def covers(self, partition: int, offset: int) -> bool:
        """Whether the event at ``offset`` of ``partition`` predates the erasure."""
        return offset < self.before.get(partition, 0)

    def encode(self) -> tuple[bytes, bytes]:
        """The record's key and value."""
        value = {
            "user": self.user,
            "erased_at": self.erased_at,
            "before": {str(p): o for p, o in sorted(self.before.items())},
        }
        return self.user.encode("utf-8"), json.dumps(value, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, key: bytes | None, value: bytes | None) -> Erasure:
        """Parse a record.

        Raises
        ------
        MalformedEvent
            If it is not an erasure this module wrote (the reader counts and skips it).
        """
        try:
            body = json.loads(value or b"")
            user = (key or b"").decode("utf-8")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedEvent("bad_erasure", f"not UTF-8 JSON: {exc}") from exc
        if not isinstance(body, dict) or body.get("user") != user or not user:
            raise MalformedEvent("bad_erasure", "the key and 'user' must name the same user")
        at, before = body.get("erased_at"), body.get("before")
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
            raise MalformedEvent("bad_erasure", "'erased_at' must be a time in seconds")
        if not isinstance(before, dict):
            raise MalformedEvent("bad_erasure", "'before' must map partitions to offsets")
        marks = {}
        for part, offset in before.items():
            if not (isinstance(part, str) and part.isdigit()) or type(offset) is not int:
                raise MalformedEvent("bad_erasure", "'before' must map partitions to offsets")
            marks[int(part)] = offset
        return cls(user, float(at), marks)


class ErasureLedger:
    """The erasures read so far: each erased user's latest position, and the next position.

    Thread-safe for one writer (a feed) and any number of readers.
    """

    def __init__(self) -> None:
        # user -> (position, erasure) of their latest erasure: one entry, replaced whole.
        self._latest: dict[str, tuple[int, Erasure]] = {}
        #: The next position to read: every record below it is in the ledger.
        self.position = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._latest)

    def record(self, position: int, erasure: Erasure) -> None:
        """Take the erasure at ``position`` (a record seen twice, or an older one of the same
        user after a newer, changes nothing)."""
        with self._lock:
            if position >= self._latest.get(erasure.user, (-1, None))[0]:
                self._latest[erasure.user] = (position, erasure)
            self.position = max(self.position, position + 1)

    def hides(self, user: str, made_at: int) -> bool:
        """Whether state of ``user`` made after ``made_at`` erasure records must be hidden."""
        latest = self._latest.get(user)
        return latest is not None and made_at <= latest[0]

    def covers(self, user: str, partition: int, offset: int) -> bool:
        """Whether the event of ``user`` at ``offset`` of ``partition`` is erased."""
        latest = self._latest.get(user)
        return latest is not None and latest[1].covers(partition, offset)
