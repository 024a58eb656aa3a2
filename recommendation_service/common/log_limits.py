"""Warnings from loops that retry: at most one line per interval, however often they fail."""

from __future__ import annotations

import logging
import math
import time


class RateLimitedLog:
    """Logs a warning through ``logger`` unless one was logged in the last ``interval`` s."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger, self.interval = logger, interval
        self._last = -math.inf

    def warning(self, fmt: str, *args) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.logger.warning(fmt, *args)
