import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recommendation_service.data.events import Event, MalformedCounter, parse_event
from recommendation_service.errors import MalformedEvent


def test_text_event_gets_weight_one_and_kafka_timestamp():
    assert parse_event(b"alice:book-1", 12.5) == Event("alice", "book-1", 1.0, 12.5)


def test_ids_are_arbitrary_strings():
    assert parse_event("ünïcode user:item/42 x".encode(), 0).user == "ünïcode user"


def test_json_event_with_defaults_and_integer_ids():
    assert parse_event(b'{"user": 7, "item": 9}', 3.0) == Event("7", "9", 1.0, 3.0)


def test_json_event_with_weight_and_timestamps():
    e = parse_event(json.dumps({"user": "u", "item": "i", "weight": 2.5, "ts": 100}).encode(), 1)
    assert (e.weight, e.ts) == (2.5, 100.0)
    iso = parse_event(b'{"user": "u", "item": "i", "ts": "1970-01-01T00:01:00+00:00"}', 1)
    assert iso.ts == 60.0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"no-colon", "bad_format"),
        (b"a:b:c", "bad_format"),
        (b":item", "empty_user"),
        (b"user:", "empty_item"),
        (b"  :x", "empty_user"),
        (b"\xff\xfe:x", "bad_utf8"),
        (b"u\x00:i", "bad_user"),
        (b"{not json", "bad_json"),
        (b"[1, 2]", "bad_format"),
        (b'{"user": "u"}', "bad_item"),
        (b'{"user": true, "item": "i"}', "bad_user"),
        (b'{"user": 1.5, "item": "i"}', "bad_user"),
        (b'{"user": "u", "item": "i", "weight": "3"}', "bad_weight"),
        (b'{"user": "u", "item": "i", "weight": NaN}', "bad_weight"),
        (b'{"user": "u", "item": "i", "weight": Infinity}', "bad_weight"),
        (b'{"user": "u", "item": "i", "weight": -1}', "bad_weight"),
        (b'{"user": "u", "item": "i", "weight": 1e300}', "bad_weight"),
        (b'{"user": "u", "item": "i", "ts": "yesterday"}', "bad_ts"),
        (b'{"user": "u", "item": "i", "ts": -5}', "bad_ts"),
        (b'{"user": "u", "item": "i", "ts": [1]}', "bad_ts"),
        (b"[" * 100_000, "too_large"),
    ],
)
def test_malformed_values_are_rejected_with_a_reason(value, reason):
    with pytest.raises(MalformedEvent) as info:
        parse_event(value, 0.0)
    assert info.value.reason == reason


def test_deeply_nested_json_is_malformed_not_a_crash():
    with pytest.raises(MalformedEvent):
        parse_event(b"{" + b'"a":[' * 5000 + b"]" * 5000 + b"}", 0.0, max_bytes=1 << 20)


def test_id_length_limit():
    parse_event(b"u:" + b"i" * 256, 0)
    with pytest.raises(MalformedEvent, match="long_item"):
        parse_event(b"u:" + b"i" * 257, 0)


@given(st.binary(max_size=300))
def test_parser_never_raises_anything_but_malformed(value):
    try:
        event = parse_event(value, 1.0)
    except MalformedEvent:
        return
    assert event.user and event.item
    assert math.isfinite(event.weight) and event.weight > 0


@given(
    st.text(min_size=1, max_size=40).filter(lambda s: ":" not in s and s.strip()),
    st.text(min_size=1, max_size=40).filter(lambda s: ":" not in s and s.strip()),
)
def test_valid_text_events_round_trip(user, item):
    if any(ord(c) < 32 or ord(c) == 127 for c in user + item):
        return
    if f"{user}:{item}".strip().startswith("{"):
        return  # a value starting with "{" is JSON by definition (documented)
    raw = f"{user}:{item}".encode()
    event = parse_event(raw, 0.0)
    assert f"{event.user}:{event.item}" == raw.decode().strip()


def test_counter_counts_every_event_but_rate_limits_logs(caplog):
    now = [0.0]
    counter = MalformedCounter(log_interval=10, clock=lambda: now[0])
    for _ in range(100):
        counter.record(MalformedEvent("bad_json"), "t[0]@1")
    now[0] = 11
    counter.record(MalformedEvent("empty"), "t[0]@2")
    assert counter.total == 101
    assert counter.by_reason == {"bad_json": 100, "empty": 1}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "99 similar suppressed" in lines[1]


@pytest.mark.parametrize(
    ("event", "weight"),
    [
        ({"user": "u", "item": "i"}, 1.0),
        ({"user": "u", "item": "i", "action": "view"}, 1.0),
        ({"user": "u", "item": "i", "action": "click"}, 2.0),
        ({"user": "u", "item": "i", "action": "add_to_cart"}, 4.0),
        ({"user": "u", "item": "i", "action": "purchase"}, 8.0),
        ({"user": "u", "item": "i", "action": "purchase", "weight": 2}, 16.0),
        ({"user": "u", "item": "i", "action": "dislike"}, -4.0),
        ({"user": "u", "item": "i", "action": "rating", "value": 5}, 2.5),
        ({"user": "u", "item": "i", "action": "rating", "value": 1}, -1.5),
    ],
)
def test_actions_map_through_the_weight_table(event, weight):
    assert parse_event(json.dumps(event).encode(), 0).weight == weight


def test_custom_action_table():
    table = {"like": 3.0, "skip": -1.0}
    assert (
        parse_event(b'{"user": "u", "item": "i", "action": "like"}', 0, actions=table).weight == 3
    )
    with pytest.raises(MalformedEvent, match="unknown_action"):
        parse_event(b'{"user": "u", "item": "i", "action": "purchase"}', 0, actions=table)


@pytest.mark.parametrize(
    "event",
    [
        {"user": "u", "item": "i", "action": "teleport"},
        {"user": "u", "item": "i", "action": 3},
        {"user": "u", "item": "i", "action": "rating"},
        {"user": "u", "item": "i", "action": "rating", "value": "5"},
        {"user": "u", "item": "i", "action": "rating", "value": 11},
        {"user": "u", "item": "i", "action": "rating", "value": 2.5},
        {"user": "u", "item": "i", "action": "dislike", "weight": -1},
    ],
)
def test_bad_actions_are_malformed(event):
    with pytest.raises(MalformedEvent):
        parse_event(json.dumps(event).encode(), 0)
