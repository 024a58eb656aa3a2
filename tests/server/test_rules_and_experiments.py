"""Named rules, promotions, diversity on attributes, new-item exploration and experiment
variants, through the Flask app (request/response logic; the impression path end to end is
in tests/integration/test_experiments_integration.py)."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.config.kafka import KafkaSettings
from recommendation_service.config.server import ServerConfig
from recommendation_service.data.catalog import CatalogEntry, write_catalog
from recommendation_service.experiments.variants import load_rules_file
from recommendation_service.recommend.request import ExploreParams
from recommendation_service.server.app import create_app
from recommendation_service.server.model_watcher import ModelWatcher

from ..conftest import category

USER = "user-00001"
RULES = """
[rules]
cheap = "price < $max"
in_cats = "category in $cats and price <= $max"
on_sale = "'sale' in tags"
acme = "brand == 'acme'"
"""
EXPERIMENT = """
[experiment]
name = "promo"
salt = "s"
[[experiment.variants]]
name = "control"
share = 1
[[experiment.variants]]
name = "promoted"
share = 1
promote = "on_sale:3"
"""


def make_app(model_dir, tmp_path, rules=RULES, explore=None, **extra):
    path = tmp_path / "rules.toml"
    path.write_text(rules)
    config = ServerConfig(
        model_dir=model_dir,
        max_n=50,
        rules_file=load_rules_file(path),
        # Nothing listens here: impressions queue in the producer; the integration test reads
        # them from a real broker.
        ingest=KafkaSettings(bootstrap_servers="127.0.0.1:9", options={"log_level": "0"}),
        explore=explore or ExploreParams(share=0.0),
        **extra,
    )
    watcher = ModelWatcher(ModelStore(model_dir), config.reload_interval)
    watcher.refresh()
    return create_app(config, watcher=watcher)


def client_with_catalog(model_dir, tmp_path, rules):
    app = make_app(model_dir, tmp_path, rules)
    watcher = app.extensions["recsvc_watcher"]
    items = list(watcher.model.item_ids)
    entries = {
        item: CatalogEntry(
            category=category(item),
            price=float(k % 100),
            tags=("sale",) if k % 10 == 0 else (),
            attributes={"brand": ("acme", "zeta", "omni")[k % 3]},
        )
        for k, item in enumerate(items)
    }
    write_catalog(model_dir, entries, {})
    watcher.refresh()
    client = app.test_client()
    client.items, client.entries = items, entries
    return client


@pytest.fixture
def rules_client(model_dir, tmp_path):
    return client_with_catalog(model_dir, tmp_path, RULES)


@pytest.fixture
def experiment_client(model_dir, tmp_path):
    return client_with_catalog(model_dir, tmp_path, RULES + EXPERIMENT)


def get(client, query: str, user: str = USER) -> dict:
    response = client.get(f"/recommend?user={user}&n=10{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_named_rules_with_request_parameters(rules_client):
    entries = rules_client.entries
    body = get(rules_client, "&rule=cheap&max=10")
    assert len(body["items"]) == 10 and all(entries[i].price < 10 for i in body["items"])
    body = get(rules_client, "&rule=in_cats&cats=garden,games&max=50")
    assert len(body["items"]) == 10
    assert all(category(i) in ("garden", "games") and entries[i].price <= 50 for i in body["items"])
    post = rules_client.post(
        "/recommend",
        json={"user_id": USER, "top_k": 5, "rule": ["cheap", "acme"], "params": {"max": 20}},
    ).get_json()
    picks = [r["item_id"] for r in post["recommendations"]]
    assert len(picks) == 5
    assert all(entries[i].price < 20 and entries[i].attributes["brand"] == "acme" for i in picks)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("&rule=nope", "no rule named 'nope'"),
        ("&rule=cheap", "needs 'max'"),
        ("&rule=cheap&max=lots", "$max must be a number"),
        ("&promote=on_sale", "slots"),
        ("&promote=nope:2", "rule name"),
        ("&sequence_weight=lots", "'sequence_weight' must be a finite number"),
        ("&sequence_weight=-1", "'sequence_weight' must be a number from 0 to 1000"),
        ("&sequence_depth=11", "'sequence_depth' must be an integer from 1 to 10"),
        ("&sequence_depth=two", "'sequence_depth' must be an integer"),
    ],
)
def test_bad_rule_requests_get_a_json_400(rules_client, query, says):
    response = rules_client.get(f"/recommend?user={USER}{query}")
    assert response.status_code == 400 and says in response.get_json()["message"]


def test_promote_places_the_best_items_passing_the_rule(rules_client):
    entries = rules_client.entries
    plain = get(rules_client, "&exclude_tags=sale")["items"]  # no sale item on its own
    body = get(rules_client, "&promote=on_sale:2&exclude=" + plain[0])
    promoted = [i for i, r in zip(body["items"], body["reasons"]) if r == "promoted"]
    assert len(body["items"]) == 10 and len(promoted) == 2
    assert all("sale" in entries[i].tags for i in promoted) and plain[0] not in body["items"]
    assert body["scores"] == sorted(body["scores"], reverse=True)
    # The promoted ones are the best-scored sale items: the same as asking for sale items only.
    best_sale = get(rules_client, "&tags=sale")["items"][:2]
    assert set(promoted) == set(best_sale)


def test_diversify_on_a_catalog_attribute(rules_client):
    entries = rules_client.entries
    brand = {i: e.attributes["brand"] for i, e in entries.items()}
    plain = get(rules_client, "")["items"]
    assert max(Counter(brand[i] for i in plain).values()) > 2
    body = get(rules_client, "&diversify=brand&max_per=2")
    assert len(body["items"]) == 10
    # At most two per brand first; items the cap held back only fill the rest.
    counts = Counter()
    over = [(counts.update([brand[i]]) or counts[brand[i]]) > 2 for i in body["items"]]
    head = over.index(True) if True in over else len(over)
    assert head >= 5 and all(over[head:])


def test_experiment_variants_are_stable_and_named_in_every_response(experiment_client):
    rules_client = experiment_client
    users = [f"user-{k:05d}" for k in range(40)]
    seen = {}
    for user in users:
        body = get(rules_client, "", user)
        assert len(body["recommendation_id"]) == 32
        seen[user] = body["variant"]
        if body["variant"] == "promoted":
            assert body["reasons"].count("promoted") == 3
        else:
            assert "promoted" not in body["reasons"]
    assert set(seen.values()) == {"control", "promoted"}
    again = {u: get(rules_client, "", u)["variant"] for u in users}
    assert again == seen
    post = rules_client.post("/recommend", json={"user_id": users[0]}).get_json()
    assert post["variant"] == seen[users[0]] and post["recommendation_id"]
    info = rules_client.get("/experiments").get_json()
    assert info["experiment"]["name"] == "promo" and info["tracking"] is False
    assert [v["name"] for v in info["experiment"]["variants"]] == ["control", "promoted"]
    assert info["click_through"]["promoted"]["verdict"] == "too_small"
    metrics = rules_client.get("/metrics").get_data(as_text=True)
    assert 'recsvc_experiment_impressions_total{experiment="promo"' in metrics


def test_without_an_experiment_responses_name_no_variant_but_still_their_list(rules_client):
    body = get(rules_client, "")
    assert "variant" not in body
    assert len(body["recommendation_id"]) == 32
    assert rules_client.get("/experiments").get_json()["experiment"] is None


def test_new_catalog_items_are_explored_by_a_share_of_users(model_dir, tmp_path):
    app = make_app(model_dir, tmp_path, explore=ExploreParams(share=0.3, half_life=86_400))
    watcher = app.extensions["recsvc_watcher"]
    now = time.time()
    entries = {item: CatalogEntry(category=category(item)) for item in watcher.model.item_ids}
    entries["brand-new"] = CatalogEntry(category="garden", created_at=now - 60)
    entries["old-new"] = CatalogEntry(category="garden", created_at=now - 30 * 86_400)
    write_catalog(model_dir, entries, {})
    watcher.refresh()
    client = app.test_client()
    users = [f"user-{k:05d}" for k in range(60)] + [f"stranger-{k}" for k in range(140)]
    shown = []
    for user in users:
        body = get(client, "", user)
        if "brand-new" in body["items"]:
            shown.append(user)
            assert body["reasons"][body["items"].index("brand-new")] == "new_item"
            assert body["items"].index("brand-new") == 5 and len(body["items"]) == 10
        assert "old-new" not in body["items"]  # past the exploration age
    assert 0.2 * len(users) <= len(shown) <= 0.4 * len(users)
    # The same users every time; filters still apply.
    assert shown == [u for u in users if "brand-new" in get(client, "", u)["items"]]
    assert all("brand-new" not in get(client, "&category=books", u)["items"] for u in shown)


def test_experiment_report_reads_the_servers_answer(experiment_client):
    from click.testing import CliRunner

    from recommendation_service.cli import main
    from recommendation_service.cli.experiment import render

    body = experiment_client.get("/experiments").get_json()
    text = render(body)
    assert "experiment promo" in text and "(control)" in text
    assert "no counts yet: run the builder with --impressions-topic" in text
    body["tracking"] = True
    body["click_through"] = {
        "control": {"lists": 20_000, "clicked_lists": 2_000, "rate": 0.1, "ci95": [0.096, 0.104]},
        "promoted": {"lists": 20_000, "clicked_lists": 2_400, "rate": 0.12, "ci95": [0.115, 0.125],
                     "lift": 0.2, "p_value": 1e-9, "verdict": "differs"},
    }  # fmt: skip
    text = render(body)
    assert "+20.0%" in text and "differs from control" in text and "20,000" in text
    result = CliRunner().invoke(main, ["experiment", "report", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "cannot read http://127.0.0.1:9/experiments" in result.output


def test_diversify_reaches_past_a_one_category_pool(rules_client):
    # A user whose top items are nearly all of one category still gets two per category: the
    # cap asks the model for the best items of the other categories.
    plain = get(rules_client, "")["items"]
    assert len({category(i) for i in plain}) <= 2
    body = rules_client.get(f"/recommend?user={USER}&n=8&diversify=category&max_per=2").get_json()
    counts = Counter(category(i) for i in body["items"])
    assert len(body["items"]) == 8 and set(counts.values()) == {2} and len(counts) == 4
    # Promoted slots keep the diversified order of the rest.
    body = rules_client.get(
        f"/recommend?user={USER}&n=8&diversify=category&max_per=2&promote=on_sale:1"
    ).get_json()
    assert body["reasons"].count("promoted") == 1 and len(body["items"]) == 8
    rest = [i for i, r in zip(body["items"], body["reasons"]) if r != "promoted"]
    assert max(Counter(category(i) for i in rest).values()) <= 2
