"""Model-directory faults under running processes: publishes that fail, versions that are bad.

The faults are real file-system conditions, not patched functions: a full tmpfs (ENOSPC), the
builder's file-size limit lowered with prlimit (EFBIG), a read-only bind mount of the versions
directory (EROFS; a 0555 directory when not root), and version directories damaged on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore, write_atomic

from ..conftest import free_port, planted_events, train_window
from ..processes import builder as start_builder
from ..processes import cpu_seconds, get, recsvc, stop, wait_healthy
from .test_builder_integration import produce, wait_until

pytestmark = pytest.mark.integration

IS_ROOT = os.geteuid() == 0
DISK_HEADROOM = 384 * 1024  # free space left for the small status and update files
FILE_SIZE_LIMIT = 256 * 1024


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


class DiskFull:
    """The model directory is a small tmpfs that a filler file leaves nearly full."""

    errors = ("No space left on device",)

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        if not (IS_ROOT and _mount("-t", "tmpfs", "-o", "size=32m", "tmpfs", str(root))):
            pytest.skip("needs permission to mount a tmpfs")
        self.filler = root / "filler"

    def break_(self, builder_pid: int) -> None:
        st = os.statvfs(self.root)
        fd = os.open(self.filler, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            os.posix_fallocate(fd, 0, st.f_bavail * st.f_frsize - DISK_HEADROOM)
        finally:
            os.close(fd)

    def fix(self, builder_pid: int) -> None:
        self.filler.unlink()

    def cleanup(self) -> None:
        subprocess.run(["umount", "-l", str(self.root)], capture_output=True)


class FileSizeLimit:
    """The builder's RLIMIT_FSIZE lowered while it runs: large writes fail with EFBIG."""

    errors = ("File too large",)

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()

    def break_(self, builder_pid: int) -> None:
        _, hard = resource.prlimit(builder_pid, resource.RLIMIT_FSIZE)
        resource.prlimit(builder_pid, resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, hard))

    def fix(self, builder_pid: int) -> None:
        _, hard = resource.prlimit(builder_pid, resource.RLIMIT_FSIZE)
        resource.prlimit(builder_pid, resource.RLIMIT_FSIZE, (hard, hard))

    def cleanup(self) -> None:
        pass


class ReadOnlyVersions:
    """The versions directory turns read-only (a read-only bind mount as root, else 0555)."""

    errors = ("Read-only file system", "Permission denied")

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.versions = root / "versions"
        self.mounted = False

    def break_(self, builder_pid: int) -> None:
        if not IS_ROOT:
            self.versions.chmod(0o555)
            return
        target = str(self.versions)
        if not (_mount("--bind", target, target) and _mount("-o", "remount,bind,ro", target)):
            pytest.skip("needs permission to bind-mount")
        self.mounted = True

    def fix(self, builder_pid: int) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.versions)], check=True)
            self.mounted = False
        else:
            self.versions.chmod(0o755)

    def cleanup(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.versions)], capture_output=True)


@pytest.fixture(params=[DiskFull, FileSizeLimit, ReadOnlyVersions], ids=lambda c: c.__name__)
def fault(request, tmp_path):
    made = request.param(tmp_path / "models")
    yield made
    made.cleanup()


def test_failed_publishes_are_retried_and_the_last_model_keeps_serving(
    broker, topic, fault, tmp_path
):
    model_dir = fault.root
    store, control = ModelStore(model_dir), ControlFiles(ModelStore(model_dir))
    # Thousands of items x 128 factors: every model is well over what the faults leave.
    first = planted_events(2000, n_items=4000)
    produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in first])
    log = tmp_path / "builder.log"
    builder = start_builder(
        broker.bootstrap_servers,
        topic,
        model_dir,
        "--retrain-every",
        "1000",
        "--factors",
        "128",
        log_path=log,
    )
    http_port = free_port()
    url = f"http://127.0.0.1:{http_port}"
    server = recsvc("serve", "--model-dir", str(model_dir), "--port", str(http_port), quiet=True)
    try:
        wait_healthy(url, timeout=60)
        wait_until(
            lambda: (
                (s := control.read_status() or {}).get("events_consumed") == 2000
                and not s["training"]
                and (s.get("last_refit") or {}).get("version")
                == get(f"{url}/health")[1]["model_version"]
            ),
            timeout=60,
            what="the builder publishing a model of the first events",
        )
        served = get(f"{url}/health")[1]["model_version"]
        version_dir = model_dir / "versions" / store.current_name()
        sizes = [f.stat().st_size for f in version_dir.iterdir()]
        assert sum(sizes) > 2 * DISK_HEADROOM and max(sizes) > 2 * FILE_SIZE_LIMIT

        fault.break_(builder.pid)
        more = planted_events(1500, n_items=4000, seed=5)
        produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in more])
        wait_until(
            lambda: get(f"{url}/health")[1]["builder"]["state"] == "publish_failing",
            timeout=60,
            what="/health reporting the failing publishes",
        )
        status, health = get(f"{url}/health")
        assert status == 200 and health["status"] == "degraded"
        assert any(e in health["builder"]["publish_error"] for e in fault.errors), health
        # Servers keep answering from the last good model; nothing half-written is left.
        for user in {e.user for e in more[:20]}:
            code, body = get(f"{url}/recommend?user={user}&n=5")
            assert code == 200 and body["model_version"] == served
        assert store.versions()[-1] == served
        assert not [p for p in (model_dir / "versions").iterdir() if p.name.startswith(".")]
        # Retries back off: the builder does not spin on a full disk. Measured once the new
        # events are in and the publish has been retried (the work the events caused --
        # scoring, fold-ins, the refit -- is done by then, even on a busy machine).
        wait_until(
            lambda: (
                (s := control.read_status() or {}).get("events_consumed") == 3500
                and s["publish"]["consecutive_failures"] >= 2
            ),
            timeout=60,
            what="the publish retried after the new events",
        )
        before = cpu_seconds(builder.pid)
        time.sleep(3)
        assert cpu_seconds(builder.pid) - before < 1.0, "the builder spins while writes fail"
        assert builder.poll() is None and server.poll() is None
        assert f"writing model to {model_dir} failed" in log.read_text()

        fault.fix(builder.pid)
        wait_until(
            lambda: (
                get(f"{url}/health")[1]["model_version"] > served
                and get(f"{url}/health")[1]["status"] == "ok"
            ),
            # Retries back off up to 60 s (publishes) and 30 s (update files): a fault that
            # lasted long on a busy machine may take that long to be retried.
            timeout=150,
            what="a new model served after the fault is fixed",
        )
        # The new model was fitted on everything: no event was dropped while writes failed.
        assert get(f"{url}/model")[1]["window_size"] == 3500
        assert f"writing model to {model_dir} works again" in log.read_text()
    finally:
        stop(server)
        stop(builder)


# -- bad versions on disk, seen by a running server ------------------------------------------


class Payload:
    """Unpickling this creates a file: proof that loading executed data."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _replace_array(version_dir: Path, stem: str, array: np.ndarray, pickle: bool = False) -> None:
    """Swap one array file, with a manifest entry that matches it (checksum, shape, dtype)."""
    path = version_dir / f"{stem}.npy"
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=pickle)
    manifest = json.loads((version_dir / "manifest.json").read_text())
    manifest["files"][stem] = {
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "shape": list(array.shape),
        "dtype": str(array.dtype),
    }
    (version_dir / "manifest.json").write_text(json.dumps(manifest))


def _flip_byte(version_dir: Path, marker: Path) -> None:
    path = version_dir / "scoring_matrix.npy"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(version_dir: Path, marker: Path) -> None:
    path = version_dir / "user_vectors.npy"
    os.truncate(path, path.stat().st_size // 2)


def _mismatch(version_dir: Path, marker: Path) -> None:
    scoring = np.load(version_dir / "scoring_matrix.npy")
    _replace_array(version_dir, "scoring_matrix", scoring[:-1])


def _pickle_payload(version_dir: Path, marker: Path) -> None:
    payload = np.empty(1, dtype=object)
    payload[0] = Payload(marker)
    _replace_array(version_dir, "popular_scores", payload, pickle=True)


def _garbage_manifest(version_dir: Path, marker: Path) -> None:
    (version_dir / "manifest.json").write_bytes(b"\x00{not json")


DAMAGE = {
    "flipped byte": (_flip_byte, "checksum"),
    "truncated file": (_truncate, "checksum"),
    "arrays that disagree": (_mismatch, "scoring matrix"),
    "pickled object array": (_pickle_payload, "Python objects"),
    "garbage manifest": (_garbage_manifest, "manifest"),
}


def every_worker(url: str, predicate, what: str, timeout: float = 30.0) -> None:
    """Wait until ``predicate`` holds for 8 /health answers in a row (new connections, so
    both workers answer)."""
    wait_until(
        lambda: all(predicate(get(f"{url}/health")[1]) for _ in range(8)),
        timeout=timeout,
        what=what,
    )


def test_a_running_server_refuses_bad_versions_and_keeps_serving(tmp_path):
    model_dir, staging = tmp_path / "models", tmp_path / "staging"
    store, staged = ModelStore(model_dir, keep=100), ModelStore(staging, keep=100)
    events = planted_events(2000)
    model = train_window(events)
    store.publish(model)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    server = recsvc(
        "serve", "--model-dir", str(model_dir), "--port", str(port), "--workers", "2",
        log_path=log,
    )  # fmt: skip
    marker = tmp_path / "executed"
    try:
        wait_healthy(url, timeout=60)
        user = events[0].user
        good = 1
        for damage, (apply, reason) in DAMAGE.items():
            # Stage a correct next version, damage it, then make it current as a publish would.
            while staged.versions()[-1:] != [good + 1]:
                staged.publish(model)
            name = staged.current_name()
            apply(staging / "versions" / name, marker)
            shutil.move(staging / "versions" / name, model_dir / "versions" / name)
            write_atomic(model_dir / "CURRENT", f"{name}\n".encode())

            every_worker(
                url,
                lambda h, name=name: h["refused_version"] == name,
                f"the server refusing a version with a {damage}",
            )
            for _ in range(10):  # both workers: each answers from the last good version
                status, health = get(f"{url}/health")
                assert status == 200 and health["status"] == "degraded", health
                assert health["model_version"] == good and reason in health["last_error"], health
                code, body = get(f"{url}/recommend?user={user}&n=5")
                assert code == 200 and body["model_version"] == good and body["items"]
            assert not marker.exists(), "loading a model executed pickled data"

            # The next good publish is served and clears the report.
            good += 2
            while staged.versions()[-1] != good:
                staged.publish(model)
            shutil.move(staging / "versions" / staged.current_name(), model_dir / "versions")
            write_atomic(model_dir / "CURRENT", f"{staged.current_name()}\n".encode())
            every_worker(
                url,
                lambda h, good=good: (
                    h["model_version"] == good
                    and h["status"] == "ok"
                    and h["refused_version"] is None
                ),
                f"recovery after the {damage}",
            )
        text = log.read_text()
        assert text.count("refusing model") >= 2 * len(DAMAGE) - 1  # once per worker and damage
        assert "Traceback" not in text
    finally:
        stop(server)


def test_a_bad_current_pointer_is_refused(tmp_path):
    store = ModelStore(tmp_path / "models")
    store.publish(train_window(planted_events(500)))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = recsvc("serve", "--model-dir", str(store.root), "--port", str(port), quiet=True)
    try:
        wait_healthy(url, timeout=60)
        write_atomic(store.root / "CURRENT", b"../../etc/passwd\n")
        wait_until(
            lambda: get(f"{url}/health")[1]["refused_version"] == "CURRENT",
            timeout=30,
            what="the server refusing CURRENT",
        )
        status, health = get(f"{url}/health")
        assert status == 200 and health["status"] == "degraded" and health["model_version"] == 1
        write_atomic(store.root / "CURRENT", b"v00000001\n")
        wait_until(
            lambda: get(f"{url}/health")[1]["status"] == "ok",
            timeout=30,
            what="recovery once CURRENT is repaired",
        )
    finally:
        stop(server)


def test_a_server_starting_on_a_bad_version_serves_the_newest_good_one(tmp_path):
    store = ModelStore(tmp_path / "models", keep=10)
    model = train_window(planted_events(500))
    for _ in range(3):
        store.publish(model)
    _truncate(tmp_path / "models" / "versions" / store.current_name(), tmp_path / "unused")
    os.truncate(tmp_path / "models" / "versions" / "v00000002" / "seen_indices.npy", 5)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    server = recsvc("serve", "--model-dir", str(store.root), "--port", str(port), log_path=log)
    try:
        wait_healthy(url, timeout=60)
        status, health = get(f"{url}/health")
        assert health["model_version"] == 1 and health["refused_version"] == "v00000003", health
        assert status == 200 and health["status"] == "degraded"
        assert "falling back to model v00000001 while v00000003 is refused" in log.read_text()
    finally:
        stop(server)
