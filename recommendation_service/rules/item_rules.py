"""Request-time rules over the catalog: which of a model's items a request may receive.

Unknown-item rule: an item the catalog does not list is available and has no attributes, so
it passes ``exclude_tags`` and the availability rule but no ``category``, ``tags`` or
``max_price`` filter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..data.catalog import CatalogSnapshot


@dataclass(frozen=True)
class ItemRules:
    """Filters of one request.

    Parameters
    ----------
    exclude
        Item ids never to return.
    category
        Only items of this category.
    tags
        Only items carrying every one of these tags.
    exclude_tags
        No item carrying any of these tags.
    max_price
        Only items whose price is at most this.
    include_unavailable
        Also items the catalog marks unavailable (off by default).
    named
        Named rules (expressions.py) with the request's parameter values, as
        ``(rule, ((name, value), ...))``; an item must pass every one.
    """

    exclude: frozenset[str] = frozenset()
    category: str | None = None
    tags: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    max_price: float | None = None
    include_unavailable: bool = False
    named: tuple = ()

    def __post_init__(self) -> None:
        if self.max_price is not None and not math.isfinite(self.max_price):
            raise ValueError("max_price must be a finite number")


NO_RULES = ItemRules()


def allowed_rows(rules: ItemRules, catalog: CatalogSnapshot | None) -> np.ndarray | None:
    """Per catalog row, whether it passes the attribute rules (None: all rows pass)."""
    if catalog is None:
        return None
    ok = np.ones(len(catalog.available), dtype=bool)
    if not rules.include_unavailable:
        ok &= catalog.available
    if rules.category is not None:
        code = (
            catalog.categories.index(rules.category) if rules.category in catalog.categories else -2
        )
        ok &= catalog.category == code
    for tag in rules.tags:
        ok &= catalog.rows_with_tags([tag])
    for tag in rules.exclude_tags:
        ok &= ~catalog.rows_with_tags([tag])
    if rules.max_price is not None:
        with np.errstate(invalid="ignore"):
            ok &= catalog.price <= rules.max_price
    for rule, params in rules.named:
        ok &= _rule_rows(rule, params, catalog)
    return ok


#: Rule masks by (catalog, rule, parameter values): requests mostly repeat a few values.
_RULE_ROWS: dict = {}
_RULE_ROWS_MAX = 256


def _rule_rows(rule, params: tuple, catalog: CatalogSnapshot) -> np.ndarray:
    """``rule.rows`` for these parameters, cached per catalog snapshot (rules that read the
    clock, ``age_days``, are evaluated every time)."""
    if rule.reads_clock:
        return rule.rows(catalog, dict(params))
    key = (id(catalog), rule, params)
    hit = _RULE_ROWS.get(key)
    if hit is not None and hit[0] is catalog:
        return hit[1]
    rows = rule.rows(catalog, dict(params))
    rows.flags.writeable = False
    if len(_RULE_ROWS) >= _RULE_ROWS_MAX:
        _RULE_ROWS.clear()  # a new catalog or a burst of new values: start over
    _RULE_ROWS[key] = (catalog, rows)
    return rows


def needs_listing(rules: ItemRules) -> bool:
    """Whether the rules only pass items the catalog lists (attribute filters)."""
    return (
        rules.category is not None
        or bool(rules.tags)
        or rules.max_price is not None
        or bool(rules.named)
    )


def column_mask(
    rules: ItemRules, rows_ok: np.ndarray | None, col_rows: np.ndarray, exclude_cols
) -> np.ndarray | None:
    """Per model column, whether the request may receive it (None: every column may).

    ``rows_ok`` is :func:`allowed_rows`, ``col_rows`` each column's catalog row (-1 when
    unlisted), ``exclude_cols`` the columns of ``rules.exclude``.
    """
    if rows_ok is None and not needs_listing(rules) and not len(exclude_cols):
        return None
    mask = col_rows >= 0 if needs_listing(rules) else np.ones(len(col_rows), dtype=bool)
    if rows_ok is not None:
        listed = col_rows >= 0
        mask[listed] &= rows_ok[col_rows[listed]]
    mask[np.asarray(exclude_cols, dtype=np.int64)] = False
    return None if mask.all() else mask


def id_allowed(
    rules: ItemRules, rows_ok: np.ndarray | None, catalog: CatalogSnapshot | None, item: str
) -> bool:
    """The same rules for one item by id (items outside the model's columns)."""
    if item in rules.exclude:
        return False
    row = -1 if catalog is None else catalog.row.get(item, -1)
    if row < 0:
        return not needs_listing(rules)
    return rows_ok is None or bool(rows_ok[row])
