"""Two builders on separate model directories, coordinated through Kafka (the lease topic) and
sharing only the object store (SeaweedFS): a server host follows the store and the updates topic.

The active builder is SIGKILLed, or SIGSTOPped past the session timeout and woken: the standby
takes over within the bound, publishes the next version from the exact window, and nothing the
old builder writes after losing the lease is served -- neither a version (``CURRENT`` in the
store is fenced by a conditional write) nor an update record (fenced by generation).
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.object_store import ObjectStore, StoreConflict, StoreLocation
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.artifacts.store_lease import current_text, parse_current
from recommendation_service.artifacts.update_records import GENERATION_HEADER, VERSION_HEADER

from ..conftest import free_port
from ..processes import SeaweedFS, json_or_none, recsvc, stop
from ..processes import builder as start_builder
from .test_builder_crash import EVENTS, WINDOW, assert_exact_window, produce_at
from .test_builder_integration import wait_until

pytestmark = pytest.mark.integration

#: The bound from the active builder's SIGKILL or SIGSTOP to the standby's first version
#: served: Apache Kafka expires a silent member at the session timeout (6 s).
TAKEOVER_SECONDS = 15.0


class ServedLog:
    """Samples a server's /health every 50 ms: (time, version, active builder, generation),
    and the manifest of every version the host's directory served."""

    def __init__(self, url: str, host_dir: Path) -> None:
        self.url, self.store = url, ModelStore(host_dir)
        self.samples: list[tuple[float, int | None, str | None, int | None]] = []
        self.manifests: dict[int, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ServedLog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            body = json_or_none(self.url + "/health") or {}
            version = body.get("model_version")
            builder = body.get("builder") or {}
            self.samples.append(
                (time.monotonic(), version, builder.get("active"), builder.get("generation"))
            )
            if version is not None and version not in self.manifests:
                path = self.store.versions_dir / f"v{version:08d}" / "manifest.json"
                with contextlib.suppress(OSError, ValueError):  # pruned: the next one is read
                    self.manifests[version] = json.loads(path.read_text())

    def health(self) -> dict:
        return json_or_none(self.url + "/health") or {}


def _builders(broker, topic, tmp_path: Path, env: dict, store: str, updates: str, host=()):
    args = [
        "--group-id", f"g-{uuid.uuid4().hex[:10]}", "--window", str(WINDOW),
        "--retrain-every", "1500", "--factors", "8", "--iterations", "3", "--tune", "off",
        "--model-store", store, "--updates-topic", updates, "--update-interval", "0.2",
    ]  # fmt: skip
    return [
        start_builder(broker.bootstrap_servers, topic, tmp_path / name, *args, env=env,
                      log_path=tmp_path / f"{name}.log", host=list(host[k]) if host else [])
        for k, name in enumerate(("builder-a", "builder-b"))
    ]  # fmt: skip


def _active_and_standby(log: ServedLog) -> tuple[str, str]:
    wait_until(lambda: log.health().get("model_version") is not None, timeout=90,
               what="a version served through the store")  # fmt: skip
    wait_until(lambda: len(log.health()["builder"]["standbys"]) == 1, timeout=30,
               what="the standby announced through the store")  # fmt: skip
    builder = log.health()["builder"]
    assert builder["lease"] == "kafka" and builder["generation"] is not None
    assert builder["host"] and builder["standby_hosts"]
    return builder["active"], builder["standbys"][0]


@pytest.mark.parametrize("fault", ["kill", "stop"])
def test_standby_on_another_directory_takes_over_and_the_old_one_is_fenced(
    broker, topic, tmp_path, fault, monkeypatch
):
    with SeaweedFS(tmp_path / "seaweed") as seaweed:
        env = seaweed.env
        for key, value in env.items():
            monkeypatch.setenv(key, value)  # the test's own store client (boto3)
        location = StoreLocation.parse(f"s3://{seaweed.bucket}/lease-{uuid.uuid4().hex[:6]}")
        store, updates = str(location), f"updates-{topic}"
        first, second = _builders(broker, topic, tmp_path, env, store, updates)
        port = free_port()
        server = recsvc("serve", "--model-dir", str(tmp_path / "host"), "--port", str(port),
                        "--model-store", store, "--updates-topic", updates,
                        "--bootstrap-servers", broker.bootstrap_servers, "--no-access-log",
                        log_path=tmp_path / "host.log", env=env)  # fmt: skip
        done = threading.Event()
        sender = threading.Thread(target=produce_at, args=(broker, topic, 400.0, done))
        procs = {"a": first, "b": second}
        try:
            with ServedLog(f"http://127.0.0.1:{port}", tmp_path / "host") as log:
                sender.start()
                old_id, new_id = _active_and_standby(log)
                old = first if (tmp_path / "builder-a" / "CURRENT").exists() else second
                old_gen = log.health()["builder"]["generation"]
                wait_until(lambda: log.health()["model_version"] >= 2, timeout=60,
                           what="a second version from the first builder")  # fmt: skip

                # The ETag of the CURRENT the old builder wrote: what it would write on.
                old_etag = ObjectStore(location).get_with_etag("CURRENT")[1]
                old.send_signal(signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
                faulted = time.monotonic()
                # The newest version it wrote before the fault (served samples may lag it).
                old_dir = tmp_path / ("builder-a" if old is first else "builder-b")
                last_old = ModelStore(old_dir).versions()[-1]

                def new_version_served() -> bool:
                    return any(
                        v is not None and v > last_old and log.manifests.get(v, {})
                        .get("builder_id") == new_id for _, v, *_ in log.samples
                    )  # fmt: skip

                wait_until(new_version_served, timeout=60, interval=0.05,
                           what="the standby's first version served")  # fmt: skip
                takeover = time.monotonic() - faulted
                print(f"{fault}: standby's version served {takeover:.1f} s after the fault")
                assert takeover <= TAKEOVER_SECONDS, f"takeover took {takeover:.1f} s"
                builder = log.health()["builder"]
                assert builder["active"] == new_id and builder["generation"] > old_gen

                if fault == "stop":
                    old.send_signal(signal.SIGCONT)
                    woken = time.monotonic()
                    # It notices, steps down and stands by again (a new id on its host).
                    wait_until(lambda: "steps down" in _log_of(tmp_path, old, procs), timeout=30,
                               what="the woken builder stepping down")  # fmt: skip
                    wait_until(lambda: len(log.health()["builder"]["standbys"]) == 1,
                               timeout=30, what="the old builder standing by again")  # fmt: skip
                    assert log.health()["builder"]["active"] == new_id

                _writes_of_an_old_generation_are_refused(
                    location, old_etag, broker, updates, log, old_gen
                )
                wait_until(done.is_set, timeout=60, what="all events produced")
                new_dir = tmp_path / ("builder-b" if old is first else "builder-a")
                caught_up_and_served(new_dir, topic, log)
        finally:
            done.set()
            if fault == "stop":
                for proc in procs.values():
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGCONT)
            for proc in (first, second, server):
                if proc.poll() is None:
                    stop(proc)
            sender.join(30)

    # The window after the takeover is exactly the last W events, on the serving host.
    assert_exact_window(ModelStore(tmp_path / "host"), topic)
    served = [v for _, v, *_ in log.samples if v is not None]
    assert served == sorted(served), "versions served went backwards"
    after = [v for t, v, *_ in log.samples if v is not None and t > faulted]
    from_old = [v for v in after if log.manifests.get(v, {}).get("builder_id") == old_id]
    assert all(v <= last_old for v in from_old), f"served {from_old} from the fenced builder"
    if fault == "stop":
        late = [v for t, v, *_ in log.samples if v is not None and t > woken]
        assert not [v for v in late if log.manifests.get(v, {}).get("builder_id") == old_id]


def caught_up_and_served(new_dir: Path, topic: str, log: ServedLog) -> int:
    """Wait for the active builder in ``new_dir`` to reach the end of the stream, refit, and
    the host to serve that version; returns its number."""
    control = ControlFiles(ModelStore(new_dir))
    wait_until(lambda: (control.read_status() or {}).get("offsets", {})
               .get(f"{topic}[0]") == EVENTS, timeout=60,
               what="the new active builder catching up")  # fmt: skip
    job = uuid.uuid4().hex
    control.request_training(job)
    wait_until(lambda: (control.read_status() or {}).get("jobs", {}).get(job, {})
               .get("state") == "done", timeout=60, what="a refit")  # fmt: skip
    newest = ModelStore(new_dir).versions()[-1]
    wait_until(lambda: log.health()["model_version"] == newest, timeout=30,
               what="the host on the newest version")  # fmt: skip
    return newest


def _log_of(tmp_path: Path, proc, procs: dict) -> str:
    name = next(k for k, p in procs.items() if p is proc)
    return (tmp_path / f"builder-{name}.log").read_text(errors="replace")


def _writes_of_an_old_generation_are_refused(location, old_etag, broker, updates, log, old_gen):
    """What a woken old builder would write: refused by the store, dropped by the servers."""
    shared = ObjectStore(location)
    body, etag = shared.get_with_etag("CURRENT")
    name, generation = parse_current(body)
    assert generation is not None and generation > old_gen
    # The old builder's CURRENT names the ETag it last wrote, which the new one replaced.
    with pytest.raises(StoreConflict):
        shared.put("CURRENT", current_text(name, old_gen, "old"), if_match=old_etag)
    assert shared.get_with_etag("CURRENT")[1] == etag
    # An update record of the old generation for the served version: dropped, not applied.
    fenced_before = log.health()["updates_topic"]["fenced"]
    version = f"v{log.health()['model_version']:08d}"
    record = {"version": version, "vector": "AAAAAA==", "seen": [], "seen_new": [],
              "last_ts": 9e9, "recent": []}  # fmt: skip
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    producer.produce(
        updates,
        json.dumps(record).encode(),
        b"u:stale-user",
        headers=[(VERSION_HEADER, version.encode()), (GENERATION_HEADER, str(old_gen).encode())],
    )
    producer.flush(10)
    wait_until(lambda: log.health()["updates_topic"]["fenced"] > fenced_before, timeout=15,
               what="the host dropping the old generation's record")  # fmt: skip
    answer = json_or_none(log.url + "/recommend?user=stale-user&n=3") or {}
    assert answer.get("as_of") != 9e9


def test_one_owner_at_a_time_and_each_claim_a_higher_generation(broker):
    from recommendation_service.builder.lease.kafka_lease import KafkaLease, ensure_lease_topic
    from recommendation_service.config.kafka import KafkaSettings
    from recommendation_service.errors import ConfigError
    from recommendation_service.sandbox.brokers import ensure_topic

    group = f"g-{uuid.uuid4().hex[:10]}"
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic="t", group_id=group)
    first, second = KafkaLease(kafka, "first"), KafkaLease(kafka, "second")
    try:
        wait_until(first.try_acquire, timeout=30, what="the first lease")
        assert first.valid() and first.status()["generation"] == first.generation
        time.sleep(3)  # the second joins the group and stays without the partition
        assert not second.try_acquire() and first.valid() and first.lost is None
        first.release()
        wait_until(second.try_acquire, timeout=30, what="the lease handed over on release")
        assert second.generation > first.generation and second.valid()
    finally:
        first.release()
        second.release()
    crowded = f"crowded-{uuid.uuid4().hex[:8]}"
    ensure_topic(broker.bootstrap_servers, crowded, partitions=3)
    with pytest.raises(ConfigError, match="3 partitions"):
        ensure_lease_topic(kafka, crowded)
