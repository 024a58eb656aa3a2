"""Thread helpers of every process: background-thread priority, and stop requests that signal
handlers may make."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path


def lower_thread_priority(niceness: int = 10) -> None:
    """Make the calling thread yield the CPU to request or consumer threads (Linux; no-op
    elsewhere). Loading or training in the background then adds little tail latency.

    Never raises a thread's priority: one already nicer than ``niceness`` stays as it is.
    """
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)


def parse_cpus(text: str) -> frozenset[int]:
    """CPU numbers from a list like ``2,3`` or ``0-1,4`` (Linux's cpuset notation).

    Raises
    ------
    ValueError
        If ``text`` is not such a list.
    """
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"{text!r} is not a CPU list such as 2,3 or 0-1,4")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(f"{part!r}: a range goes from low to high")
        cpus.update(range(first, last + 1))
    return frozenset(cpus)


def place_process(niceness: int, cpus: frozenset[int] | None) -> None:
    """Give every thread of this process (libraries start some at import) the niceness and
    CPUs; threads started later inherit them from their creator (Linux; elsewhere, the
    calling thread only, and what the platform lacks is skipped)."""
    try:
        tids = [int(t.name) for t in Path("/proc/self/task").iterdir()]
    except OSError:
        tids = [0]
    for tid in tids:
        with contextlib.suppress(AttributeError, OSError):  # a thread may exit meanwhile
            if niceness and os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
            if cpus is not None:
                os.sched_setaffinity(tid, cpus)


class StopFlag:
    """A stop request that a signal handler may set while the main thread waits for it.

    ``threading.Event`` is not safe for that: ``set()`` takes the lock that ``wait()`` holds
    between its sleeps, so a handler that runs on the waiting main thread at that moment
    deadlocks the process (seen as a ``recsvc demo`` that ignored SIGTERM). Setting a plain
    attribute takes no lock; :meth:`wait` polls it.
    """

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float, poll: float = 0.05) -> bool:
        """Sleep until set or ``timeout`` seconds passed; whether it is set."""
        deadline = time.monotonic() + timeout
        while not self._set and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(poll, left))
        return self._set


class BackgroundLoop:
    """A daemon thread running :meth:`_run` until :meth:`stop`, which sets ``self._stop``.

    The shape of the builder's side consumers, the object-store mirror and the servers'
    updates feed: subclasses call ``super().__init__(name)`` and loop while the event is clear.
    """

    def __init__(self, name: str, stop_timeout: float = 10.0) -> None:
        self._stop = threading.Event()
        self._stop_timeout = stop_timeout
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._thread.join(self._stop_timeout if timeout is None else timeout)
