"""The real processes over real sockets: `recsvc builder` and `recsvc serve` beside the broker."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections import Counter

import pytest

from recommendation_service.artifacts.store import ModelStore

from ..conftest import category, free_port, planted_events, planted_tastes, train_window
from ..processes import get, is_healthy, recsvc, stop, wait_healthy
from .test_builder_integration import produce, wait_until

pytestmark = pytest.mark.integration


def window_size(model_dir) -> int:
    store = ModelStore(model_dir)
    try:
        return store.read_version()[0]["window_size"] if store.current_name() else 0
    except Exception:  # a version pruned between the two reads: ask again
        return 0


def test_kafka_to_http_reflects_planted_tastes(broker, topic, tmp_path):
    model_dir = tmp_path / "models"
    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    builder = recsvc(
        "builder",
        "--metrics-port",
        str(metrics_port),
        "--bootstrap-servers",
        broker.bootstrap_servers,
        "--topic",
        topic,
        "--group-id",
        f"g-{topic}",
        "--model-dir",
        str(model_dir),
        "--window",
        "20000",
        "--retrain-every",
        "2000",
        "--factors",
        "16",
        "--iterations",
        "10",
    )
    server = recsvc(
        "serve", "--model-dir", str(model_dir), "--port", str(port), "--reload-interval", "0.2"
    )
    try:
        status, body = get(f"{url}/recommend?user=u", timeout=5) if is_healthy(url) else (503, {})
        assert status == 503
        events = planted_events(8000)
        produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events])
        # Refits every 2000 events coalesce while training runs, so the last one may have
        # snapshotted anywhere after 6000 events.
        wait_until(
            lambda: window_size(model_dir) >= 6000,
            timeout=90,
            what="a model over at least 6000 events",
        )
        wait_healthy(url)
        tastes = planted_tastes()
        agree = 0
        for user in tastes.users:
            status, body = get(f"{url}/recommend?user={user}&n=10")
            assert status == 200 and body["source"] == "model"
            agree += (
                Counter(map(category, body["items"])).most_common(1)[0][0] == tastes.favourite[user]
            )
        assert agree / len(tastes.users) >= 0.9
        status, body = get(f"{url}/recommend?user=nobody&n=0")
        assert status == 400 and "'n'" in body["message"]

        def builder_metrics_text() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                return response.read().decode()

        # Gauges refresh once a second on the consumer thread.
        wait_until(
            lambda: "recsvc_builder_consumer_lag{" in builder_metrics_text(),
            timeout=15,
            what="the consumer-lag gauge",
        )
        builder_metrics = builder_metrics_text()
        assert "recsvc_builder_events_total 8000.0" in builder_metrics
        assert "recsvc_builder_consumer_lag{" in builder_metrics, builder_metrics
        assert "recsvc_builder_training_seconds_count" in builder_metrics
    finally:
        builder_log = stop(builder)
        stop(server)
    assert "builder stopped after 8000 events" in builder_log, builder_log[-2000:]


def test_two_workers_switch_versions_without_failing_a_request(tmp_path):
    store = ModelStore(tmp_path, keep=3)
    model = train_window(planted_events(3000))
    store.publish(model)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = recsvc(
        "serve",
        "--model-dir",
        str(tmp_path),
        "--port",
        str(port),
        "--workers",
        "2",
        "--reload-interval",
        "0.1",
        "--no-access-log",
    )
    failures: list[str] = []
    versions: Counter = Counter()
    done = threading.Event()

    def hammer(user):
        while not done.is_set():
            try:
                status, body = get(f"{url}/recommend?user={user}&n=5")
            except OSError as exc:
                failures.append(repr(exc))
                continue
            if status != 200 or len(body["items"]) != 5:
                failures.append(f"{status} {body}")
            versions[body.get("model_version")] += 1

    try:
        wait_healthy(url)
        threads = [threading.Thread(target=hammer, args=(u,)) for u in ("user-00001", "x", "y")]
        for t in threads:
            t.start()
        for _ in range(6):
            store.publish(model)
            time.sleep(0.4)
        # Both workers must be on the newest version: query until each pid answered with it.
        wait_until(lambda: versions[7] > 20, timeout=10, what="requests served by version 7")
        done.set()
        for t in threads:
            t.join(10)
        time.sleep(0.3)  # both workers' watchers have polled the final version
        with urllib.request.urlopen(f"{url}/metrics") as response:
            metrics_text = response.read().decode()
    finally:
        done.set()
        stop(server)
    assert not failures, failures[:5]
    assert len(versions) >= 4, versions
    total = sum(versions.values())
    # Every request was counted, whichever worker served it or answers /metrics.
    assert metrics_text.count('recsvc_http_requests_total{endpoint="/recommend",status="200"}') == 1
    counted = float(
        metrics_text.split('recsvc_http_requests_total{endpoint="/recommend",status="200"} ')[
            1
        ].split()[0]
    )
    assert counted == total
    assert "recsvc_model_version 7.0" in metrics_text
