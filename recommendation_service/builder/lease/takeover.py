"""Standing by until this builder holds the lease, then claiming what the lease fences.

Which lease: ``directory`` (lease.py, a lock in the model directory) or ``kafka``
(kafka_lease.py, the owner of the lease topic; builders on any host). While it waits, a
standby announces itself in the model directory's ``control/`` and, with the Kafka lease,
in the object store, so servers on every host list it. Once it holds the Kafka lease, it
claims the store's ``CURRENT`` (artifacts/store_lease.py) and numbers its versions above the
store's newest, before it consumes anything.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

from ...artifacts.object_store import ObjectStore, StoreUnreachable
from ...artifacts.store import ModelStore
from ...artifacts.store_lease import StoreFence, announce_standby, claim_store, withdraw_standby
from ...common.threads import StopFlag
from ...config.builder import BuilderConfig
from ...errors import LeaseLost
from .directory_lease import BuilderLease
from .kafka_lease import KafkaLease

logger = logging.getLogger(__name__)


class Takeover:
    """The lease of one builder, and its way from standby to active.

    Parameters
    ----------
    config
        The builder's configuration (``lease``, ``lease_timeout``, ``model_store``).
    builder_id
        The builder's id.
    store
        Its local model store; given the floor, generation and guard once the store is claimed.
    stop
        Set when the builder is asked to stop.
    """

    def __init__(
        self, config: BuilderConfig, builder_id: str, store: ModelStore, stop: StopFlag
    ) -> None:
        self.config, self.builder_id, self.store, self._stop = config, builder_id, store, stop
        self.started_at = time.time()
        self.lease: BuilderLease | KafkaLease = (
            KafkaLease(config.kafka, builder_id, config.lease_timeout)
            if config.lease == "kafka"
            else BuilderLease(store.root, builder_id)
        )
        self.fence: StoreFence | None = None  # the claim on the object store (Kafka lease)
        #: The object store the Kafka lease announces standbys in and claims; the builder's
        #: uploader uses it too (one boto3 client, not one per step of a takeover).
        self.shared = ObjectStore(config.model_store) if config.lease == "kafka" else None

    def standby_status(self) -> dict:
        """What this builder's standby announcement says while it waits for the lease."""
        return {
            "updated_at": time.time(),
            "builder_id": self.builder_id,
            "role": "standby",
            "started_at": self.started_at,
            "active": self.lease.holder(),
            "lease": self.lease.kind,
            "host": socket.gethostname(),
        }

    def acquire(
        self, write_standby: Callable[[], None], remove_standby: Callable[[], None]
    ) -> bool:
        """Wait for the lease, announcing this standby; False if stopped first."""
        if self.lease.try_acquire():
            return True
        logger.info("builder %s standing by: %s holds the %s lease", self.builder_id,
                    self.lease.holder() or "another builder", self.lease.kind)  # fmt: skip
        shared = self.shared
        announced = 0.0
        try:
            while not self._stop.wait(0.1 if shared else 0.2):
                if self.lease.try_acquire():
                    logger.info("builder %s took over (lease %s)", self.builder_id,
                                self.lease.kind)  # fmt: skip
                    return True
                write_standby()
                if shared is not None and time.monotonic() - announced > 2:
                    announced = time.monotonic()  # servers on every host list it in /health
                    try:
                        announce_standby(shared, self.standby_status())
                    except StoreUnreachable as exc:
                        logger.warning("cannot announce this standby in the store: %s", exc)
        finally:
            try:
                remove_standby()
                if shared is not None:
                    withdraw_standby(shared, self.builder_id)
            except (OSError, StoreUnreachable) as exc:
                logger.warning("cannot remove the standby announcement: %s", exc)
        return False

    def claim_store(self) -> bool:
        """Kafka lease: claim the object store's CURRENT, so an older builder cannot replace it;
        False if stopped or the lease was lost first."""
        if self.lease.generation is None:
            return True  # the directory lease: the kernel's lock fences
        while not self._stop.is_set() and self.lease.lost is None:
            try:
                self.fence = claim_store(
                    self.shared, self.lease.generation, self.builder_id, self.lease.valid,
                    self.lease.lose,
                )  # fmt: skip
            except StoreUnreachable as exc:
                logger.warning("cannot claim the model store yet: %s", exc)
                self._stop.wait(1.0)
                continue
            except LeaseLost as exc:
                self.lease.lose(str(exc))
                return False
            self.store.floor = self.fence.floor
            self.store.lease_generation = self.lease.generation
            self.store.guard = self.lease.valid
            logger.info("builder %s claimed %s at generation %d; versions from %d on",
                        self.builder_id, self.config.model_store, self.lease.generation,
                        self.fence.floor + 1)  # fmt: skip
            return True
        return False

    @property
    def stepped_down(self) -> bool:
        """It lost the lease (not asked to stop): the command stands by again."""
        return self.lease.lost is not None and not self._stop.is_set()
