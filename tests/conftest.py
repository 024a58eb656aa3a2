"""Shared fixtures: a real Apache Kafka broker, uuid topics, small models, the Flask app."""

from __future__ import annotations

import functools
import os
import uuid
from pathlib import Path

import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.config.server import ServerConfig
from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow
from recommendation_service.errors import BrokerError
from recommendation_service.sandbox.brokers import ApacheKafkaBroker, ensure_topic
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog
from recommendation_service.server.model_watcher import ModelWatcher
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.params import ALSParams

from .processes import broker_of
from .processes import free_port as free_port  # re-exported: tests import it from here

SMALL_ALS = ALSParams(factors=16, iterations=10, regularization=0.05, num_threads=1)


def skip_or_fail(reason: str | None, variable: str) -> None:
    """Nothing when ``reason`` is None; else skip saying why -- or fail, when the environment
    variable ``variable`` is set (CI sets it after installing the part, so a missing part
    cannot pass as a skip)."""
    if reason is None:
        return
    if os.environ.get(variable, "") not in ("", "0"):
        pytest.fail(f"required here ({variable} is set) but unavailable: {reason}")
    pytest.skip(reason)


@functools.cache
def kafka_unavailable() -> str | None:
    """Why Apache Kafka cannot run on this machine, or None (jars are fetched on first use)."""
    from recommendation_service.common.java_runtime import find_java
    from recommendation_service.sandbox.kafka_jars import ensure_kafka_jars

    try:
        find_java()
        ensure_kafka_jars()
    except BrokerError as exc:
        return str(exc)
    return None


def require_kafka() -> None:
    """Skip (or, with RECSVC_TEST_REQUIRE_KAFKA, fail) when Apache Kafka cannot run here."""
    if (reason := kafka_unavailable()) is not None:
        skip_or_fail(f"Apache Kafka cannot run here: {reason}", "RECSVC_TEST_REQUIRE_KAFKA")


def new_broker(
    directory: Path, port: int | None = None, host: str = "127.0.0.1"
) -> ApacheKafkaBroker:
    """A not yet started Apache Kafka in ``directory``; skips if it cannot run here."""
    require_kafka()
    return broker_of(directory, port, host)


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """One real Apache Kafka for the whole session; tests isolate themselves by topic."""
    b = new_broker(tmp_path_factory.mktemp("broker"))
    with b:
        yield b


@pytest.fixture
def topic(broker) -> str:
    name = f"interactions-{uuid.uuid4().hex[:12]}"
    ensure_topic(broker.bootstrap_servers, name, partitions=1)
    return name


def planted_tastes(n_users=60, n_items=400, categories=4, seed=1) -> TasteModel:
    """Users who each favour one of four categories (item ids carry the category)."""
    return TasteModel(make_catalog(n_items, categories, seed), n_users, focus=0.9, seed=seed)


def planted_events(n_events=4000, **kwargs) -> list[Event]:
    tastes = planted_tastes(**kwargs)
    return [Event(u, i, 1.0, float(k)) for k, (u, i) in enumerate(tastes.events(n_events))]


def train_window(events, window=100_000, params=SMALL_ALS):
    w = SlidingWindow(window)
    for e in events:
        w.add(e)
    return ALSTrainer(params).fit(w.snapshot())


@pytest.fixture(scope="session")
def planted_model():
    return train_window(planted_events())


@pytest.fixture
def model_dir(tmp_path, planted_model) -> Path:
    ModelStore(tmp_path / "models").publish(planted_model, offsets={"interactions": {0: 4000}})
    return tmp_path / "models"


@pytest.fixture
def app(model_dir):
    from recommendation_service.server.app import create_app

    config = ServerConfig(model_dir=model_dir, max_n=50)
    watcher = ModelWatcher(ModelStore(model_dir), config.reload_interval)
    watcher.refresh()
    return create_app(config, watcher=watcher)


@pytest.fixture
def client(app):
    return app.test_client()


def category(item: str) -> str:
    return item.rsplit("-", 1)[0]
