"""Shared fixtures: a real embedded broker, uuid topics, small published models, Flask app."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from recommendation_service.broker import EmbeddedBroker, ensure_topic
from recommendation_service.config import ALSParams, ServerConfig
from recommendation_service.events import Event
from recommendation_service.model_store import ModelStore
from recommendation_service.model_watcher import ModelWatcher
from recommendation_service.synthetic import TasteModel, make_catalog
from recommendation_service.trainer import ALSTrainer
from recommendation_service.window import SlidingWindow

SMALL_ALS = ALSParams(factors=16, iterations=10, regularization=0.05, num_threads=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """One real Tansu broker for the whole session; tests isolate themselves by topic."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker("127.0.0.1", free_port(), log_file=log) as b:
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
    from recommendation_service.app import create_app

    config = ServerConfig(model_dir=model_dir, max_n=50)
    watcher = ModelWatcher(ModelStore(model_dir), config.reload_interval)
    watcher.refresh()
    return create_app(config, watcher=watcher)


@pytest.fixture
def client(app):
    return app.test_client()


def category(item: str) -> str:
    return item.rsplit("-", 1)[0]
