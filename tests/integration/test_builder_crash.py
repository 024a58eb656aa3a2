"""A builder killed with SIGKILL mid-stream rebuilds exactly the window it should have, publishes
again soon after its restart, and a server answers from the last model the whole time."""

from __future__ import annotations

import signal
import threading
import time
import uuid

import numpy as np
import pytest
from confluent_kafka import Producer

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.recommend.served_model import ServedModel
from recommendation_service.sandbox.producers import Pacer

from ..conftest import free_port
from ..processes import get, recsvc, stop, wait_healthy
from .test_builder_integration import wait_until

pytestmark = pytest.mark.integration

EVENTS, WINDOW = 8000, 5000
#: Upper bound on the time from the restart to the restarted builder's first publish.
REPUBLISH_SECONDS = 30.0


class Prober:
    """GETs /recommend every 20 ms on a thread and keeps every status and model version."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[int, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                status, body = get(f"{self.url}/recommend?user=u1&n=5", timeout=5)
            except OSError as exc:
                self.answers.append((0, None))
                print("probe failed:", exc)
                continue
            self.answers.append((status, body.get("model_version")))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def produce_at(broker, topic, rate, done: threading.Event) -> None:
    # One request in flight: a retried first batch (the new topic's leader not yet known to
    # the producer) cannot land after later ones, so offsets follow the order of production.
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 1, "max.in.flight": 1}
    )
    pacer = Pacer(rate)
    for k in range(EVENTS):
        # Every event has its own item: the window's (user, item) pairs are exactly its events.
        producer.produce(topic, f"u{k % 97}:i{k}".encode())
        producer.poll(0)
        pacer.wait(k + 1)
    producer.flush(30)
    done.set()


def test_sigkill_mid_stream_then_restart_rebuilds_the_window_exactly(broker, topic, tmp_path):
    args = [
        "builder",
        "--bootstrap-servers",
        broker.bootstrap_servers,
        "--topic",
        topic,
        "--group-id",
        f"g-{uuid.uuid4().hex}",
        "--model-dir",
        str(tmp_path),
        "--window",
        str(WINDOW),
        "--retrain-every",
        "1500",
        "--metrics-port",
        "0",
        "--factors",
        "8",
        "--iterations",
        "3",
    ]
    done = threading.Event()
    sender = threading.Thread(target=produce_at, args=(broker, topic, 1000.0, done), daemon=True)
    store = ModelStore(tmp_path)
    control = ControlFiles(store)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = recsvc("serve", "--model-dir", str(tmp_path), "--port", str(port), quiet=True)
    first = recsvc(*args, quiet=True)
    sender.start()
    try:
        wait_healthy(url, timeout=60)
        with Prober(url) as prober:
            wait_until(
                lambda: (control.read_status() or {}).get("events_consumed", 0) > 2000,
                timeout=60,
                what="the first builder consuming",
            )
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            last_before_kill = store.versions()[-1]
            restarted = time.monotonic()
            second = recsvc(*args, quiet=True)
            try:
                wait_until(
                    lambda: store.versions()[-1] > last_before_kill,
                    timeout=REPUBLISH_SECONDS,
                    what="the restarted builder publishing",
                )
                republished = time.monotonic() - restarted
                wait_until(done.is_set, timeout=60, what="all events produced")
                wait_until(
                    lambda: (
                        (control.read_status() or {}).get("offsets", {}).get(f"{topic}[0]")
                        == EVENTS
                    ),
                    timeout=60,
                    what="the restarted builder catching up",
                )
                job = uuid.uuid4().hex
                control.request_training(job)
                wait_until(
                    lambda: (
                        (control.read_status() or {}).get("jobs", {}).get(job, {}).get("state")
                        == "done"
                    ),
                    timeout=60,
                    what="a refit of the rebuilt window",
                )
            finally:
                stop(second)
    finally:
        if first.poll() is None:
            first.kill()
        stop(server)
    # The server answered every probe, before, during and after the crash, from a model.
    statuses = [status for status, _ in prober.answers]
    assert len(statuses) > 100 and set(statuses) == {200}, sorted(set(statuses))
    versions = [v for _, v in prober.answers]
    assert versions == sorted(versions) and versions[-1] > last_before_kill
    print(f"restarted builder published {republished:.1f} s after its start")
    assert_exact_window(store, topic)


def window_pairs(store: ModelStore) -> tuple[dict, ServedModel, set[tuple[str, str]]]:
    """The current version's manifest and model, and the (user, item) pairs of its window."""
    manifest, arrays = store.read_version()
    model = ServedModel(manifest, arrays)
    pairs = set()
    for row, user in enumerate(model.user_ids):
        pairs.update((user, model.item_ids[c]) for c in model.seen_items(row).tolist())
    return manifest, model, pairs


def assert_exact_window(store: ModelStore, topic: str) -> None:
    """The current version holds exactly the last WINDOW of the EVENTS produce_at sent."""
    manifest, model, pairs = window_pairs(store)
    assert manifest["window_size"] == WINDOW
    assert manifest["offsets"] == {topic: {"0": EVENTS}}
    expected = {(f"u{k % 97}", f"i{k}") for k in range(EVENTS - WINDOW, EVENTS)}
    assert pairs == expected, (len(pairs - expected), len(expected - pairs))
    assert np.all(np.diff(model.seen_indptr) > 0)
