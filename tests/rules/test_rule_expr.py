"""The rule expression language over catalog items, and the rules file."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommendation_service.data.catalog import CatalogEntry, CatalogSnapshot, write_catalog
from recommendation_service.experiments.variants import load_rules_file
from recommendation_service.rules.expressions import RuleError, compile_rule

NOW = 2_000_000_000.0
DAY = 86_400.0


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> CatalogSnapshot:
    root = tmp_path_factory.mktemp("catalog")
    acme = {"brand": "acme", "size": 3}
    entries = {
        "a": CatalogEntry("books", ("sale",), True, 5.0, NOW - 1 * DAY, acme),
        "b": CatalogEntry("books", (), True, 25.0, NOW - 30 * DAY, {"brand": "zeta", "eco": True}),
        "c": CatalogEntry("toys", ("sale", "new"), False, 15.0, math.nan, {"size": 7}),
        "d": CatalogEntry(None, (), True, math.nan, NOW - 2 * DAY, {}),
    }  # fmt: skip
    write_catalog(root, entries, {})
    return CatalogSnapshot.read(root / "catalog.npz")


def passing(catalog, source, now=NOW, **params) -> set[str]:
    rows = compile_rule("r", source).rows(catalog, params, now)
    ids = {row: item for item, row in catalog.row.items()}
    return {ids[r] for r in np.flatnonzero(rows)}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("price < 20", {"a", "c"}),
        ("price >= 15 and available", {"b"}),
        ("category == 'books' or 'new' in tags", {"a", "b", "c"}),
        ("category in ['toys', 'garden']", {"c"}),
        ("not category == 'books'", {"c", "d"}),
        ("category != 'books'", {"c"}),  # no value: matches no comparison, != included
        ("'sale' in tags and not available", {"c"}),
        ("'sale' not in tags", {"b", "d"}),
        ("brand == 'acme'", {"a"}),
        ("attributes.size > 4", {"c"}),
        ("eco", {"b"}),
        ("age_days <= 3", {"a", "d"}),
        ("id in ['a', 'd']", {"a", "d"}),
        ("(price < 10 or price > 20) and brand != 'none'", {"a", "b"}),
        ("no_such_attribute == 'x'", set()),
    ],
)
def test_expressions(catalog, source, expected):
    assert passing(catalog, source) == expected


def test_parameters_come_from_the_request(catalog):
    source = "price < $max and category in $cats"
    assert compile_rule("r", source).params == {"max", "cats"}
    assert passing(catalog, source, max="20", cats="books,toys") == {"a", "c"}
    assert passing(catalog, source, max=30, cats=["books"]) == {"a", "b"}
    assert passing(catalog, "size == $s", s="3") == {"a"}  # query strings are text
    with pytest.raises(RuleError, match=r"\$max must be a number"):
        passing(catalog, source, max="cheap", cats="books")
    with pytest.raises(RuleError, match="needs"):
        passing(catalog, source, max=3)


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("price <", "ends early"),
        ("price < 3 3", "unexpected"),
        ("(price < 3", r"expected '\)'"),
        ("3 < price", "starts with a field"),
        ("price ~ 3", "unexpected"),
        ("tags == 'x'", "tags"),
        ("[price] in tags", "expected a value"),
    ],
)
def test_syntax_errors_say_what_was_expected(source, says):
    with pytest.raises(RuleError, match=says):
        compile_rule("r", source)


def test_rules_file_with_an_experiment(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        """
[rules]
cheap = "price < $max"
on_sale = "'sale' in tags"

[experiment]
name = "promo"
[[experiment.variants]]
name = "control"
share = 1
[[experiment.variants]]
name = "promoted"
share = 1
promote = "on_sale:2"
diversify = "brand"
"""
    )
    loaded = load_rules_file(path)
    assert set(loaded.rules) == {"cheap", "on_sale"}
    variant = loaded.experiment.variants[1]
    assert (variant.promote, variant.promote_slots, variant.diversify) == ("on_sale", 2, "brand")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[rules]\nr = "price <"', "ends early"),
        ('[rules]\nr = "price < $n"', "API parameter"),
        ("[other]\nx = 1", "expected"),
        ('[rules]\nr = "price < 1"\n[experiment]\nname = "e"', "two"),
        (
            '[rules]\nr = "price < 1"\n[experiment]\nname = "e"\n'
            '[[experiment.variants]]\nname = "a"\nshare = 1\n'
            '[[experiment.variants]]\nname = "b"\nshare = 1\npromote = "nope:2"',
            "rule name",
        ),
        (
            '[experiment]\nname = "e"\n[[experiment.variants]]\nname = "a"\nshare = 0\n'
            '[[experiment.variants]]\nname = "b"\nshare = 1',
            "share",
        ),
        ("not toml [", "rules file"),
    ],
)
def test_a_bad_rules_file_is_refused_with_the_reason(tmp_path, text, says):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RuleError, match=says):
        load_rules_file(path)
