"""The dashboard's page, assets and JSON endpoints (request/response logic; the page itself
runs in a real browser in tests/integration/test_dashboard_browser.py)."""

from __future__ import annotations

import json

import pytest

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.builder.observability.history import BuilderHistory
from recommendation_service.config.server import ServerConfig
from recommendation_service.data.catalog import CatalogEntry, write_catalog
from recommendation_service.server.app import create_app
from recommendation_service.server.model_watcher import ModelWatcher

from ..conftest import category

USER = "user-00001"


def test_the_page_and_its_assets_are_served_from_the_package(client):
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.content_type.startswith("text/html")
    html = page.get_data(as_text=True)
    assert "/dashboard/static/vendor/uPlot.iife.min.js" in html and "https://" not in html
    script = client.get("/dashboard/static/dashboard.js")
    assert script.status_code == 200 and script.content_type.startswith("text/javascript")
    assert "MIT" in client.get("/dashboard/static/vendor/uPlot.LICENSE").get_data(as_text=True)
    for bad in ("/dashboard/static/../api.py", "/dashboard/static/nope.js"):
        assert client.get(bad).status_code == 404


def test_stream_and_models_read_the_builders_files(client, model_dir):
    history = BuilderHistory(every=5.0, keep=3)
    manifest = json.loads(next((model_dir / "versions").glob("v*/manifest.json")).read_text())
    for k in range(5):
        point = {"events": 100 * k, "malformed": k, "lag": 0, "window_events": 100 * k,
                 "window_seconds": 10.0 * k}  # fmt: skip
        history.record(float(k * 5), point, manifest, {"service": {"hit_rate": 0.3}})
    control = ControlFiles(ModelStore(model_dir))
    control.write_history(history.to_dict())
    control.write_status({"kafka": "ok", "window_events": 400, "window_span": [1.0, 41.0],
                          "lag": {"interactions[0]": 3}, "malformed": 4})  # fmt: skip
    stream = client.get("/dashboard/api/stream").get_json()
    assert [p["events"] for p in stream["points"]] == [200, 300, 400]  # the last `keep`
    assert stream["status"]["lag"] == {"interactions[0]": 3}
    assert stream["status"]["window_span"] == [1.0, 41.0]
    models = client.get("/dashboard/api/models").get_json()
    assert len(models["refits"]) == 1 and models["refits"][0]["live_hit_rate"] == 0.3
    assert models["served"] == manifest["version"] and models["refused"] is None


def test_serving_counts_requests_per_endpoint(client):
    for _ in range(3):
        client.get(f"/recommend?user={USER}&n=3")
    client.get("/recommend?n=3")  # a 400
    snapshot = client.get("/dashboard/api/serving").get_json()
    recommend = snapshot["endpoints"]["/recommend"]
    assert recommend["count"] == 4 and recommend["buckets"]["+Inf"] == 4
    assert snapshot["statuses"]["400"] == 1 and snapshot["sources"]["model"] == 3


def test_try_a_user_and_an_item(client, model_dir, app):
    watcher = app.extensions["recsvc_watcher"]
    items = list(watcher.model.item_ids)
    write_catalog(model_dir, {i: CatalogEntry(category=category(i), price=5.0) for i in items}, {})
    watcher.refresh()
    body = client.get(f"/dashboard/api/user?user={USER}&n=5").get_json()
    assert body["known"] and len(body["recommendations"]) == 5 and body["window_item_count"] > 0
    first = body["recommendations"][0]
    assert first["category"] == category(first["item"]) and first["price"] == 5.0
    assert first["reason"] in ("model", "similar_to_recent")
    item = client.get(f"/dashboard/api/item?item={first['item']}").get_json()
    assert item["known"] and len(item["similar"]) == 10
    assert item["metadata"]["category"] == category(first["item"])
    assert client.get("/dashboard/api/user?user=").status_code == 400
    unknown = client.get("/dashboard/api/item?item=nope").get_json()
    assert unknown["known"] is False and unknown["similar"] == []


@pytest.fixture
def token_client(model_dir):
    config = ServerConfig(model_dir=model_dir, admin_token="t" * 20)
    watcher = ModelWatcher(ModelStore(model_dir), config.reload_interval)
    watcher.refresh()
    return create_app(config, watcher=watcher).test_client()


def test_with_an_admin_token_the_data_needs_it_and_the_page_does_not(token_client):
    assert token_client.get("/dashboard").status_code == 200
    denied = token_client.get("/dashboard/api/models")
    assert denied.status_code == 401 and "Bearer" in denied.get_json()["message"]
    allowed = token_client.get(
        "/dashboard/api/models", headers={"Authorization": "Bearer " + "t" * 20}
    )
    assert allowed.status_code == 200
