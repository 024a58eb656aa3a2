"""Who may call what (server/access.py): per-user and write endpoints need a token beyond
loopback; ``GET /recommend`` stays open."""

from __future__ import annotations

import logging

import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.config.server import ServerConfig
from recommendation_service.server.access import is_loopback, warn_if_open
from recommendation_service.server.app import create_app
from recommendation_service.server.model_watcher import ModelWatcher

ADMIN, APP = "a" * 20, "p" * 20


def _client(model_dir, **settings):
    config = ServerConfig(model_dir=model_dir, **settings)
    watcher = ModelWatcher(ModelStore(model_dir), config.reload_interval)
    watcher.refresh()
    return create_app(config, watcher=watcher).test_client()


def _guarded(client, user: str, token: str | None = None) -> dict[str, int]:
    """Status of each guarded endpoint (ingest answers 503 without Kafka once let through)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    item = client.get(f"/recommend?user={user}&n=2").get_json()["items"][0]
    return {
        "dashboard user": client.get(f"/dashboard/api/user?user={user}", headers=headers)
        .status_code,
        "dashboard models": client.get("/dashboard/api/models", headers=headers).status_code,
        "ingest": client.post("/online/data/add", headers=headers,
                              json={"samples": [{"user_id": user, "item_id": item}]})
        .status_code,
        "predict": client.post("/predict", headers=headers,
                               json={"user_id": user, "item_ids": [item]}).status_code,
        "candidates": client.post("/recommend", headers=headers,
                                  json={"user_id": user, "candidate_items": [item]})
        .status_code,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.1.2.3", False),
     ("recsvc.internal", False)],
)  # fmt: skip
def test_which_binds_count_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_on_loopback_without_tokens_everything_is_open(model_dir, planted_model):
    client = _client(model_dir)
    user = planted_model.snapshot.user_ids[0]
    assert _guarded(client, user) == {"dashboard user": 200, "dashboard models": 200,
                                      "ingest": 503, "predict": 200, "candidates": 200}  # fmt: skip


def test_beyond_loopback_without_tokens_per_user_and_write_endpoints_answer_403(
    model_dir, planted_model
):
    client = _client(model_dir, host="0.0.0.0")
    user = planted_model.snapshot.user_ids[0]
    assert set(_guarded(client, user).values()) == {403}
    answer = client.post("/online/data/add", json={"samples": [{"user_id": "u", "item_id": "i"}]})
    assert "--app-token" in answer.get_json()["message"]
    answer = client.get(f"/dashboard/api/user?user={user}")
    assert "--admin-token" in answer.get_json()["message"]
    # What anyone may ask stays open.
    for path in (f"/recommend?user={user}&n=3", "/popular?n=3", "/health", "/livez"):
        assert client.get(path).status_code == 200, path


def test_beyond_loopback_each_token_opens_what_it_guards(model_dir, planted_model):
    client = _client(model_dir, host="0.0.0.0", admin_token=ADMIN, app_token=APP)
    user = planted_model.snapshot.user_ids[0]
    assert set(_guarded(client, user).values()) == {401}
    assert set(_guarded(client, user, "wrong-token-0123456789").values()) == {401}
    with_app = _guarded(client, user, APP)
    assert with_app == {"dashboard user": 401, "dashboard models": 401, "ingest": 503,
                        "predict": 200, "candidates": 200}  # fmt: skip
    assert set(_guarded(client, user, ADMIN).values()) <= {200, 503}


def test_an_app_token_is_required_on_loopback_too(model_dir, planted_model):
    client = _client(model_dir, app_token=APP)
    user = planted_model.snapshot.user_ids[0]
    statuses = _guarded(client, user)
    assert statuses["ingest"] == statuses["predict"] == statuses["candidates"] == 401
    assert statuses["dashboard user"] == 200  # no admin token: the dashboard is open here


def test_only_the_admin_token_opens_the_app_endpoints_beyond_loopback(model_dir, planted_model):
    client = _client(model_dir, host="0.0.0.0", admin_token=ADMIN)
    user = planted_model.snapshot.user_ids[0]
    assert set(_guarded(client, user).values()) == {401}
    assert set(_guarded(client, user, ADMIN).values()) <= {200, 503}


def test_serve_warns_once_when_a_public_bind_leaves_endpoints_closed(model_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="recommendation_service.server.access"):
        warn_if_open(ServerConfig(model_dir=model_dir, host="0.0.0.0"))
        warn_if_open(ServerConfig(model_dir=model_dir))
        warn_if_open(ServerConfig(model_dir=model_dir, host="0.0.0.0", admin_token=ADMIN,
                                  app_token=APP))  # fmt: skip
    assert len(caplog.records) == 1
    assert "--app-token" in caplog.text and "--admin-token" in caplog.text
