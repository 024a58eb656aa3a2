"""Backoff bookkeeping for failed writes (the clock is a plain counter, the errors real)."""

from __future__ import annotations

import errno
import logging

import pytest

from recommendation_service.builder.refits.write_failures import WriteFailures


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_waits_double_up_to_the_ceiling_and_reset_on_success(caplog):
    caplog.set_level(logging.INFO, logger="recommendation_service.builder.refits.write_failures")
    clock = Clock()
    writes = WriteFailures("model", initial=1.0, maximum=8.0, clock=clock)
    assert writes.ready() and not writes.failing and writes.delay() == 0
    full = OSError(errno.ENOSPC, "No space left on device")
    waits = [writes.failed(full) for _ in range(6)]
    assert waits == [1, 2, 4, 8, 8, 8]
    assert not writes.ready()
    clock.now += 7.9
    assert not writes.ready()
    clock.now += 0.1
    assert writes.ready()
    status = writes.status()
    assert status["state"] == "failing" and status["consecutive_failures"] == 6
    assert "No space left on device" in status["last_error"]
    assert status["failing_since"] is not None
    assert sum("writing model failed" in r.getMessage() for r in caplog.records) == 6

    writes.succeeded()
    assert not writes.failing and writes.ready() and writes.delay() == 0
    status = writes.status()
    assert status["state"] == "ok" and status["total_failures"] == 6
    assert status["failing_since"] is None and status["retry_in_seconds"] is None
    assert "works again after 6 failures" in caplog.records[-1].getMessage()


def test_rejects_nonsense_settings():
    with pytest.raises(ValueError):
        WriteFailures("model", initial=0)
    with pytest.raises(ValueError):
        WriteFailures("model", initial=10, maximum=5)
