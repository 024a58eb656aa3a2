"""Fresh vectors as keyed Kafka records: the round trip, and what a reader refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recommendation_service.artifacts.update_files import UserVector, check_update, update_arrays
from recommendation_service.artifacts.update_records import (
    VERSION_HEADER,
    PendingUpdate,
    record_version,
    update_records,
)


def _arrays(width=4):
    rng = np.random.default_rng(0)
    vectors = [
        UserVector(
            rng.normal(size=width).astype(np.float32),
            np.array([0, 3], np.int32),
            10.0,
            np.array([3, 0], np.int32),
        ),
        UserVector(rng.normal(size=width).astype(np.float32), np.array([], np.int32), 11.5),
    ]
    rows = [rng.normal(size=width).astype(np.float32)]
    return update_arrays(["ann", "bob"], vectors, [["new-1"], []], ["new-1"], rows)


def test_records_rebuild_the_same_update():
    arrays = _arrays()
    records = list(update_records("v00000007", arrays))
    assert [k for k, _ in records] == [b"u:ann", b"u:bob", b"i:new-1"]
    pending = PendingUpdate("v00000007")
    for key, value in records:
        pending.add(key, value)
    back = pending.arrays()
    check_update(back)
    names = ("vectors", "seen_indptr", "seen_indices", "last_ts", "new_item_rows",
             "recent_indptr", "recent_indices")  # fmt: skip
    for name in names:
        np.testing.assert_array_equal(back[name], arrays[name])
    assert back["recent_indices"].tolist() == [3, 0]  # newest first, as the fold-in gave them
    assert len(pending) == 3


def test_records_of_an_earlier_release_have_no_recent_items():
    key, value = next(update_records("v00000003", _arrays()))
    body = json.loads(value)
    del body["recent"]
    pending = PendingUpdate("v00000003")
    pending.add(key, json.dumps(body).encode())
    assert pending.users["ann"].recent.size == 0
    body["recent"] = ["not a number"]
    with pytest.raises(ValueError, match="recent"):
        pending.add(key, json.dumps(body).encode())


def test_a_later_record_of_a_key_replaces_the_earlier():
    pending = PendingUpdate("v00000002")
    first, *_ = update_records("v00000002", _arrays())
    body = json.loads(first[1])
    body["last_ts"] = 99.0
    pending.add(*first)
    pending.add(first[0], json.dumps(body).encode())
    assert pending.users["ann"].last_ts == 99.0 and len(pending) == 1


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        (b"u:ann", b"\xff", "UTF-8 JSON"),
        (b"u:ann", b'{"version": "v00000001"}', "version"),
        (b"x:ann", b'{"version": "v00000002", "row": "AAAAAA=="}', "neither"),
        (b"i:it", b'{"version": "v00000002", "row": "abc"}', "base64"),
        (b"i:it", b'{"version": "v00000002", "row": "AAA="}', "float32"),
        (
            b"u:ann",
            b'{"version": "v00000002", "seen": ["a"], "seen_new": [], "last_ts": 1}',
            "seen",
        ),
        (
            b"u:ann",
            b'{"version": "v00000002", "seen": [], "seen_new": [], "last_ts": "x"}',
            "last_ts",
        ),
        (b"u:", b'{"version": "v00000002"}', "empty key"),
    ],
)
def test_malformed_records_are_refused_with_the_reason(key, value, why):
    with pytest.raises(ValueError, match=why):
        PendingUpdate("v00000002").add(key, value)


def test_records_of_different_widths_do_not_become_one_update():
    pending = PendingUpdate("v00000002")
    for key, value in update_records("v00000002", _arrays(4)):
        pending.add(key, value)
    key, value = next(update_records("v00000002", _arrays(6)))
    pending.add(b"u:carol", value)
    with pytest.raises(ValueError, match="width"):
        pending.arrays()


def test_the_version_header():
    assert record_version([(VERSION_HEADER, b"v00000003"), ("x", b"y")]) == "v00000003"
    assert record_version(None) is None and record_version([("x", b"y")]) is None
