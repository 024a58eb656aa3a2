"""Retry-with-backoff bookkeeping for writes to the model directory.

A full disk or a directory that turned read-only must neither stop the builder nor make it
spin: each failure doubles the wait before the next attempt (up to a ceiling), the error is
logged once per attempt rather than once per loop, and the state is reported in the builder's
status file so ``/health`` can say why models stopped advancing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class WriteFailures:
    """Tracks consecutive failures of one kind of write and when to try again.

    Parameters
    ----------
    what
        What is being written, for log lines ("model", "update file").
    initial
        Seconds to wait after the first failure.
    maximum
        Ceiling of the wait.
    clock
        Monotonic clock (seconds).
    """

    def __init__(
        self,
        what: str,
        initial: float = 1.0,
        maximum: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("need 0 < initial <= maximum")
        self.what = what
        self.initial = initial
        self.maximum = maximum
        self._clock = clock
        self.consecutive = 0
        self.total = 0
        self.last_error: str | None = None
        #: Wall-clock time of the first failure of the current streak.
        self.failing_since: float | None = None
        self._retry_at = 0.0

    @property
    def failing(self) -> bool:
        return self.consecutive > 0

    def ready(self) -> bool:
        """Whether the next attempt is due (always, unless the last one failed)."""
        return self._clock() >= self._retry_at

    def delay(self) -> float:
        """Seconds to wait after the current streak of failures."""
        if not self.consecutive:
            return 0.0
        return min(self.maximum, self.initial * 2.0 ** (self.consecutive - 1))

    def failed(self, exc: BaseException) -> float:
        """Record a failure; returns the seconds until the next attempt."""
        self.consecutive += 1
        self.total += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.failing_since is None:
            self.failing_since = time.time()
        wait = self.delay()
        self._retry_at = self._clock() + wait
        logger.error(
            "writing %s failed (%d in a row), retrying in %.0f s: %s",
            self.what,
            self.consecutive,
            wait,
            self.last_error,
        )
        return wait

    def succeeded(self) -> None:
        """Record a success, ending any streak of failures."""
        if self.consecutive:
            logger.info("writing %s works again after %d failures", self.what, self.consecutive)
        self.consecutive = 0
        self.failing_since = None
        self._retry_at = 0.0

    def status(self) -> dict:
        """The state as reported in the builder's status file."""
        return {
            "state": "failing" if self.failing else "ok",
            "consecutive_failures": self.consecutive,
            "total_failures": self.total,
            "failing_since": self.failing_since,
            "last_error": self.last_error,
            "retry_in_seconds": (
                round(max(0.0, self._retry_at - self._clock()), 3) if self.failing else None
            ),
        }
