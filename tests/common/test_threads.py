"""StopFlag: set from a signal handler while the main thread waits on it."""

from __future__ import annotations

import os
import signal
import threading
import time

from recommendation_service.common.threads import StopFlag


def test_wait_times_out_then_sees_a_set_from_another_thread():
    flag = StopFlag()
    start = time.monotonic()
    assert flag.wait(0.1) is False and time.monotonic() - start >= 0.1
    threading.Timer(0.05, flag.set).start()
    assert flag.wait(5) is True and flag.is_set()


def test_a_signal_handler_can_set_it_while_the_main_thread_waits():
    flag = StopFlag()
    previous = signal.signal(signal.SIGUSR1, lambda *_: flag.set())
    try:
        threading.Timer(0.1, os.kill, args=(os.getpid(), signal.SIGUSR1)).start()
        start = time.monotonic()
        assert flag.wait(10) is True
        assert time.monotonic() - start < 5
    finally:
        signal.signal(signal.SIGUSR1, previous)
