"""The item catalog: what the ``items`` topic says about each item, and the file servers read.

Messages on the catalog topic are JSON objects keyed (optionally) by item id::

    {"id": "sku-1", "category": "books", "tags": ["new", "sale"], "available": true,
     "price": 12.5, "created_at": "2026-11-01T10:00:00Z", "attributes": {"brand": "acme"}}

``id`` (or ``item``, as the demo producer writes) is required; the rest is optional. A message
replaces what was known about that id (upsert). ``"deleted": true``, or a tombstone (a message
with the id as key and no value), deletes it. Items absent from the catalog are served as
before: available, with no attributes.

The builder keeps the catalog in memory and writes it to ``catalog.npz`` in the model
directory (plain arrays, no pickle; temp file, fsync, rename) whenever it changed; servers
reload it on their poll and filter every answer with it.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path

import numpy as np

from ..common.files import write_atomic
from ..common.id_table import decode_strings, encode_strings
from ..errors import MalformedEvent
from .events import check_id

CATALOG_FILE = "catalog.npz"
#: Attribute names kept per catalog (the first ones seen, sorted); rules and diversity read
#: them. A free-form field must not grow the file without bound.
MAX_ATTRIBUTES = 64


@dataclass(frozen=True)
class CatalogEntry:
    """What the catalog knows about one item."""

    category: str | None = None
    tags: tuple[str, ...] = ()
    available: bool = True
    price: float = math.nan
    created_at: float = math.nan
    attributes: dict = field(default_factory=dict)


def _timestamp(value: object) -> float:
    if isinstance(value, bool):
        raise MalformedEvent("bad_created_at", "created_at must be epoch seconds or ISO 8601")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise MalformedEvent("bad_created_at", "created_at must be epoch seconds or ISO 8601")


def parse_catalog_message(
    key: bytes | None, value: bytes | None, max_bytes: int = 16_384, max_id_length: int = 256
) -> tuple[str, CatalogEntry | None]:
    """``(item id, entry)`` of one catalog message; entry None means delete.

    Raises
    ------
    MalformedEvent
        Saying what the message should have been.
    """
    if value is None:
        if not key:
            raise MalformedEvent("tombstone_without_key", "a delete needs the item id as key")
        return check_id(key.decode("utf-8", "replace"), "item", max_id_length), None
    if len(value) > max_bytes:
        raise MalformedEvent("too_large", f"catalog messages must be at most {max_bytes} bytes")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, ValueError):
        raise MalformedEvent("bad_json", "a catalog message is a JSON object") from None
    if not isinstance(data, dict):
        raise MalformedEvent("bad_json", "a catalog message is a JSON object")
    item = check_id(data.get("id", data.get("item")), "item", max_id_length)
    if data.get("deleted") is True:
        return item, None
    category = data.get("category")
    if category is not None and not isinstance(category, str):
        raise MalformedEvent("bad_category", "category must be a string")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise MalformedEvent("bad_tags", "tags must be a list of strings")
    available = data.get("available", True)
    if not isinstance(available, bool):
        raise MalformedEvent("bad_available", "available must be true or false")
    price = data.get("price")
    if price is not None and (
        isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price)
    ):
        raise MalformedEvent("bad_price", "price must be a finite number")
    attributes = data.get("attributes", {})
    if not isinstance(attributes, dict):
        raise MalformedEvent("bad_attributes", "attributes must be a JSON object")
    created = data.get("created_at")
    return item, CatalogEntry(
        category=category,
        tags=tuple(dict.fromkeys(tags)),
        available=available,
        price=math.nan if price is None else float(price),
        created_at=math.nan if created is None else _timestamp(created),
        attributes=attributes,
    )


def _scalar(value: object) -> tuple[str | None, float]:
    """(text, number) of one attribute value: strings compare as text, numbers as numbers,
    booleans as ``"true"``/``"false"``; lists and objects are not kept."""
    if isinstance(value, bool):
        return ("true" if value else "false"), math.nan
    if isinstance(value, (int, float)) and math.isfinite(value):
        return None, float(value)
    if isinstance(value, str):
        return value, math.nan
    return None, math.nan


def _attribute_arrays(ids: list[str], entries: dict[str, CatalogEntry]) -> dict:
    """Per attribute name: value codes (-1 = none), value texts, numbers (NaN = none)."""
    names = sorted({k for e in entries.values() for k in e.attributes})[:MAX_ATTRIBUTES]
    out = {}
    for a, name in enumerate(names):
        values: dict[str, int] = {}
        codes = np.full(len(ids), -1, dtype=np.int32)
        numbers = np.full(len(ids), math.nan)
        for row, item in enumerate(ids):
            attrs = entries[item].attributes
            if name in attrs:
                text, number = _scalar(attrs[name])
                if text is not None:
                    codes[row] = values.setdefault(text, len(values))
                numbers[row] = number
        blob, offsets = encode_strings(list(values))
        out.update({f"attr{a}.codes": codes, f"attr{a}.numbers": numbers,
                    f"attr{a}.values.blob": blob, f"attr{a}.values.offsets": offsets})  # fmt: skip
    blob, offsets = encode_strings(names)
    return {"attrs.blob": blob, "attrs.offsets": offsets, **out}


def catalog_arrays(entries: dict[str, CatalogEntry], offsets: dict[str, int]) -> bytes:
    """The catalog as one ``.npz`` (no pickle): ids, flags, prices, categories, tags and the
    scalar attributes."""
    ids = list(entries)
    categories = sorted({e.category for e in entries.values() if e.category is not None})
    code = {c: k for k, c in enumerate(categories)}
    tag_names = sorted({t for e in entries.values() for t in e.tags})
    tag_code = {t: k for k, t in enumerate(tag_names)}
    tag_lists = [[tag_code[t] for t in entries[i].tags] for i in ids]
    indptr = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in tag_lists], out=indptr[1:])
    id_blob, id_offsets = encode_strings(ids)
    cat_blob, cat_offsets = encode_strings(categories)
    tag_blob, tag_offsets = encode_strings(tag_names)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        **{
            "ids.blob": id_blob,
            "ids.offsets": id_offsets,
            "available": np.array([entries[i].available for i in ids], dtype=bool),
            "price": np.array([entries[i].price for i in ids], dtype=np.float64),
            "created_at": np.array([entries[i].created_at for i in ids], dtype=np.float64),
            "category": np.array([code.get(entries[i].category, -1) for i in ids], dtype=np.int32),
            "categories.blob": cat_blob,
            "categories.offsets": cat_offsets,
            "tags_indptr": indptr,
            "tags_indices": np.array([t for ts in tag_lists for t in ts], dtype=np.int32),
            "tags.blob": tag_blob,
            "tags.offsets": tag_offsets,
            "offsets": np.array(json.dumps(offsets).encode(), dtype=np.bytes_),
            **_attribute_arrays(ids, entries),
        },
    )
    return buffer.getvalue()


def write_catalog(root: Path, entries: dict[str, CatalogEntry], offsets: dict[str, int]) -> None:
    """Replace ``root/catalog.npz`` atomically."""
    write_atomic(Path(root) / CATALOG_FILE, catalog_arrays(entries, offsets))


@dataclass(frozen=True)
class Attribute:
    """One scalar attribute over the catalog's rows."""

    codes: np.ndarray  # index into ``values`` per row, -1 = no text value
    values: list[str]
    numbers: np.ndarray  # numeric value per row, NaN = none

    @cached_property
    def code(self) -> dict[str, int]:
        """Value -> code."""
        return {v: k for k, v in enumerate(self.values)}


@dataclass(frozen=True)
class CatalogSnapshot:
    """The catalog as a server holds it: per-row arrays, and each id's row."""

    row: dict[str, int]
    available: np.ndarray
    price: np.ndarray
    created_at: np.ndarray
    category: np.ndarray  # code per row, -1 = none
    categories: list[str]
    tags_indptr: np.ndarray
    tags_indices: np.ndarray
    tags: list[str]
    attributes: dict[str, Attribute] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> CatalogSnapshot:
        """Load a catalog file.

        Raises
        ------
        ValueError
            If the file is damaged or its arrays disagree.
        OSError
            If it cannot be read.
        """
        try:
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
                a = {k: data[k] for k in data.files}
            return cls._from_arrays(a)
        except (KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"damaged catalog file {path}: {exc}") from exc

    @classmethod
    def _from_arrays(cls, a: dict) -> CatalogSnapshot:
        ids = decode_strings(a["ids.blob"], a["ids.offsets"])
        n = len(ids)
        if not (
            len(a["available"]) == len(a["price"]) == len(a["category"]) == n
            and len(a["tags_indptr"]) == n + 1
        ):
            raise ValueError("catalog arrays disagree in length")
        attributes = {}
        if "attrs.blob" in a:  # catalogs written before attributes were kept have none
            for k, name in enumerate(decode_strings(a["attrs.blob"], a["attrs.offsets"])):
                p = f"attr{k}."
                values = decode_strings(a[p + "values.blob"], a[p + "values.offsets"])
                codes = a[p + "codes"]
                if (
                    len(codes) != n
                    or len(a[p + "numbers"]) != n
                    or codes.max(initial=-1) >= len(values)
                ):
                    raise ValueError(f"catalog attribute {name!r} does not match the items")
                attributes[name] = Attribute(codes, values, a[p + "numbers"])
        return cls(
            row={item: k for k, item in enumerate(ids)},
            available=a["available"],
            price=a["price"],
            created_at=a["created_at"],
            category=a["category"],
            categories=decode_strings(a["categories.blob"], a["categories.offsets"]),
            tags_indptr=a["tags_indptr"],
            tags_indices=a["tags_indices"],
            tags=decode_strings(a["tags.blob"], a["tags.offsets"]),
            attributes=attributes,
        )

    @cached_property
    def _tag_owners(self) -> np.ndarray:
        """Catalog row of each entry of ``tags_indices`` (computed once per snapshot)."""
        return np.repeat(np.arange(len(self.available)), np.diff(self.tags_indptr))

    @cached_property
    def category_codes(self) -> dict[str, int]:
        return {c: k for k, c in enumerate(self.categories)}

    def rows_with_tags(self, tags) -> np.ndarray:
        """Per row, whether the item carries any of ``tags``."""
        codes = [self.tags.index(t) for t in tags if t in self.tags]
        has = np.zeros(len(self.available), dtype=bool)
        if codes:
            hit = self.tags_indices == codes[0]
            for code in codes[1:]:
                hit |= self.tags_indices == code
            has[self._tag_owners[hit]] = True
        return has

    def rows_of(self, items) -> np.ndarray:
        """Catalog row of each item id (-1 for items the catalog does not list)."""
        get = self.row.get
        return np.fromiter((get(i, -1) for i in items), dtype=np.int64, count=len(items))
