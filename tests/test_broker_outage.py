"""The broker stops and comes back (empty, as the in-memory broker does) under a running system."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from recommendation_service.broker import EmbeddedBroker, ensure_topic
from recommendation_service.control_files import ControlFiles
from recommendation_service.model_store import ModelStore

from .conftest import free_port, planted_events
from .processes import builder as start_builder
from .processes import get, recsvc, stop, wait_healthy
from .test_builder_integration import produce, wait_until

pytestmark = pytest.mark.integration


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_builder_and_server_ride_out_a_broker_restart(tmp_path):
    port, http_port = free_port(), free_port()
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    broker = EmbeddedBroker("127.0.0.1", port).start()
    url = f"http://127.0.0.1:{http_port}"
    builder = server = None
    try:
        ensure_topic(broker.bootstrap_servers, topic)
        events = planted_events(2000)
        produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events])
        builder = start_builder(
            broker.bootstrap_servers, topic, tmp_path, "--retrain-every", "1000", "--factors", "8"
        )
        server = recsvc("serve", "--model-dir", str(tmp_path), "--port", str(http_port), quiet=True)
        wait_healthy(url, timeout=60)
        control = ControlFiles(ModelStore(tmp_path))
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

        broker.start()  # same port, empty: the topic and the group's offsets are gone
        ensure_topic(broker.bootstrap_servers, topic)
        more = planted_events(500, seed=9)
        produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in more])
        wait_until(
            lambda: get(f"{url}/health")[1]["status"] == "ok", timeout=60, what="/health back to ok"
        )
        # Offsets that no longer exist: the builder consumes the new partition from its start.
        wait_until(
            lambda: (control.read_status() or {}).get("events_consumed") == 2500,
            timeout=60,
            what="the new events consumed",
        )
        assert builder.poll() is None and server.poll() is None
    finally:
        for proc in (builder, server):
            if proc is not None:
                stop(proc)
        broker.stop()
