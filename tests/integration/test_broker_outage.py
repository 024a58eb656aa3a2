"""The broker stops and comes back under a running system.

Apache Kafka comes back with its log: the builder resumes where it was, with nothing lost,
nothing counted twice and no replay from the start.
"""

from __future__ import annotations

import time
import uuid

import pytest

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.sandbox.brokers import ensure_topic

from ..conftest import free_port, new_broker, planted_events
from ..processes import builder as start_builder
from ..processes import cpu_seconds, get, recsvc, stop, wait_healthy
from .test_builder_integration import produce, wait_until

pytestmark = pytest.mark.integration


def test_builder_and_server_ride_out_a_broker_restart(tmp_path):
    http_port = free_port()
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    broker = new_broker(tmp_path / "broker").start()
    model_dir = tmp_path / "models"
    url = f"http://127.0.0.1:{http_port}"
    builder = server = None
    try:
        ensure_topic(broker.bootstrap_servers, topic)
        events = planted_events(2000)
        produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events])
        builder = start_builder(
            broker.bootstrap_servers, topic, model_dir, "--retrain-every", "1000", "--factors", "8"
        )
        server = recsvc(
            "serve", "--model-dir", str(model_dir), "--port", str(http_port), quiet=True
        )
        wait_healthy(url, timeout=60)
        control = ControlFiles(ModelStore(model_dir))
        wait_until(
            lambda: (control.read_status() or {}).get("events_consumed") == 2000,
            timeout=60,
            what="the builder catching up",
        )

        broker.stop()
        wait_until(
            lambda: get(f"{url}/health")[1]["builder"]["state"] == "kafka_unreachable",
            timeout=60,
            what="/health reporting the outage",
        )
        status, body = get(f"{url}/health")
        assert status == 200 and body["status"] == "degraded"
        assert get(f"{url}/recommend?user={events[0].user}&n=5")[0] == 200
        before = cpu_seconds(builder.pid)
        time.sleep(3)
        assert cpu_seconds(builder.pid) - before < 0.6, "the builder spins while Kafka is down"
        assert builder.poll() is None and server.poll() is None

        # Same port, with its log.
        broker.start()
        ensure_topic(broker.bootstrap_servers, topic)
        more = planted_events(500, seed=9)
        produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in more])
        wait_until(
            lambda: get(f"{url}/health")[1]["status"] == "ok", timeout=60, what="/health back to ok"
        )
        # Each event counted once: the builder resumes at offset 2000.
        wait_until(
            lambda: (control.read_status() or {}).get("events_consumed") == 2500,
            timeout=60,
            what="the new events consumed",
        )
        status = control.read_status()
        assert status["offsets"][f"{topic}[0]"] == 2500
        assert status["window_events"] == 2500
        time.sleep(2)  # nothing replayed or counted twice afterwards
        assert control.read_status()["events_consumed"] == 2500
        assert builder.poll() is None and server.poll() is None
    finally:
        for proc in (builder, server):
            if proc is not None:
                stop(proc)
        broker.close()
