"""The builder's history for the dashboard, and the window's time span."""

from __future__ import annotations

from recommendation_service.builder.observability.history import BuilderHistory
from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow


def manifest(version: int) -> dict:
    return {"version": version, "created_ts": 100.0 + version, "training_seconds": 0.5,
            "n_users": 10, "n_items": 20, "window_size": 30, "tuning": {"winner": {}}}  # fmt: skip


def test_samples_are_taken_every_interval_and_each_refit_once():
    history = BuilderHistory(every=5.0, keep=3, keep_refits=2)
    assert history.due(0.0)
    for k, version in enumerate([1, 1, 2, 3, 3]):
        history.record(5.0 * k, {"events": k}, manifest(version), {"service": {"hit_rate": 0.2}})
        assert not history.due(5.0 * k + 4.9) and history.due(5.0 * k + 5.0)
    data = history.to_dict()
    assert [p["events"] for p in data["points"]] == [2, 3, 4]
    assert [r["version"] for r in data["refits"]] == [2, 3]
    assert data["refits"][0]["live_hit_rate"] == 0.2 and data["refits"][0]["tuned"] is False


def test_the_window_span_follows_the_oldest_event_it_keeps():
    window = SlidingWindow(3)
    assert window.span() is None
    for ts in (10.0, 20.0, 30.0):
        window.add(Event("u", "i", 1.0, ts))
    assert window.span() == (10.0, 30.0)
    window.add(Event("u", "j", 1.0, 40.0))
    assert window.span() == (20.0, 40.0)
