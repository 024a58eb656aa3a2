"""The model directory's builder lease: one holder, released when the holder dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from recommendation_service.builder.lease.directory_lease import BuilderLease, LeaseError
from recommendation_service.cli import main


def test_one_holder_at_a_time_and_release_hands_over(tmp_path):
    first, second = BuilderLease(tmp_path, "a"), BuilderLease(tmp_path, "b")
    assert first.try_acquire() and first.held
    assert not second.try_acquire() and not second.held
    assert second.holder() == "a"
    first.release()
    assert second.try_acquire() and second.holder() == "b"
    second.release()


def test_a_killed_holder_releases_the_lease_at_once(tmp_path):
    code = (
        "import sys, time;"
        "from recommendation_service.builder.lease.directory_lease import BuilderLease;"
        f"lease = BuilderLease({str(tmp_path)!r}, 'child'); assert lease.try_acquire();"
        "print('held', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        waiting = BuilderLease(tmp_path, "standby")
        assert not waiting.try_acquire()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        deadline = time.monotonic() + 2
        while not waiting.try_acquire():
            assert time.monotonic() < deadline, "the lock outlived its holder"
            time.sleep(0.01)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()


def test_a_model_dir_that_cannot_hold_the_lock_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(LeaseError, match="cannot create the builder lock"):
        BuilderLease(blocker / "models", "x").try_acquire()
    result = CliRunner().invoke(main, ["builder", "--model-dir", str(blocker / "models")])
    assert result.exit_code == 1 and "cannot create the builder lock" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
