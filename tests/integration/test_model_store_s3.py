"""Model versions through a real S3-compatible store (SeaweedFS): the builder's directory is
mirrored up, a server host's cache is filled from it, and a host cut off from the store keeps
serving and catches up."""

from __future__ import annotations

import json
import uuid

import pytest

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.object_store import ObjectStore, StoreLocation
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.artifacts.store_sync import SYNC_STATUS_FILE, StoreSync
from recommendation_service.data.catalog import CatalogEntry, write_catalog
from recommendation_service.server.model_watcher import ModelWatcher

from ..processes import SeaweedFS

pytestmark = pytest.mark.integration


@pytest.fixture
def seaweed(tmp_path, monkeypatch):
    with SeaweedFS(tmp_path / "seaweed") as store:
        for key, value in store.env.items():
            monkeypatch.setenv(key, value)  # boto3 reads the standard variables
        yield store


def test_versions_reach_a_host_through_the_store_and_survive_an_outage(
    seaweed, tmp_path, planted_model
):
    location = StoreLocation.parse(f"s3://{seaweed.bucket}/team-{uuid.uuid4().hex[:6]}")
    builder_dir, host_dir = tmp_path / "builder", tmp_path / "host"
    published = ModelStore(builder_dir, keep=3)
    up = StoreSync(builder_dir, ObjectStore(location), upload=True)
    down = StoreSync(host_dir, ObjectStore(location, timeout=1.0), upload=False)
    assert down.run_once() and not (host_dir / "CURRENT").exists()  # nothing published yet

    published.publish(planted_model)
    write_catalog(builder_dir, {"books-0001": CatalogEntry(available=False)}, {})
    assert up.run_once() and down.run_once()
    watcher = ModelWatcher(ModelStore(host_dir))
    watcher.refresh()
    assert watcher.model.version == 1
    assert watcher.catalog is not None and not watcher.catalog.available[0]
    # The manifest and every file arrived intact (the loader checks each SHA-256).
    assert json.loads((host_dir / SYNC_STATUS_FILE).read_text())["state"] == "ok"

    for _ in range(4):
        published.publish(planted_model)
    assert up.run_once() and down.run_once()
    watcher.refresh()
    assert watcher.model.version == 5
    remote = {k.split("/")[1] for k in ObjectStore(location).list("versions/")}
    assert remote == {"v00000003", "v00000004", "v00000005"}  # pruned like the directory
    assert len(list((host_dir / "versions").glob("v*"))) <= 3

    # A rollback pin on the builder's side reaches the host.
    ControlFiles(published).set_pin("v00000004")
    assert up.run_once() and down.run_once()
    assert ControlFiles(ModelStore(host_dir)).served_name() == "v00000004"
    ControlFiles(published).set_pin(None)
    assert up.run_once() and down.run_once()
    assert not (host_dir / "PINNED").exists()

    # The store goes away: the host keeps what it has and says so.
    seaweed.stop()
    published.publish(planted_model)
    assert not down.run_once()
    state = json.loads((host_dir / SYNC_STATUS_FILE).read_text())
    assert state["state"] == "unreachable" and state["last_error"]
    watcher.refresh()
    assert watcher.model.version == 5 and watcher.model.recommend("user-00001", 5).items
    # Back: the builder uploads what it missed and the host catches up.
    seaweed.start()
    assert up.run_once() and down.run_once()
    watcher.refresh()
    assert watcher.model.version == 6
    assert json.loads((host_dir / SYNC_STATUS_FILE).read_text())["state"] == "ok"


def test_a_damaged_object_is_never_served(seaweed, tmp_path, planted_model):
    location = StoreLocation.parse(f"s3://{seaweed.bucket}/d-{uuid.uuid4().hex[:6]}")
    published = ModelStore(tmp_path / "builder")
    published.publish(planted_model)
    assert StoreSync(tmp_path / "builder", ObjectStore(location), upload=True).run_once()
    store = ObjectStore(location)
    store.put("versions/v00000001/scoring_matrix.npy", b"not the matrix")
    down = StoreSync(tmp_path / "host", store, upload=False)
    assert not down.run_once()
    assert "does not match its manifest" in down.state["last_error"]
    assert not (tmp_path / "host" / "versions" / "v00000001").exists()
    assert not (tmp_path / "host" / "CURRENT").exists()


def test_builder_and_server_on_separate_directories_share_only_the_store(tmp_path):
    """`recsvc builder --model-store` and `recsvc serve --model-store` with nothing in common
    but the store and the broker: the server serves the builder's versions, every worker
    applies fresh vectors from the updates topic, it keeps serving through a store outage (and
    says so in /health), and catches up afterwards."""
    from recommendation_service.sandbox.brokers import ensure_topic

    from ..conftest import new_broker, planted_events
    from ..processes import builder, free_port, get, recsvc, stop, wait_healthy
    from .test_builder_integration import produce, wait_until

    with (
        SeaweedFS(tmp_path / "seaweed") as seaweed,
        new_broker(tmp_path / "broker") as broker,
    ):
        env = seaweed.env
        topic = f"s3-{uuid.uuid4().hex[:8]}"
        ensure_topic(broker.bootstrap_servers, topic)
        events = planted_events(3000)
        produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events[:1000]])
        url_store = f"s3://{seaweed.bucket}/shared"
        b = builder(broker.bootstrap_servers, topic, tmp_path / "builder-dir", "--window",
                    "10000", "--retrain-every", "500", "--group-id", f"g-{topic}",
                    "--model-store", url_store, "--updates-topic", f"u-{topic}",
                    env=env)  # fmt: skip
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = recsvc("serve", "--model-dir", str(tmp_path / "host-dir"), "--port", str(port),
                        "--model-store", url_store, "--no-access-log", "--reload-interval",
                        "0.2", "--workers", "2", "--updates-topic", f"u-{topic}",
                        "--bootstrap-servers", broker.bootstrap_servers,
                        log_path=tmp_path / "server.log", env=env)  # fmt: skip
        try:
            wait_healthy(url, timeout=90)
            # Both workers, whichever answers.
            wait_until(lambda: all(get(f"{url}/health")[1]["status"] == "ok" for _ in range(4)),
                       timeout=30, what="every worker serving")  # fmt: skip
            health = get(f"{url}/health")[1]
            assert health["model_store"]["state"] == "ok" and health["status"] == "ok", health
            assert get(f"{url}/recommend?user={events[0].user}&n=5")[1]["source"] == "model"
            # An event reaches every worker through the updates topic, not a shared disk.
            event = {"user": events[0].user, "item": events[1].item, "ts": 2e9}
            produce(broker, topic, [json.dumps(event).encode()])
            wait_until(lambda: all(get(f"{url}/recommend?user={events[0].user}")[1]["as_of"]
                                   == 2e9 for _ in range(6)),
                       timeout=20, what="the event on every worker")  # fmt: skip
            assert get(f"{url}/health")[1]["updates_topic"]["state"] == "ok"
            seaweed.stop()
            wait_until(lambda: get(f"{url}/health")[1]["model_store"]["state"] == "unreachable",
                       timeout=30, what="the outage in /health")  # fmt: skip
            before = get(f"{url}/health")[1]
            assert before["status"] == "degraded" and before["model_version"] >= 1
            produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events[1000:]])
            assert get(f"{url}/recommend?user={events[0].user}&n=5")[0] == 200
            seaweed.start()
            # Refits coalesce under a burst: wait for the model over every event, not a count.
            wait_until(lambda: get(f"{url}/model/info")[1]["window_size"] == len(events) + 1,
                       timeout=60, what="the server catching up after the outage")  # fmt: skip
            assert get(f"{url}/health")[1]["model_store"]["state"] == "ok"
        finally:
            stop(server)
            stop(b)


def test_a_builder_that_lost_the_lease_cannot_replace_current_or_a_version(
    seaweed, tmp_path, planted_model
):
    """Builder A (generation 3) publishes; B claims the store at generation 8; A, woken from a
    pause with its lease check passing locally, tries again: the store refuses its CURRENT and
    manifests, A learns it was fenced, and the host keeps B's versions."""
    from recommendation_service.artifacts.store_lease import claim_store, parse_current

    location = StoreLocation.parse(f"s3://{seaweed.bucket}/fence-{uuid.uuid4().hex[:6]}")
    lost: dict[str, str] = {}
    a_store, b_store = ModelStore(tmp_path / "a"), ModelStore(tmp_path / "b")
    fence_a = claim_store(
        ObjectStore(location), 3, "a", lambda: True, lambda why: lost.update(a=why)
    )
    a_store.lease_generation, a_store.floor = 3, fence_a.floor
    up_a = StoreSync(a_store.root, ObjectStore(location), upload=True, fence=fence_a)
    a_store.publish(planted_model)
    assert up_a.run_once()

    fence_b = claim_store(
        ObjectStore(location), 8, "b", lambda: True, lambda why: lost.update(b=why)
    )
    assert fence_b.floor == 1
    b_store.lease_generation, b_store.floor = 8, fence_b.floor
    b_store.publish(planted_model)
    up_b = StoreSync(b_store.root, ObjectStore(location), upload=True, fence=fence_b)
    assert up_b.run_once()
    assert parse_current(ObjectStore(location).get("CURRENT")) == ("v00000002", 8)

    # A, stale: its next version has B's number, and its CURRENT names its old ETag.
    a_store.publish(planted_model)
    assert not up_a.run_once()
    assert "replaced by another builder" in lost["a"] and "b" not in lost
    assert json.loads((a_store.root / SYNC_STATUS_FILE).read_text())["state"] == "withheld"
    assert parse_current(ObjectStore(location).get("CURRENT")) == ("v00000002", 8)
    manifest = json.loads(ObjectStore(location).get("versions/v00000002/manifest.json"))
    assert manifest["lease_generation"] == 8

    host = tmp_path / "host"
    assert StoreSync(host, ObjectStore(location), upload=False).run_once()
    watcher = ModelWatcher(ModelStore(host))
    watcher.refresh()
    assert watcher.model.version == 2 and watcher.model.manifest["lease_generation"] == 8

    # A, woken with a number nobody has used yet: still nothing reaches the store.
    up_a.fence.guard = lambda: True
    a_store.publish(planted_model)  # v00000003 locally
    a_store.publish(planted_model)  # v00000004
    assert not up_a.run_once()
    shared = ObjectStore(location)
    assert shared.get("versions/v00000004/manifest.json") is None
    # Had it raced a manifest in before its check, B's own version of that number replaces it.
    shared.put("versions/v00000003/manifest.json", json.dumps({"lease_generation": 3}).encode())
    b_store.publish(planted_model)
    assert up_b.run_once() and "b" not in lost
    assert json.loads(shared.get("versions/v00000003/manifest.json"))["lease_generation"] == 8
    assert StoreSync(host, ObjectStore(location), upload=False).run_once()
    watcher.refresh()
    assert watcher.model.version == 3 and watcher.model.manifest["lease_generation"] == 8
    assert parse_current(shared.get("CURRENT")) == ("v00000003", 8)
