"""What the Kafka builder lease needs of the object store: a fenced ``CURRENT`` and standbys.

``CURRENT`` in the store names the served version on its first line; with the Kafka lease
(builder/lease/kafka_lease.py) a second line names the builder and lease generation that wrote it::

    v00000012
    generation 7 builder host-b:4242:9f3a1c

A builder that takes the lease first **claims the store**: it rewrites ``CURRENT`` (same
version, its own generation) with a conditional write on the ETag it just read, and from
then on replaces it only with a conditional write on the ETag it last wrote. A builder that
lost the lease while paused or cut off still holds an older ETag, so the store refuses its
``CURRENT``; its manifests are written only where none exists, so it cannot replace a version
the new builder published either. Its version files alone could land, under a number nobody
serves -- or, in a race, over a new version's files, which every reader then refuses on their
SHA-256 until the next version.

Standbys on hosts without the active builder's disk announce themselves under ``builders/``;
server hosts mirror those into their ``control/`` directory, where ``/health`` lists them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..common.files import VERSION_NAME
from ..errors import LeaseLost
from .object_store import ObjectStore, StoreConflict

CURRENT_KEY = "CURRENT"
STANDBYS_PREFIX = "builders/"
_VERSION_KEY = re.compile(r"^versions/v(\d{8,})/")


def current_text(name: str | None, generation: int, builder_id: str) -> bytes:
    """The store's ``CURRENT``: the version (or an empty line before the first), then who."""
    return f"{name or ''}\ngeneration {generation} builder {builder_id}\n".encode()


def parse_current(body: bytes | None) -> tuple[str | None, int | None]:
    """(version name, lease generation) of the store's ``CURRENT``; Nones where absent."""
    lines = (body or b"").decode("utf-8", "replace").splitlines()
    name = lines[0].strip() if lines else ""
    generation = None
    if len(lines) > 1 and (m := re.match(r"generation (\d+)", lines[1].strip())):
        generation = int(m.group(1))
    return (name if VERSION_NAME.match(name) else None), generation


@dataclass
class StoreFence:
    """One builder's claim on the store, used by its uploader (artifacts/store_sync.py).

    Attributes
    ----------
    generation, builder_id
        Whose claim it is.
    floor
        The newest version number in the store when it was claimed: this builder publishes
        above it, and never uploads its own older local versions.
    etag
        The ETag of the ``CURRENT`` this builder wrote last.
    guard
        Whether writing is safe now (the lease's ``valid``).
    on_fenced
        Called with the reason when the store shows another builder took over.
    """

    generation: int
    builder_id: str
    floor: int
    etag: str | None
    guard: Callable[[], bool]
    on_fenced: Callable[[str], None]

    def check(self) -> None:
        """Raise LeaseLost unless writing is safe now."""
        if not self.guard():
            raise LeaseLost("the builder lease is not confirmed; not writing to the store")

    def fenced(self, why: str) -> LeaseLost:
        self.on_fenced(why)
        return LeaseLost(why)


def claim_store(
    store: ObjectStore,
    generation: int,
    builder_id: str,
    guard: Callable[[], bool],
    on_fenced: Callable[[str], None],
    attempts: int = 10,
) -> StoreFence:
    """Make ``CURRENT`` this builder's (see the module docstring).

    Raises
    ------
    LeaseLost
        If the store's ``CURRENT`` is from a newer generation, or keeps changing under it.
    StoreUnreachable
        If the store does not answer.
    """
    for _ in range(attempts):
        body, etag = store.get_with_etag(CURRENT_KEY)
        name, theirs = parse_current(body)
        if theirs is not None and theirs > generation:
            raise LeaseLost(f"the store's CURRENT is from a newer lease generation ({theirs})")
        floor = max(
            [int(name[1:]) if name else 0]
            + [int(m.group(1)) for k in store.list("versions/") if (m := _VERSION_KEY.match(k))]
        )
        text = current_text(name, generation, builder_id)
        try:
            etag = store.put(CURRENT_KEY, text, if_match=etag, if_absent=etag is None)
        except StoreConflict:
            continue  # written meanwhile (the old builder's last publish): read it again
        return StoreFence(generation, builder_id, floor, etag, guard, on_fenced)
    raise LeaseLost(f"CURRENT in {store.location} kept changing while this builder claimed it")


def standby_key(builder_id: str) -> str:
    return STANDBYS_PREFIX + "standby-" + re.sub(r"[^A-Za-z0-9_.-]", "_", builder_id) + ".json"


def announce_standby(store: ObjectStore, status: dict) -> None:
    """Say in the store that this builder stands by (rewritten every few seconds)."""
    store.put(standby_key(status["builder_id"]), json.dumps(status).encode())


def withdraw_standby(store: ObjectStore, builder_id: str) -> None:
    store.delete([standby_key(builder_id)])
