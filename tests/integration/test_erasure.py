"""Erasing a user through real processes and a real broker: two server workers forget them
within a second, the builder's window and next version drop them, and neither a builder
restart nor a standby's takeover brings their events back; later events make a new user."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
import uuid

import pytest
from confluent_kafka import Producer

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore

from ..conftest import free_port
from ..processes import builder as start_builder
from ..processes import get, recsvc, stop, wait_healthy
from .test_builder_crash import window_pairs
from .test_builder_integration import wait_until

pytestmark = pytest.mark.integration

TOKEN = "erasure-test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VICTIM = "u7"
EVENTS = 1200  # users u0..u39, 30 events each; items i0..i149


def produce(broker, topic, pairs) -> None:
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 5, "max.in.flight": 1}
    )
    for user, item in pairs:
        producer.produce(topic, f"{user}:{item}".encode())
    assert producer.flush(30) == 0


def call(method: str, url: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, headers=AUTH)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def user_view(url: str) -> dict:
    return call("GET", f"{url}/dashboard/api/user?user={VICTIM}&n=5")[1]


def new_version(store: ModelStore, after: int):
    def check():
        manifest = store.read_version()[0] if store.versions() else None
        return manifest is not None and manifest["version"] > after

    return check


def refit(url: str, store: ModelStore) -> dict:
    """Ask for a refit through the API and return the manifest of the version it made."""
    before = store.versions()[-1]
    assert call("POST", f"{url}/online/training/start")[0] == 202
    wait_until(new_version(store, before), timeout=60, what="the requested refit")
    return store.read_version()[0]


def victim_items(store: ModelStore) -> set[str]:
    _, _, pairs = window_pairs(store)
    return {item for user, item in pairs if user == VICTIM}


def test_an_erased_user_is_forgotten_by_servers_builder_restarts_and_takeovers(
    broker, topic, tmp_path
):
    model_dir = tmp_path / "models"
    store, control = ModelStore(model_dir), ControlFiles(ModelStore(model_dir))
    produce(broker, topic, [(f"u{k % 40}", f"i{k % 150}") for k in range(EVENTS)])
    args = ["--group-id", f"g-{uuid.uuid4().hex}", "--window", "5000", "--retrain-every",
            str(EVENTS), "--factors", "8", "--iterations", "3", "--tune", "off"]  # fmt: skip
    builder = start_builder(broker.bootstrap_servers, topic, model_dir, *args)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = recsvc("serve", "--model-dir", str(model_dir), "--port", str(port), "--workers",
                    "2", "--bootstrap-servers", broker.bootstrap_servers, "--topic", topic,
                    "--no-access-log", quiet=True,
                    env={"RECSVC_SERVE_ADMIN_TOKEN": TOKEN})  # fmt: skip
    standby = None
    try:
        wait_healthy(url, timeout=90)
        wait_until(lambda: user_view(url)["known"], timeout=30, what="the victim known")
        assert len(victim_items(store)) == 15  # 30 events, each pair twice

        # Within a second every worker answers the user as unknown.
        published = store.versions()[-1]
        status, erased = call("DELETE", f"{url}/users/{VICTIM}")
        answered = time.monotonic()
        assert status == 200 and erased["erased"] and erased["events_before"] == {"0": EVENTS}
        time.sleep(max(0.0, answered + 1.0 - time.monotonic()))
        views = [user_view(url) for _ in range(40)]  # new connections: both workers answer
        assert not any(v["known"] for v in views), [v["known"] for v in views]
        assert all(v["window_item_count"] == 0 and v["source"] == "popular" for v in views)
        recommended = get(f"{url}/recommend?user={VICTIM}&n=5")[1]
        assert recommended["source"] == "popular"

        # The builder drops the events and refits on its own: the next version has no row.
        wait_until(lambda: (control.read_status() or {}).get("erasures", {}).get("applied") == 1,
                   timeout=20, what="the builder applying the erasure")  # fmt: skip
        assert control.read_status()["erasures"]["events_erased"] == 30
        wait_until(new_version(store, published), timeout=60, what="the refit after the erasure")
        manifest = store.read_version()[0]
        assert manifest["window_size"] == EVENTS - 30 and manifest["erasures_applied"] == 1
        assert victim_items(store) == set()

        # Events after the erasure make a new user, with only those events.
        produce(broker, topic, [(VICTIM, "i1"), (VICTIM, "i2"), (VICTIM, "i3")])
        wait_until(lambda: user_view(url)["window_item_count"] == 3, timeout=20,
                   what="the user back as a new one")  # fmt: skip
        assert {i["item"] for i in user_view(url)["window_items"]} == {"i1", "i2", "i3"}

        # A restarted builder rebuilds its window from the topic without the erased events.
        stop(builder)
        builder = start_builder(broker.bootstrap_servers, topic, model_dir, *args)
        wait_until(lambda: (control.read_status() or {}).get("window_events") == EVENTS - 27,
                   timeout=60, what="the window rebuilt after a restart")  # fmt: skip
        manifest = refit(url, store)
        assert manifest["window_size"] == EVENTS - 27
        assert victim_items(store) == {"i1", "i2", "i3"}

        # So does a standby that takes over from a killed builder.
        standby = start_builder(broker.bootstrap_servers, topic, model_dir, *args)
        wait_until(lambda: len(control.standbys(15)) == 1, timeout=30, what="a standby")
        active = control.read_status()["builder_id"]
        builder.send_signal(signal.SIGKILL)
        builder.wait(10)
        wait_until(lambda: (control.read_status() or {}).get("builder_id") != active
                   and control.read_status().get("window_events") == EVENTS - 27,
                   timeout=60, what="the standby's window")  # fmt: skip
        manifest = refit(url, store)
        assert manifest["window_size"] == EVENTS - 27
        assert victim_items(store) == {"i1", "i2", "i3"}
    finally:
        for proc in (server, builder, standby):
            if proc is not None and proc.poll() is None:
                stop(proc)
