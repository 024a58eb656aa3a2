import time

import pytest

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.config.server import ServerConfig
from recommendation_service.server.app import create_app
from recommendation_service.server.model_watcher import ModelWatcher

from ..conftest import category, planted_tastes


def test_known_user_gets_model_recommendations_of_their_taste(client, planted_model):
    tastes = planted_tastes()
    user = planted_model.snapshot.user_ids[0]
    body = client.get(f"/recommend?user={user}&n=5").get_json()
    assert body["user"] == user and body["source"] == "model" and body["model_version"] == 1
    assert len(body["items"]) == len(body["scores"]) == 5
    assert body["scores"] == sorted(body["scores"], reverse=True)
    assert sum(category(i) == tastes.favourite[user] for i in body["items"]) >= 4


def test_seen_items_are_not_recommended(client, planted_model):
    snap = planted_model.snapshot
    row = 3
    seen = {snap.item_ids[c] for c in snap.matrix[row].indices}
    body = client.get(f"/recommend?user={snap.user_ids[row]}&n=50").get_json()
    assert not seen & set(body["items"])
    assert len(body["items"]) == min(50, snap.n_items - len(seen))


def test_unknown_user_gets_popular_items(client, planted_model):
    body = client.get("/recommend?user=never-seen&n=3").get_json()
    assert body["source"] == "popular" and len(body["items"]) == 3
    counts = planted_model.snapshot.matrix.getnnz(axis=0)
    top = planted_model.snapshot.item_ids[int(counts.argmax())]
    assert body["items"][0] == top
    assert body["scores"][0] == counts.max()


def test_default_n_is_10(client):
    assert len(client.get("/recommend?user=never-seen").get_json()["items"]) == 10


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", "'user' is required"),
        ("user=", "'user' is required"),
        ("user=%20", "'user' is required"),
        ("user=" + "x" * 300, "at most 256"),
        ("user=a&n=0", "'n' must be an integer from 1 to 50"),
        ("user=a&n=51", "from 1 to 50"),
        ("user=a&n=-3", "from 1 to 50"),
        ("user=a&n=ten", "from 1 to 50"),
        ("user=a&n=2.5", "from 1 to 50"),
        ("user=a&n=", "from 1 to 50"),
        ("user=a&n=99999999999999999999999", "from 1 to 50"),
    ],
)
def test_bad_parameters_get_a_json_400(client, query, expected):
    response = client.get(f"/recommend?{query}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == 400 and expected in body["message"]


def test_503_before_any_model(tmp_path):
    config = ServerConfig(model_dir=tmp_path)
    app = create_app(config, watcher=ModelWatcher(ModelStore(tmp_path)))
    client = app.test_client()
    response = client.get("/recommend?user=a")
    assert response.status_code == 503 and "no model" in response.get_json()["message"]
    health = client.get("/health")
    assert health.status_code == 503 and health.get_json()["status"] == "no_model"


def test_health_reports_the_served_version(client):
    body = client.get("/health").get_json()
    assert body["status"] == "ok" and body["model_version"] == 1
    assert body["model_age_seconds"] >= 0 and body["last_error"] is None


FAILING = {"state": "failing", "last_error": "OSError: [Errno 28] No space left on device"}


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (None, "unknown"),
        ({"kafka": "ok"}, "ok"),
        ({"kafka": "ok", "updated_at": 0.0}, "stale"),
        ({"kafka": "unreachable"}, "kafka_unreachable"),
        ({"kafka": "stalled"}, "kafka_stalled"),
        ({"kafka": "ok", "publish": FAILING, "update_files": {"state": "ok"}}, "publish_failing"),
        ({"kafka": "ok", "publish": {"state": "ok"}, "update_files": FAILING}, "publish_failing"),
    ],
)
def test_health_reports_the_builder_state(client, model_dir, status, state):
    if status is not None:
        status = {"updated_at": time.time(), **status}
        ControlFiles(ModelStore(model_dir)).write_status(status)
    response = client.get("/health")
    body = response.get_json()
    assert response.status_code == 200 and body["builder"]["state"] == state
    assert body["status"] == ("ok" if state in ("ok", "unknown") else "degraded")
    if state == "publish_failing":
        assert "No space left" in body["builder"]["publish_error"]


def test_unknown_route_and_method_are_json_and_say_what_exists(client):
    missing = client.get("/nope")
    body = missing.get_json()
    assert missing.status_code == 404 and body["status"] == 404
    assert "/openapi.json" in body["message"] and "/recommend" in body["message"]
    wrong = client.delete("/recommend?user=a")
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]
    assert "GET" in wrong.get_json()["message"]


def test_oversized_body_names_the_limit(client):
    response = client.post(
        "/recommend", data=b"{" + b" " * (2 << 20) + b"}", content_type="application/json"
    )
    assert response.status_code == 413
    assert str(1 << 20) in response.get_json()["message"]


@pytest.mark.parametrize(
    "query", ["user=%E2%9C%93%00x", "user=a%0Db", "user=tab%09bed", "user=%7F"]
)
def test_ids_with_control_characters_are_rejected(client, query):
    response = client.get(f"/recommend?{query}&n=3")
    assert response.status_code == 400
    assert "control characters" in response.get_json()["message"]
    response = client.post("/recommend", json={"user_id": "a\x00b", "top_k": 3})
    assert response.status_code == 400 and "control characters" in response.get_json()["message"]
    assert client.get("/similar?item=x%00y").status_code == 400
    assert client.get("/items/x%01y/associations").status_code == 400


def test_new_version_is_picked_up_and_bad_one_refused(app, client, model_dir, planted_model):
    watcher = app.extensions["recsvc_watcher"]
    store = ModelStore(model_dir)
    store.publish(planted_model)
    assert watcher.refresh()
    assert client.get("/health").get_json()["model_version"] == 2
    store.publish(planted_model)
    (model_dir / "versions" / "v00000003" / "user_vectors.npy").write_bytes(b"garbage")
    assert not watcher.refresh()
    health = client.get("/health").get_json()
    assert health["model_version"] == 2 and "v00000003" in health["last_error"]
    assert health["status"] == "degraded" and health["refused_version"] == "v00000003"
    store.publish(planted_model)
    assert watcher.refresh()
    health = client.get("/health").get_json()
    assert health["status"] == "ok" and health["refused_version"] is None
    assert health["model_version"] == 4 and health["last_error"] is None


def test_model_endpoint_returns_the_manifest(client, planted_model):
    body = client.get("/model").get_json()
    assert body["version"] == 1 and body["window_size"] == planted_model.snapshot.n_events
    assert body["params"]["factors"] == planted_model.params.factors
    assert body["offsets"] == {"interactions": {"0": 4000}}
    assert body["updates_applied"] == 0


def test_metrics_count_requests_by_endpoint_status_and_source(client):
    client.get("/recommend?user=never-seen&n=2")
    client.get("/recommend?user=never-seen&n=2")
    client.post("/recommend", json={"user_id": "never-seen", "top_k": 2})
    client.get("/recommend?n=2")
    client.get("/no/such/path")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'recsvc_http_requests_total{endpoint="/recommend",status="200"} 3.0' in text
    assert 'recsvc_http_requests_total{endpoint="/recommend",status="400"} 1.0' in text
    assert 'recsvc_http_requests_total{endpoint="unmatched",status="404"} 1.0' in text
    # GET and POST /recommend both count (the README's fallback-rate formula needs both).
    assert 'recsvc_recommendations_total{source="popular"} 3.0' in text
    assert 'recsvc_http_request_seconds_bucket{endpoint="/recommend",le="0.0005"}' in text


@pytest.mark.parametrize("query", ["user=u1", "user=u1&n=5", "n=3&user=u1"])
def test_a_plain_request_plans_as_the_full_parse_of_its_parameters(app, query):
    # plan_param skips the parse for queries of user and n only; the shortcut must agree.
    from recommendation_service.server import api

    with app.test_request_context(f"/recommend?{query}"):
        assert api.query_args().keys() <= api.PLAIN_PARAMETERS
        assert api.plan_param("u1") == api._parsed_plan(api.query_args()) == api.PLAIN_PLAN
    with app.test_request_context("/recommend?user=u1&diversify=category"):
        assert api.plan_param("u1") != api.PLAIN_PLAN
