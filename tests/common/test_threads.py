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


def test_cpu_lists_read_as_linux_writes_them():
    from recommendation_service.common.threads import parse_cpus

    assert parse_cpus("0") == {0}
    assert parse_cpus("0-2,5") == {0, 1, 2, 5}
    assert parse_cpus(" 3 , 1-1") == {1, 3}
    for bad in ("", "a", "2-1", "1-", "-1", "1,,2"):
        try:
            parse_cpus(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


#: Run in a child process: niceness cannot be undone without privileges.
_NICENESS_CHILD = """
import os, threading, json
from recommendation_service.common.threads import lower_thread_priority, place_process
seen = {}
def child():
    seen["child"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
idle = threading.Event()
old = threading.Thread(target=idle.wait)  # started before: renice reaches it too
old.start()
place_process(7, frozenset(os.sched_getaffinity(0)))
lower_thread_priority(3)  # asks for less nice: ignored
seen["main"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
seen["old"] = os.getpriority(os.PRIO_PROCESS, old.native_id)
t = threading.Thread(target=child)
t.start(); t.join(); idle.set(); old.join()
print(json.dumps(seen))
"""


def test_every_thread_is_made_nicer_never_less_nice_and_new_ones_inherit_it():
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _NICENESS_CHILD], capture_output=True,
                         text=True, check=True, timeout=60)  # fmt: skip
    assert json.loads(out.stdout) == {"main": 7, "old": 7, "child": 7}
