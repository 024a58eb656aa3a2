"""Which of a version's item columns a request may receive: the rules turned into a mask.

Rules are decided per catalog row (rules/item_rules.py); a version's columns map to catalog
rows once per catalog. The caches here live as long as the version's pipeline, keyed by the
catalog snapshot: most requests ask for availability alone, which is one mask per catalog.
"""

from __future__ import annotations

import numpy as np

from ..common.id_table import IdTable
from ..data.catalog import CatalogSnapshot
from ..rules.item_rules import NO_RULES, ItemRules, allowed_rows, column_mask, needs_listing


class ColumnMasks:
    """Masks over one version's item columns, with the caches they need.

    Parameters
    ----------
    item_ids
        The version's item ids, in column order.
    """

    def __init__(self, item_ids: IdTable) -> None:
        self.item_ids = item_ids
        self._catalog_rows: tuple | None = None  # (catalog, row of each column)
        self._default: tuple | None = None  # (catalog, availability mask)
        self._values: tuple | None = None  # (codes, catalog, value code of each column)

    def catalog_rows(self, catalog: CatalogSnapshot) -> np.ndarray:
        """Catalog row of each of the version's item columns (-1: unlisted)."""
        cached = self._catalog_rows
        if cached is None or cached[0] is not catalog:
            cached = self._catalog_rows = (catalog, catalog.rows_of(list(self.item_ids)))
        return cached[1]

    def allowed(
        self, rules: ItemRules, catalog: CatalogSnapshot | None, rows_ok=None
    ) -> np.ndarray | None:
        """Which item columns ``rules`` allow with ``catalog`` (None: all of them).

        ``rows_ok`` is :func:`allowed_rows` of ``rules`` when the caller has it already.
        """
        if rules == NO_RULES and catalog is not None:
            # Most requests: availability only. One mask per version and catalog.
            cached = self._default
            if cached is None or cached[0] is not catalog:
                rows = allowed_rows(rules, catalog)
                mask = column_mask(rules, rows, self.catalog_rows(catalog), [])
                cached = self._default = (catalog, mask)
            return cached[1]
        if catalog is None and not rules.exclude and not needs_listing(rules):
            return None  # no catalog to filter by, no id to leave out
        if rows_ok is None:
            rows_ok = allowed_rows(rules, catalog)
        n_items = len(self.item_ids)
        col_rows = self.catalog_rows(catalog) if catalog is not None else np.full(n_items, -1)
        excluded = [c for c in map(self.item_ids.row_of, rules.exclude) if c is not None]
        return column_mask(rules, rows_ok, col_rows, excluded)

    def avoiding(
        self, mask: np.ndarray | None, catalog: CatalogSnapshot | None, avoid: tuple | None
    ) -> np.ndarray | None:
        """``mask`` without the columns whose catalog value is one of ``avoid``'s codes;
        ``avoid`` = (value code per catalog row, codes to leave out)."""
        if avoid is None or catalog is None:
            return mask
        codes, full = avoid
        cached = self._values
        if cached is None or cached[0] is not codes or cached[1] is not catalog:
            col_rows = self.catalog_rows(catalog)
            values = np.where(col_rows >= 0, codes[np.maximum(col_rows, 0)], -1)
            cached = self._values = (codes, catalog, values)  # per attribute and catalog
        keep = np.ones(len(cached[2]), dtype=bool)
        for code in full:
            keep &= cached[2] != code
        return keep if mask is None else mask & keep
