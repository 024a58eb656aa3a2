"""Erasure records, the ledger's rules, and forgetting a user in the window and a version."""

from __future__ import annotations

import numpy as np
import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.artifacts.update_files import UserVector, update_arrays
from recommendation_service.data.erasures import Erasure, ErasureLedger, erasures_topic_for
from recommendation_service.data.events import Event
from recommendation_service.data.window import Decay, SlidingWindow
from recommendation_service.errors import MalformedEvent
from recommendation_service.recommend.served_model import ServedModel
from recommendation_service.training.als import ALSTrainer

from ..conftest import SMALL_ALS, planted_events


def test_records_round_trip_and_name_the_topic():
    erasure = Erasure("u-1", 1733390000.5, {0: 12, 3: 7})
    assert Erasure.decode(*erasure.encode()) == erasure
    assert erasure.covers(0, 11) and not erasure.covers(0, 12) and not erasure.covers(1, 0)
    assert erasures_topic_for("clicks") == "clicks-erasures"
    assert erasures_topic_for("clicks", "gdpr") == "gdpr"


@pytest.mark.parametrize(
    "key, value",
    [
        (b"u", b"not json"),
        (b"u", b'{"user": "v", "erased_at": 1, "before": {}}'),
        (b"u", b'{"user": "u", "erased_at": "now", "before": {}}'),
        (b"u", b'{"user": "u", "erased_at": 1, "before": {"x": 1}}'),
        (b"u", b'{"user": "u", "erased_at": 1, "before": {"0": 1.5}}'),
        (None, b'{"user": "", "erased_at": 1, "before": {}}'),
        (b"\xff", b"{}"),
    ],
)
def test_a_malformed_record_is_refused_with_a_reason(key, value):
    with pytest.raises(MalformedEvent, match="bad_erasure"):
        Erasure.decode(key, value)


def test_the_ledger_hides_state_made_before_the_erasure_only():
    ledger = ErasureLedger()
    ledger.record(4, Erasure("u", 1.0, {0: 100}))
    assert ledger.hides("u", 0) and ledger.hides("u", 4)
    assert not ledger.hides("u", 5)  # made after the builder applied it: a new user
    assert not ledger.hides("v", 0)
    assert ledger.covers("u", 0, 99) and not ledger.covers("u", 0, 100)
    ledger.record(2, Erasure("u", 0.5, {0: 50}))  # an older record read late changes nothing
    assert ledger.hides("u", 4) and ledger.covers("u", 0, 99)
    assert ledger.position == 5 and len(ledger) == 1


def test_forgetting_a_user_keeps_every_other_event_as_it_was():
    events = [Event(f"u{k % 7}", f"i{k % 11}", 1.0 + k % 3, float(k), f"b{k // 4}")
              for k in range(60)]  # fmt: skip
    window = SlidingWindow(40, Decay(half_life_events=10))
    window.add_many(events)
    # The same window, had u3 never been there: other events keep their positions in time.
    before = window.snapshot()
    assert window.forget_user("u3") == sum(e.user == "u3" for e in events[-40:])
    assert window.forget_user("u3") == 0 and window.user_history("u3") is None
    after = window.snapshot()
    assert "u3" not in after.user_ids and after.n_events == len(window)
    kept = [e for e in events[-40:] if e.user != "u3"]
    assert [(e.user, e.item, e.ts) for e in window.events()] == [
        (e.user, e.item, e.ts) for e in kept
    ]
    # Decay by event count and baskets are unchanged for the users who stay.
    for user in ("u0", "u5"):
        old, new = before.user_ids.index(user), after.user_ids.index(user)
        old_items = [before.item_ids[c] for c in before.matrix[old].indices]
        new_items = [after.item_ids[c] for c in after.matrix[new].indices]
        assert dict(zip(old_items, before.matrix[old].data)) == pytest.approx(
            dict(zip(new_items, after.matrix[new].data))
        )
    assert sorted(set(before.positive_events.baskets) - {0}) != []
    # New events go on after the kept ones; the capacity still holds.
    window.add_many(events[:30])
    assert len(window) == 40 and window.events()[-1].ts == 29.0


def _version(tmp_path, erasures_applied: int, ledger: ErasureLedger) -> ServedModel:
    window = SlidingWindow(10_000)
    window.add_many(planted_events(1500))
    window.erasures_applied = erasures_applied
    model = ALSTrainer(SMALL_ALS).fit(window.snapshot())
    assert model.version_content(None)[1]["erasures_applied"] == erasures_applied
    store = ModelStore(tmp_path / "models")
    store.publish(model)
    manifest, arrays = store.read_version()
    return ServedModel(manifest, arrays, erasures=ledger)


def test_a_version_answers_an_erased_user_as_unknown_until_it_is_made_without_them(tmp_path):
    ledger = ErasureLedger()
    version = _version(tmp_path, erasures_applied=3, ledger=ledger)
    user = version.user_ids[0]
    assert version.user_state(user) is not None
    ledger.record(3, Erasure(user, 1.0, {0: 10}))  # erased after the version was made
    assert version.user_state(user) is None
    ledger.record(1, Erasure(version.user_ids[1], 1.0, {0: 10}))  # before: already without
    assert version.user_state(version.user_ids[1]) is not None

    width = version.user_vectors.shape[1]

    def fresh(made_at):
        vector = UserVector(np.ones(width, np.float32), np.array([0], np.int32), 5.0,
                            erasures=made_at)  # fmt: skip
        version.apply_update(None, update_arrays([user], [vector]))

    fresh(3)  # folded in before the builder applied the erasure: hidden too
    assert version.user_state(user) is None
    fresh(4)  # events after the erasure: the user is back, as a new one
    state = version.user_state(user)
    assert state is not None and state.seen.tolist() == [0]
