"""Applying events in bulk gives exactly what applying them one at a time gives: the window
(ids, slots, counts, histories, snapshot), the offsets, the users and items marked for fresh
vectors, and the dead letters."""

from __future__ import annotations

import json
import random

import pytest
from confluent_kafka import Message

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.builder.dead_letters import DeadLetters
from recommendation_service.builder.event_batches import EventBatches
from recommendation_service.builder.fresh.updates import FreshUpdates
from recommendation_service.builder.observability.live_quality import LiveQuality
from recommendation_service.builder.observability.metrics import BuilderMetrics
from recommendation_service.config.builder import BuilderConfig, LiveQualityParams
from recommendation_service.config.kafka import KafkaSettings
from recommendation_service.data.events import Event, MalformedCounter
from recommendation_service.data.window import SlidingWindow


def _stream(n: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    return [
        Event(f"u{rng.randrange(40)}", f"i{rng.randrange(60)}", rng.choice([1.0, 2.0, -4.0]),
              float(k), rng.choice([None, None, f"b{k // 3}"]))
        for k in range(n)
    ]  # fmt: skip


def _state(window: SlidingWindow) -> dict:
    snap = window.snapshot()
    users = sorted(window.users._slot_of)
    return {
        "events": window.events(),
        "slots": (dict(window.users._slot_of), dict(window.items._slot_of)),
        "free": (list(window.users._free), list(window.items._free)),
        "pairs": dict(window._pair_events),
        "item_users": window._item_users[: window.items.capacity].tolist(),
        "total": window.total_added,
        "next": window._next,
        "matrix": (snap.matrix.toarray().tolist(), snap.user_ids, snap.item_ids),
        "baskets": window._basket.tolist(),
        "seq": window._seq.tolist(),
        "popular": window.popular_items(10),
        "histories": {u: window.user_history(u).items for u in users},
    }


@pytest.mark.parametrize("capacity", [1, 7, 50, 1000])
@pytest.mark.parametrize("chunk", [1, 3, 64, 5000])
def test_a_window_filled_in_bulk_equals_one_filled_event_by_event(capacity, chunk):
    events = _stream(700, seed=capacity * 31 + chunk)
    one, bulk = SlidingWindow(capacity), SlidingWindow(capacity)
    for event in events:
        one.add(event)
    for start in range(0, len(events), chunk):
        bulk.add_many(events[start : start + chunk])
    assert _state(bulk) == _state(one)


def _messages(n: int, seed: int) -> list[Message]:
    rng = random.Random(seed)
    out, offsets = [], {0: 0, 1: 0}
    for k in range(n):
        partition = rng.randrange(2)
        user, item = f"u{rng.randrange(30)}", f"i{rng.randrange(50)}"
        value = rng.choice([
            f"{user}:{item}".encode(),
            json.dumps({"user": user, "item": item, "action": "purchase"}).encode(),
            b"not an event", b"", f"{user}:{item}:extra".encode(), f"{user}:\x00".encode(),
        ])  # fmt: skip
        out.append(Message(topic="t", partition=partition, offset=offsets[partition],
                           value=value, timestamp=(1, 1_700_000_000_000 + k)))  # fmt: skip
        offsets[partition] += 1
    return out


class _Builder:
    """The state one EventBatches works on."""

    def __init__(self, tmp_path) -> None:
        config = BuilderConfig(kafka=KafkaSettings(), model_dir=tmp_path)
        self.window = SlidingWindow(40)
        self.malformed = MalformedCounter()
        metrics = BuilderMetrics()
        self.fresh = FreshUpdates(ModelStore(tmp_path), 1.0, metrics)
        self.positions: dict = {}
        self.errors: list = []
        self.batches = EventBatches(
            config, self.window, LiveQuality(LiveQualityParams(budget=0)), self.fresh,
            DeadLetters(self.malformed, metrics), self.positions, self.errors.append,
        )  # fmt: skip

    def state(self) -> dict:
        return {
            **_state(self.window),
            "positions": dict(self.positions),
            "dirty": (set(self.fresh._dirty), set(self.fresh._dirty_items)),
            "malformed": dict(self.malformed.by_reason),
        }


def test_a_batch_leaves_what_its_messages_one_by_one_leave(tmp_path):
    messages = _messages(500, seed=3)
    one, bulk = _Builder(tmp_path / "one"), _Builder(tmp_path / "bulk")
    applied_one = sum(one.batches.apply([m], None).applied for m in messages)
    applied_bulk = sum(
        bulk.batches.apply(messages[k : k + 97], None).applied for k in range(0, 500, 97)
    )
    assert applied_bulk == applied_one > 0
    assert bulk.state() == one.state()
    assert sum(one.malformed.by_reason.values()) > 0
    assert one.positions == {("t", 0): sum(m.partition() == 0 for m in messages),
                             ("t", 1): sum(m.partition() == 1 for m in messages)}  # fmt: skip


def test_the_newest_message_of_each_partition_is_what_the_batch_reports(tmp_path):
    builder = _Builder(tmp_path)
    messages = _messages(20, seed=5)
    done = builder.batches.apply(messages, None)
    for (_, partition), msg in done.last.items():
        assert msg.offset() == max(m.offset() for m in messages if m.partition() == partition)
    assert builder.positions == {key: msg.offset() + 1 for key, msg in done.last.items()}
    # Sequence numbers count applied events only, as one by one.
    window = builder.window
    assert sorted(window._seq[: len(window)].tolist())[-1] == window.total_added - 1
