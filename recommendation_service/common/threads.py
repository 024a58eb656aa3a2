"""Thread helpers of every process: background-thread priority, and stop requests that signal
handlers may make."""

from __future__ import annotations

import contextlib
import os
import threading
import time


def lower_thread_priority(niceness: int = 10) -> None:
    """Make the calling thread yield the CPU to request or consumer threads (Linux; no-op
    elsewhere). Loading or training in the background then adds little tail latency."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


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
