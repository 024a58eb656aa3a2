"""Request-time rules on GET /recommend, over the catalog the builder publishes."""

from __future__ import annotations

from collections import Counter

import pytest

from recommendation_service.data.catalog import CatalogEntry, write_catalog

from ..conftest import category

USER = "user-00001"


@pytest.fixture
def with_catalog(app, model_dir):
    """Publish a catalog (as the builder does) for the served items, and let the app load it."""
    watcher = app.extensions["recsvc_watcher"]
    items = list(watcher.model.item_ids)

    def publish(**overrides):
        entries = {
            item: overrides.get(
                item, CatalogEntry(category=category(item), price=float(k % 100), tags=("all",))
            )
            for k, item in enumerate(items)
        }
        write_catalog(model_dir, entries, {"items[0]": len(entries)})
        watcher.refresh()
        return items

    return publish


def top(client, query: str) -> dict:
    response = client.get(f"/recommend?user={USER}&n=10{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_category_filter_still_fills_the_list(client, with_catalog):
    with_catalog()
    body = top(client, "&category=garden")
    assert len(body["items"]) == 10 and {category(i) for i in body["items"]} == {"garden"}


def test_unavailable_items_leave_the_answer_and_can_be_asked_for(client, with_catalog):
    with_catalog()
    first = top(client, "")["items"]
    with_catalog(**{first[0]: CatalogEntry(category=category(first[0]), available=False)})
    assert first[0] not in top(client, "")["items"]
    assert first[0] in top(client, "&include_unavailable=true")["items"]


def test_exclude_tags_and_price(client, with_catalog):
    items = with_catalog()
    first = top(client, "")["items"]
    assert not set(first[:3]) & set(top(client, f"&exclude={','.join(first[:3])}")["items"])
    cheap = top(client, "&max_price=4")["items"]
    assert cheap and all(items.index(i) % 100 <= 4 for i in cheap)
    assert top(client, "&tags=all")["items"] == first
    assert top(client, "&exclude_tags=all")["items"] == []


def test_fewer_pass_fewer_come_back(client, with_catalog):
    items = with_catalog()
    rare = [i for i in items if category(i) == "games"][:3]
    assert len(rare) == 3
    with_catalog(**{i: CatalogEntry(category="rare") for i in rare})
    body = top(client, "&category=rare")
    assert set(body["items"]) <= set(rare) and len(body["items"]) <= 3


def test_unknown_users_get_popular_items_that_pass(client, with_catalog):
    with_catalog()
    response = client.get("/recommend?user=someone-new&n=5&category=books")
    body = response.get_json()
    assert body["source"] == "popular" and len(body["items"]) == 5
    assert {category(i) for i in body["items"]} == {"books"}


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("&max_price=cheap", "max_price"),
        ("&max_price=nan", "max_price"),
        ("&include_unavailable=maybe", "include_unavailable"),
        ("&exclude=a%0Ab", "exclude"),
    ],
)
def test_bad_rules_get_a_json_400(client, query, says):
    response = client.get(f"/recommend?user={USER}{query}")
    assert response.status_code == 400 and says in response.get_json()["message"]


def test_without_a_catalog_everything_is_available(client):
    assert len(top(client, "")["items"]) == 10
    # Attribute filters need a catalog: nothing is listed, nothing passes.
    assert top(client, "&category=books")["items"] == []


def test_post_recommend_and_similar_take_the_same_rules(client, with_catalog):
    with_catalog()
    body = client.post(
        "/recommend", json={"user_id": USER, "top_k": 5, "category": "music", "max_price": 50}
    ).get_json()
    picks = [r["item_id"] for r in body["recommendations"]]
    assert len(picks) == 5 and {category(i) for i in picks} == {"music"}
    similar = client.get("/similar?item=books-0001&n=5&category=games").get_json()["similar"]
    assert len(similar) == 5 and {category(s["item_id"]) for s in similar} == {"games"}
    bad = client.post("/recommend", json={"user_id": USER, "max_price": "cheap"})
    assert bad.status_code == 400 and "max_price" in bad.get_json()["message"]
    bad = client.post("/recommend", json={"user_id": USER, "tags": "sale"})
    assert bad.status_code == 400 and "tags" in bad.get_json()["message"]


def test_every_item_says_why_it_is_there(client, with_catalog):
    with_catalog()
    body = top(client, "")
    assert len(body["reasons"]) == len(body["items"]) == 10
    assert set(body["reasons"]) <= {"model", "similar_to_recent", "new_item"}
    body = client.get("/recommend?user=someone-new&n=3").get_json()
    assert body["reasons"] == ["popular"] * 3


def test_diversify_caps_each_category(client, with_catalog):
    with_catalog()
    plain = top(client, "")["items"]
    assert max(Counter(map(category, plain)).values()) > 2  # a user with one strong taste
    body = top(client, "&diversify=category&max_per=2")
    assert len(body["items"]) == len(body["reasons"]) == 10
    # Items within the cap come first; items the cap held back only fill the rest.
    counts = Counter()
    over = [(counts.update([category(i)]) or counts[category(i)]) > 2 for i in body["items"]]
    head = over.index(True) if True in over else len(over)
    assert head >= 6 and all(over[head:])


@pytest.mark.parametrize(
    ("query", "says"),
    [("&diversify=a%20b", "diversify"), ("&diversify=category&max_per=0", "max_per"),
     ("&max_per=2", "max_per")],
)  # fmt: skip
def test_bad_diversity_parameters_get_a_json_400(client, query, says):
    response = client.get(f"/recommend?user={USER}{query}")
    assert response.status_code == 400 and says in response.get_json()["message"]
