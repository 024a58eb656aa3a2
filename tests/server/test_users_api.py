"""DELETE /users/{user}: the admin token, a checked id, and a clear answer without Kafka."""

from __future__ import annotations

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.config.kafka import KafkaSettings
from recommendation_service.config.server import ServerConfig
from recommendation_service.server.app import create_app
from recommendation_service.server.model_watcher import ModelWatcher

TOKEN = "users-api-admin-token"


def client_of(model_dir, **settings):
    config = ServerConfig(model_dir=model_dir, **settings)
    watcher = ModelWatcher(ModelStore(model_dir), config.reload_interval)
    watcher.refresh()
    return create_app(config, watcher=watcher).test_client()


def test_erasure_needs_the_admin_token(client):
    response = client.delete("/users/u1")
    assert response.status_code == 403 and "--admin-token" in response.get_json()["message"]


def test_a_wrong_token_is_refused_and_a_bad_id_is_explained(model_dir):
    client = client_of(model_dir, admin_token=TOKEN, max_id_length=8)
    assert client.delete("/users/u1", headers={"Authorization": "Bearer nope"}).status_code == 401
    response = client.delete("/users/" + "x" * 9, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 400 and "8" in response.get_json()["message"]


def test_without_kafka_the_answer_says_what_erasure_needs(model_dir):
    client = client_of(model_dir, admin_token=TOKEN)
    response = client.delete("/users/u1", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 503
    assert "--bootstrap-servers" in response.get_json()["message"]


def test_the_erasures_topic_follows_the_interactions_topic(model_dir):
    ingest = KafkaSettings(bootstrap_servers="127.0.0.1:1", topic="clicks")
    assert ServerConfig(model_dir=model_dir, ingest=ingest).erasures_topic == "clicks-erasures"
    named = ServerConfig(model_dir=model_dir, ingest=ingest, erasures_topic="gdpr")
    assert named.erasures_topic == "gdpr"
