"""The online API on a served model with baskets: ranking, predict, similar, bought together,
model info, versions, rollback, training control, ingest validation and the OpenAPI file."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from jsonschema import Draft202012Validator

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.builder.refits.training_worker import TrainingWorker
from recommendation_service.config.server import ServerConfig
from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow
from recommendation_service.server.app import create_app
from recommendation_service.server.model_watcher import ModelWatcher
from recommendation_service.training.als import ALSTrainer

from ..conftest import SMALL_ALS, category, planted_tastes

TOKEN = "a-very-secret-admin-token"


def basket_events() -> list[Event]:
    """Planted tastes, plus baskets in which "garden-0001" always comes with "garden-0002"."""
    tastes = planted_tastes()
    events = [Event(u, i, 1.0, float(k)) for k, (u, i) in enumerate(tastes.events(4000))]
    for k in range(40):
        user = tastes.users[k % len(tastes.users)]
        for item in ("garden-0001", "garden-0002", f"books-{k % 7:04d}"):
            events.append(Event(user, item, 1.0, 5000.0 + k, basket=f"order-{k}"))
    return events


@pytest.fixture(scope="module")
def model_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("online") / "models"
    window = SlidingWindow(100_000)
    for e in basket_events():
        window.add(e)
    worker = TrainingWorker(
        ALSTrainer(SMALL_ALS), ModelStore(root), lambda: (window.snapshot(), {})
    )
    assert worker._train_once() and worker._train_once()  # two versions, for rollback
    return root


@pytest.fixture
def online(model_root):
    config = ServerConfig(model_dir=model_root, admin_token=TOKEN)
    watcher = ModelWatcher(ModelStore(model_root))
    watcher.refresh()
    app = create_app(config, watcher=watcher)
    yield app.test_client(), watcher
    ControlFiles(ModelStore(model_root)).set_pin(None)


def auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def test_rank_candidates_puts_unknown_last(online):
    client, _ = online
    user = planted_tastes().users[0]
    favourite = planted_tastes().favourite[user]
    other = next(c for c in ("books", "music", "games", "garden") if c != favourite)
    body = client.post(
        "/recommend",
        json={
            "user_id": user,
            "candidate_items": ["nope", f"{other}-0090", f"{favourite}-0090"],
            "top_k": 3,
        },
    ).get_json()
    items = [r["item_id"] for r in body["recommendations"]]
    assert items == [f"{favourite}-0090", f"{other}-0090", "nope"]
    assert body["recommendations"][2] == {"item_id": "nope", "score": None, "unknown": True}
    assert body["source"] == "model"


def test_candidate_scores_are_get_recommend_scores_and_seen_items_are_marked(online):
    client, watcher = online
    user = planted_tastes().users[0]
    top = client.get(f"/recommend?user={user}&n=5").get_json()
    model = watcher.model
    row = model.user_ids.row_of(user)
    seen = [model.item_ids[c] for c in model.seen_items(row).tolist()[:2]]
    body = client.post(
        "/recommend",
        json={"user_id": user, "candidate_items": [*top["items"], *seen], "top_k": 7},
    ).get_json()
    ranked = {r["item_id"]: r for r in body["recommendations"]}
    # Same item, same user, same version: the same score GET /recommend gave it.
    for item, score in zip(top["items"], top["scores"]):
        assert ranked[item]["score"] == pytest.approx(score, rel=1e-6)
        assert "seen" not in ranked[item]
    for item in seen:
        assert ranked[item]["seen"] is True
    scores = [r["score"] for r in body["recommendations"]]
    assert scores == sorted(scores, reverse=True)
    dropped = client.post(
        "/recommend",
        json={"user_id": user, "candidate_items": [*top["items"], *seen], "exclude_seen": True},
    ).get_json()
    assert [r["item_id"] for r in dropped["recommendations"]] == top["items"]
    bad = client.post(
        "/recommend", json={"user_id": user, "candidate_items": seen, "exclude_seen": "yes"}
    )
    assert bad.status_code == 400 and "exclude_seen" in bad.get_json()["message"]


def test_post_recommend_without_candidates_matches_get(online):
    client, _ = online
    user = planted_tastes().users[1]
    post = client.post("/recommend", json={"user_id": user, "top_k": 5}).get_json()
    get = client.get(f"/recommend?user={user}&n=5").get_json()
    assert [r["item_id"] for r in post["recommendations"]] == get["items"]


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"top_k": 3},
        {"user_id": ""},
        {"user_id": "u", "top_k": 0},
        {"user_id": "u", "candidate_items": "x"},
        {"user_id": "u", "candidate_items": [None]},
    ],
)
def test_bad_rank_requests_are_400(online, body):
    client, _ = online
    response = client.post("/recommend", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400 and response.get_json()["message"]


def test_predict_scores_are_percentile_ranks(online):
    client, watcher = online
    user = planted_tastes().users[0]
    top = watcher.model.recommend(user, 1).items[0]
    body = client.post("/predict", json={"user_id": user, "item_ids": [top, "nope"]}).get_json()
    best, unknown = body["predictions"]
    assert best["score"] >= 0.99 and unknown["score"] is None
    pairs = client.post(
        "/predict",
        json={
            "pairs": [
                {"user_id": user, "item_id": top},
                {"user_id": "stranger", "item_id": top},
            ]
        },
    ).get_json()["predictions"]
    assert pairs[0]["score"] == best["score"] and pairs[1]["source"] == "popular"
    assert all(0 <= p["score"] <= 1 for p in pairs)
    assert client.post("/predict", json={"pairs": []}).status_code == 400


def test_similar_items_share_the_category(online):
    client, _ = online
    body = client.get("/similar?item=music-0005&n=10").get_json()
    assert "music-0005" not in [s["item_id"] for s in body["similar"]]
    assert Counter(category(s["item_id"]) for s in body["similar"])["music"] >= 8
    assert client.get("/similar?item=nope").status_code == 404
    assert client.get("/similar").status_code == 400


def test_bought_together_has_support_confidence_lift(online):
    client, _ = online
    body = client.get("/items/garden-0001/associations?n=5").get_json()
    top = body["associations"][0]
    # 40 explicit baskets, plus sessions of the planted users (events < 30 min apart)
    assert top["item_id"] == "garden-0002" and top["baskets"] >= 40
    assert top["confidence"] == pytest.approx(top["baskets"] / body["baskets"], abs=1e-5)
    assert top["lift"] > 1 and 0 < top["support"] <= 1
    assert client.get("/items/nope/associations").status_code == 404


def test_popular_and_model_info_and_versions(online):
    client, watcher = online
    popular = client.get("/popular?n=3").get_json()
    assert len(popular["items"]) == 3 and popular["scores"] == sorted(popular["scores"])[::-1]
    info = client.get("/model/info").get_json()
    assert info["version"] == 2 and info["n_items"] == watcher.model.n_items
    assert info["params"]["factors"] == SMALL_ALS.factors and info["pinned"] is False
    versions = client.get("/model/versions").get_json()["versions"]
    assert [v["version"] for v in versions] == [2, 1] and versions[0]["current"]


def test_rollback_needs_the_token_and_lasts_until_the_next_publish(online, model_root):
    client, watcher = online
    assert client.post("/model/rollback", json={"version": 1}).status_code == 401
    assert (
        client.post("/model/rollback", json={"version": 1}, headers=auth("wrong")).status_code
        == 401
    )
    assert client.post("/model/rollback", json={"version": 99}, headers=auth()).status_code == 404
    assert client.post("/model/rollback", json={"version": "1"}, headers=auth()).status_code == 400
    ok = client.post("/model/rollback", json={"version": 1}, headers=auth()).get_json()
    assert ok == {"serving": "v00000001", "pinned": True, "until": ok["until"]}
    watcher.refresh()
    assert client.get("/health").get_json()["model_version"] == 1
    client.post("/model/rollback", json={"version": "latest"}, headers=auth())
    watcher.refresh()
    assert client.get("/health").get_json()["model_version"] == 2


def test_admin_endpoints_are_off_without_a_token(model_root):
    app = create_app(
        ServerConfig(model_dir=model_root), watcher=ModelWatcher(ModelStore(model_root))
    )
    client = app.test_client()
    assert client.post("/model/rollback", json={"version": 1}).status_code == 403
    assert client.post("/online/training/start").status_code == 403


def test_training_start_leaves_a_request_for_the_builder(online, model_root):
    client, _ = online
    assert client.get("/online/training/status").status_code == 503  # no builder here
    response = client.post("/online/training/start", headers=auth())
    assert response.status_code == 202
    job = response.get_json()["job"]
    assert ControlFiles(ModelStore(model_root)).take_training_requests() == [job]


def test_ingest_is_off_without_kafka(online):
    client, _ = online
    response = client.post("/online/data/add", json={"samples": [{"user_id": "u", "item_id": "i"}]})
    assert response.status_code == 503 and "--bootstrap-servers" in response.get_json()["message"]


def test_sample_rules():
    from recommendation_service.data.events import DEFAULT_ACTION_WEIGHTS as A
    from recommendation_service.errors import MalformedEvent
    from recommendation_service.server.ingest import sample_to_event

    assert (
        sample_to_event({"user_id": 1, "item_id": "i", "label": 0}, A, 256)["action"] == "dislike"
    )
    rated = sample_to_event({"user_id": "u", "item_id": "i", "parameters": {"stars": 4}}, A, 256)
    assert rated["action"] == "rating" and rated["value"] == 4
    partial = sample_to_event(
        {
            "user_id": "u",
            "item_id": "i",
            "action_type": "view",
            "parameters": {"completion_rate": 0.5},
        },
        A,
        256,
    )
    assert partial["weight"] == 0.5
    for bad in (
        {"user_id": "u"},
        {"user_id": "u", "item_id": "i", "label": 2},
        {"user_id": "u", "item_id": "i", "action_type": "teleport"},
        {"user_id": "u", "item_id": "i", "parameters": {"stars": 9}},
        "not an object",
    ):
        with pytest.raises(MalformedEvent):
            sample_to_event(bad, A, 256)


def test_openapi_describes_every_route_and_its_examples_are_valid(online):
    client, _ = online
    spec = client.get("/openapi.json").get_json()
    described = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    app = client.application
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:path:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in described, f"{method} {path} is not in openapi.json"

    def resolve(node):
        while "$ref" in node:
            target = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    checked = 0
    for ops in spec["paths"].values():
        for op in ops.values():
            bodies = [op.get("requestBody", {})] + [resolve(r) for r in op["responses"].values()]
            for b in bodies:
                for media in b.get("content", {}).values():
                    if "example" in media:
                        schema = {**resolve(media["schema"]), "components": spec["components"]}
                        Draft202012Validator(schema).validate(media["example"])
                        checked += 1
    assert checked >= 15
