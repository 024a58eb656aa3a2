"""One active builder per model directory; any others stand by and take over when it dies.

The active builder holds an exclusive ``flock`` on ``builder.lock`` in the model directory for
as long as it runs. The kernel releases the lock the moment the process ends, however it ends
(SIGKILL included), so a standby polling for it takes over at once, joins the consumer group,
rebuilds the window from Kafka and publishes. A standby never joins the interactions consumer
group while it waits: the group's partitions stay with the active builder, and no two builders
ever write versions into the same directory.

Standbys announce themselves with a small file in ``control/`` that servers list in
``/health``. ``flock`` works on local file systems and on NFSv4; the model directory is
already shared by every server, so it is the natural place for the lock. Builders on hosts
that share no directory use the Kafka lease instead (kafka_lease.py).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import uuid
from pathlib import Path

from ...errors import RecommendationServiceError

logger = logging.getLogger(__name__)

LOCK_FILE = "builder.lock"


class LeaseError(RecommendationServiceError):
    """The model directory's lock file cannot be created or locked (permissions, no flock)."""


def new_builder_id() -> str:
    """``host:pid:random``: unique per process, readable in logs and ``/health``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class BuilderLease:
    """The exclusive right to build into ``root``.

    Parameters
    ----------
    root
        The model directory (created if missing).
    builder_id
        This process's id, written into the lock file for humans.
    """

    kind = "directory"
    #: The kernel's lock cannot be lost while the process lives: no generation, never lost.
    generation = None
    lost = None

    def __init__(self, root: Path, builder_id: str) -> None:
        self.path = Path(root) / LOCK_FILE
        self.builder_id = builder_id
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def valid(self) -> bool:
        return self.held

    def status(self) -> dict:
        return {"kind": self.kind, "path": str(self.path), "host": socket.gethostname()}

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True if this process holds it now."""
        if self._fd is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LeaseError(f"cannot create the builder lock {self.path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as exc:
            os.close(fd)
            raise LeaseError(
                f"cannot lock {self.path} (does the file system support flock?): {exc}"
            ) from exc
        # For humans only: who holds it. The lock itself is the kernel's.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self.builder_id}\n".encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> str | None:
        """The id the current holder wrote, if any (informational)."""
        try:
            return self.path.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
