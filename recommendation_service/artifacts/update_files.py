"""Update files: what the builder writes between refits and servers apply on top of a version.

One update holds fresh vectors of the users who had events (with their seen items, their most
recent items in order, and newest event time) and scoring rows of items the version does not
know yet, with each user's touched new items. Plain arrays in an ``.npz`` (no pickle); see
:mod:`~recommendation_service.artifacts.store`
for how they are written and numbered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..common.id_table import encode_strings


@dataclass(frozen=True)
class UserVector:
    """One user's fresh state in an update: what the fold-in computed, as servers apply it."""

    vector: np.ndarray  # float32, length 2 * factors
    seen: np.ndarray  # int32 columns of the items the user touched (known to the model)
    last_ts: float
    #: int32 columns of the user's most recent distinct items, newest first (the sequence
    #: term scores what follows them).
    recent: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    #: Erasure records the builder had applied when it made this vector: servers hide it if
    #: the user was erased at or after that position (data/erasures.py).
    erasures: int = 0


def update_arrays(
    users: list[str],
    vectors: list[UserVector],
    seen_new: list[list[str]] | None = None,
    new_items: list[str] = (),
    new_rows: list[np.ndarray] = (),
) -> dict[str, np.ndarray]:
    """Arrays of one update file: fresh vectors of some users, and rows of new items.

    ``seen_new`` lists, per user, the items they touched that the version does not know (never
    recommended back to them); ``new_items`` and ``new_rows`` are the latest scoring rows of
    such items (see :meth:`FoldIn.item_row`).
    """
    width = len(vectors[0].vector) if vectors else (len(new_rows[0]) if len(new_rows) else 0)
    blob, offsets = encode_strings(users)
    indptr = np.zeros(len(vectors) + 1, dtype=np.int64)
    np.cumsum([len(v.seen) for v in vectors], out=indptr[1:])
    seen_new = seen_new if seen_new is not None else [[] for _ in users]
    new_indptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in seen_new], out=new_indptr[1:])
    recent_indptr = np.zeros(len(vectors) + 1, dtype=np.int64)
    np.cumsum([len(v.recent) for v in vectors], out=recent_indptr[1:])
    seen_blob, seen_offsets = encode_strings([i for s in seen_new for i in s])
    item_blob, item_offsets = encode_strings(list(new_items))
    return {
        "user_ids.blob": blob,
        "user_ids.offsets": offsets,
        "vectors": np.array([v.vector for v in vectors], dtype=np.float32).reshape(
            len(vectors), width
        ),
        "seen_indptr": indptr,
        "seen_indices": np.concatenate([v.seen for v in vectors] or [np.zeros(0)]).astype(np.int32),
        "last_ts": np.array([v.last_ts for v in vectors], dtype=np.float64),
        "erasures": np.array([v.erasures for v in vectors], dtype=np.int64),
        "recent_indptr": recent_indptr,
        "recent_indices": np.concatenate([v.recent for v in vectors] or [np.zeros(0)]).astype(
            np.int32
        ),
        "seen_new_indptr": new_indptr,
        "seen_new_ids.blob": seen_blob,
        "seen_new_ids.offsets": seen_offsets,
        "new_item_ids.blob": item_blob,
        "new_item_ids.offsets": item_offsets,
        "new_item_rows": np.array(list(new_rows), dtype=np.float32).reshape(len(new_rows), width),
    }


def check_update(arrays: dict[str, np.ndarray]) -> None:
    """Raise ValueError or KeyError unless an update file's arrays fit together."""
    n = len(arrays["vectors"])
    if len(arrays["user_ids.offsets"]) != n + 1 or len(arrays["seen_indptr"]) != n + 1:
        raise ValueError("array lengths disagree")
    if len(arrays["last_ts"]) != n or arrays["seen_indptr"][-1] != len(arrays["seen_indices"]):
        raise ValueError("array lengths disagree")
    # New-item arrays (absent from updates of earlier releases).
    if "new_item_rows" in arrays and (
        len(arrays["seen_new_indptr"]) != n + 1
        or arrays["seen_new_indptr"][-1] != len(arrays["seen_new_ids.offsets"]) - 1
        or len(arrays["new_item_ids.offsets"]) != len(arrays["new_item_rows"]) + 1
    ):
        raise ValueError("new-item array lengths disagree")
    # Recent items (absent from updates of earlier releases).
    if "recent_indptr" in arrays and (
        len(arrays["recent_indptr"]) != n + 1
        or arrays["recent_indptr"][-1] != len(arrays["recent_indices"])
    ):
        raise ValueError("recent-item array lengths disagree")
    if "erasures" in arrays and len(arrays["erasures"]) != n:
        raise ValueError("erasure positions do not match the users")
