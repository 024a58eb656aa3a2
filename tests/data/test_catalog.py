"""The item catalog: parsing the items topic, the published file, and request-time rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from recommendation_service.data.catalog import (
    CATALOG_FILE,
    CatalogSnapshot,
    parse_catalog_message,
    write_catalog,
)
from recommendation_service.errors import MalformedEvent
from recommendation_service.rules.item_rules import ItemRules, allowed_rows, column_mask, id_allowed


def msg(**fields) -> bytes:
    return json.dumps(fields).encode()


def test_a_full_entry_parses():
    item, entry = parse_catalog_message(
        b"sku-1",
        msg(
            id="sku-1",
            category="books",
            tags=["sale", "new", "sale"],
            available=False,
            price=12.5,
            created_at="2026-11-01T10:00:00Z",
            attributes={"brand": "acme"},
        ),
    )
    assert item == "sku-1" and entry.category == "books" and entry.tags == ("sale", "new")
    assert entry.available is False and entry.price == 12.5
    assert entry.created_at == 1793527200.0 and entry.attributes == {"brand": "acme"}


def test_the_demo_format_and_deletes():
    assert parse_catalog_message(None, msg(item="a", category="toys"))[1].category == "toys"
    assert parse_catalog_message(None, msg(id="a", deleted=True)) == ("a", None)
    assert parse_catalog_message(b"a", None) == ("a", None)  # tombstone
    item, entry = parse_catalog_message(None, msg(id=7))
    assert item == "7" and entry.available and math.isnan(entry.price)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (None, None, "tombstone_without_key"),
        (None, b"not json", "bad_json"),
        (None, b"[1, 2]", "bad_json"),
        (None, msg(category="x"), "bad_item"),
        (None, msg(id="a", tags="sale"), "bad_tags"),
        (None, msg(id="a", available="yes"), "bad_available"),
        (None, msg(id="a", price="cheap"), "bad_price"),
        (None, msg(id="a", price=True), "bad_price"),
        (None, msg(id="a", created_at="last week"), "bad_created_at"),
        (None, msg(id="a", attributes=[1]), "bad_attributes"),
        (None, msg(id="a", category=3), "bad_category"),
        (None, b"{" + b" " * 20_000 + b"}", "too_large"),
    ],
)
def test_malformed_messages_say_what_is_wrong(key, value, reason):
    with pytest.raises(MalformedEvent) as err:
        parse_catalog_message(key, value)
    assert err.value.reason == reason


@pytest.fixture
def catalog(tmp_path) -> CatalogSnapshot:
    entries = dict(
        parse_catalog_message(None, msg(**fields))
        for fields in [
            {"id": "b1", "category": "books", "tags": ["sale"], "price": 5},
            {"id": "b2", "category": "books", "tags": ["sale", "new"], "price": 50},
            {"id": "b3", "category": "books", "available": False, "price": 1},
            {"id": "t1", "category": "toys", "tags": ["new"]},
        ]
    )
    write_catalog(tmp_path, entries, {"items[0]": 4})
    return CatalogSnapshot.read(tmp_path / CATALOG_FILE)


def passing(rules: ItemRules, catalog: CatalogSnapshot, items=("b1", "b2", "b3", "t1", "x")):
    rows_ok = allowed_rows(rules, catalog)
    excluded = [k for k, i in enumerate(items) if i in rules.exclude]
    mask = column_mask(rules, rows_ok, catalog.rows_of(list(items)), excluded)
    by_mask = [i for k, i in enumerate(items) if mask is None or mask[k]]
    assert by_mask == [i for i in items if id_allowed(rules, rows_ok, catalog, i)]
    return by_mask


def test_rules_over_the_catalog(catalog):
    # Unavailable items are out by default; an unlisted item ("x") is available.
    assert passing(ItemRules(), catalog) == ["b1", "b2", "t1", "x"]
    assert passing(ItemRules(include_unavailable=True), catalog) is not None
    assert passing(ItemRules(category="books"), catalog) == ["b1", "b2"]
    assert passing(ItemRules(category="garden"), catalog) == []
    assert passing(ItemRules(tags=("sale", "new")), catalog) == ["b2"]
    assert passing(ItemRules(exclude_tags=("new",)), catalog) == ["b1", "x"]
    assert passing(ItemRules(max_price=10), catalog) == ["b1"]
    assert passing(ItemRules(exclude=frozenset({"b1", "x"})), catalog) == ["b2", "t1"]


def test_a_damaged_catalog_file_is_refused(tmp_path):
    (tmp_path / CATALOG_FILE).write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="damaged catalog"):
        CatalogSnapshot.read(tmp_path / CATALOG_FILE)


def test_no_catalog_means_no_restriction():
    assert allowed_rows(ItemRules(), None) is None
    assert column_mask(ItemRules(), None, np.full(3, -1), []) is None
