"""Priorities of the background threads that load and train models, in either process."""

from __future__ import annotations

import contextlib
import os
import threading


def lower_thread_priority(niceness: int = 10) -> None:
    """Make the calling thread yield the CPU to request or consumer threads (Linux; no-op
    elsewhere). Loading or training in the background then adds little tail latency."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
