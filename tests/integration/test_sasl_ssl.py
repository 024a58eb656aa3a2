"""The whole pipeline against an Apache Kafka that speaks SASL_SSL only.

Every client -- the demo producers, the builder's consumer, window rebuild, catalog reader,
dead-letter and update producers, attribution tracker and erasures feed, the server's ingest,
impressions, updates and erasures clients, ``recsvc forget`` -- gets its credentials only from
``RECSVC_*_KAFKA_OPTION`` variables (never argv). The broker's log shows no failed
authentication while they work; a client without credentials, or with a wrong password, stops
at start with the broker's reason.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.sandbox.kafka_broker import ApacheKafkaBroker
from recommendation_service.sandbox.kafka_security import SaslSsl

from ..conftest import free_port, require_kafka
from ..processes import builder as start_builder
from ..processes import get, post, recsvc, stop, wait_healthy
from .test_builder_integration import wait_until

pytestmark = pytest.mark.integration

TOKEN = "sasl-test-admin-token"


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    """Apache Kafka with one SASL_SSL listener; users ``recsvc`` and ``producer``."""
    require_kafka()
    directory = tmp_path_factory.mktemp("sasl-ssl")
    users = {"recsvc": secrets.token_hex(12), "producer": secrets.token_hex(12)}
    security = SaslSsl.create(directory / "tls", users)
    broker = ApacheKafkaBroker(port=free_port(), log_file=directory / "kafka.log",
                               data_dir=directory / "data", security=security)  # fmt: skip
    with broker:
        yield broker


def options(broker, user: str, mechanism: str) -> str:
    pairs = broker.security.client_options(user, mechanism)
    return " ".join(f"{k}={v}" for k, v in pairs.items())


def failed_authentications(broker, since: int) -> list[str]:
    text = broker.log_file.read_bytes()[since:].decode(errors="replace")
    return [line for line in text.splitlines() if "Failed authentication" in line]


def run(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recommendation_service", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**__import__("os").environ, **env})  # fmt: skip


def test_the_whole_pipeline_authenticates_through_its_settings_alone(secure, tmp_path):
    servers = secure.bootstrap_servers
    tag = uuid.uuid4().hex[:8]
    topic, items, dlq = f"interactions-{tag}", f"items-{tag}", f"dead-{tag}"
    updates, impressions = f"updates-{tag}", f"impressions-{tag}"
    scram, plain = options(secure, "recsvc", "SCRAM-SHA-256"), options(secure, "producer", "PLAIN")
    env = {
        "RECSVC_ITEM_PRODUCER_KAFKA_OPTION": plain,
        "RECSVC_USER_INTERACTIONS_PRODUCER_KAFKA_OPTION": plain,
        "RECSVC_BUILDER_KAFKA_OPTION": scram,
        "RECSVC_SERVE_KAFKA_OPTION": scram,
        "RECSVC_FORGET_KAFKA_OPTION": scram,
        "RECSVC_SERVE_ADMIN_TOKEN": TOKEN,
    }
    mark = secure.log_file.stat().st_size
    done = run(env, "item-producer", "--bootstrap-servers", servers, "--topic", items,
               "--items", "200")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    done = run(env, "user-interactions-producer", "--bootstrap-servers", servers, "--topic",
               topic, "--items", "200", "--users", "50", "--count", "3000",
               "--rate", "0")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    producer = Producer({"bootstrap.servers": servers,
                         **secure.security.client_options("producer", "PLAIN")})  # fmt: skip
    producer.produce(topic, b"not an event")
    assert producer.flush(30) == 0

    model_dir = tmp_path / "models"
    control = ControlFiles(ModelStore(model_dir))
    builder = start_builder(
        servers, topic, model_dir, "--group-id", f"g-{tag}", "--catalog-topic", items,
        "--dead-letter-topic", dlq, "--updates-topic", updates, "--impressions-topic",
        impressions, "--retrain-every", "3000", "--tune", "off", "--factors", "8",
        "--iterations", "3", env=env,
    )  # fmt: skip
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = recsvc("serve", "--model-dir", str(model_dir), "--port", str(port),
                    "--bootstrap-servers", servers, "--topic", topic, "--updates-topic", updates,
                    "--impressions-topic", impressions, "--no-access-log", quiet=True,
                    env=env)  # fmt: skip
    try:
        wait_healthy(url, timeout=120)
        wait_until(lambda: control.read_status()["malformed"] == 1, timeout=20,
                   what="the malformed message counted")  # fmt: skip
        assert control.read_status()["catalog"]["items"] == 200

        # Events in over HTTP (ingest) come back as a fresh vector.
        known = get(f"{url}/recommend?user=user-00001&n=5")[1]
        assert known["source"] == "model"
        samples = [{"user_id": f"sasl-{tag}", "item_id": i} for i in known["items"][:3]]
        assert post(f"{url}/online/data/add", {"samples": samples})[0] == 200
        wait_until(lambda: get(f"{url}/recommend?user=sasl-{tag}")[1]["source"] == "model",
                   timeout=10, what="ingested events reflected")  # fmt: skip

        # Impressions reach the builder's tracker; its counts reach the servers.
        def lists() -> int:
            return get(f"{url}/attribution")[1]["service"].get("all", {}).get("lists", 0)

        wait_until(lambda: lists() >= 2, timeout=30, what="lists attributed")
        health = get(f"{url}/health")[1]
        assert health["updates_topic"]["state"] == "ok" and health["updates_topic"]["records"]
        assert health["erasures"]["state"] == "ok" and health["erasures"]["caught_up"]

        # Erasure over HTTP and from the command line.
        request = urllib.request.Request(f"{url}/users/user-00002", method="DELETE",
                                         headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=15) as response:
            assert json.loads(response.read())["erased"]
        done = run(env, "forget", "user-00003", "--bootstrap-servers", servers, "--topic", topic)
        assert done.returncode == 0 and json.loads(done.stdout)["position"] == 1, done.stderr
        wait_until(lambda: (control.read_status() or {})["erasures"]["applied"] == 2,
                   timeout=20, what="the builder applying both erasures")  # fmt: skip

        # The dead letter is on its topic.
        consumer = Consumer({"bootstrap.servers": servers, "group.id": f"dlq-{tag}",
                             "auto.offset.reset": "earliest",
                             **secure.security.client_options("recsvc")})  # fmt: skip
        consumer.subscribe([dlq])
        letters = []
        wait_until(lambda: letters.extend(m for m in consumer.consume(10, 1.0) if not m.error())
                   or letters, timeout=30, what="the dead letter")  # fmt: skip
        consumer.close()
        assert letters[0].value() == b"not an event"
    finally:
        stop(server)
        stop(builder)
    assert failed_authentications(secure, mark) == []


@pytest.mark.parametrize(
    "settings, reason",
    [
        ("", "its listener expects TLS or SASL and this client speaks plaintext"),
        ("wrong-password", "SASL authentication error"),
    ],
)
def test_a_client_that_does_not_authenticate_stops_with_the_brokers_reason(
    secure, tmp_path, settings, reason
):
    env = {}
    if settings == "wrong-password":
        pairs = secure.security.client_options("recsvc") | {"sasl.password": "wrong"}
        env = {"RECSVC_BUILDER_KAFKA_OPTION": " ".join(f"{k}={v}" for k, v in pairs.items())}
    mark = secure.log_file.stat().st_size
    done = run(env, "builder", "--bootstrap-servers", secure.bootstrap_servers,
               "--model-dir", str(tmp_path / "models"), "--metrics-port", "0",
               timeout=60)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert reason in done.stderr
    assert failed_authentications(secure, mark)  # the broker saw and refused it
