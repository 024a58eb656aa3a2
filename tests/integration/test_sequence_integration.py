"""The sequence term end to end: a real broker, the builder learning what comes next, and a
served version following each new event before the next refit."""

from __future__ import annotations

import uuid

import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.server.model_watcher import ModelWatcher
from recommendation_service.training.successors import SequenceParams
from recommendation_service.training.tuning import TuneParams
from recommendation_service.vectors.sequences import SequenceWeights

from ..streams import series_events
from .test_builder_integration import RunningBuilder, builder_config, consumed, produce, wait_until

pytestmark = pytest.mark.integration


def test_the_builder_learns_what_comes_next_and_servers_follow_each_event(
    broker, topic, tmp_path
):
    events = series_events(n_users=150, per_user=30, noise=0.05, seed=6)
    produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events])
    config = builder_config(
        broker, topic, tmp_path, f"g-{uuid.uuid4().hex}", window=20_000, retrain_every=2000,
        sequence=SequenceParams(weights=SequenceWeights(weight=64.0)),
        tuning=TuneParams(enabled=False),
    )  # fmt: skip
    with RunningBuilder(config) as builder:
        wait_until(consumed(builder, len(events)), what="all events consumed")
        builder.trainer.request()
        wait_until(
            lambda: (builder.trainer.last_manifest or {}).get("window_size") == len(events),
            what="a model over the whole window",
        )
        assert builder.trainer.wait_idle(60)  # no refit left to come: the next change is an update
        manifest = builder.trainer.last_manifest
        assert manifest["sequence"]["rules"] > 0 and manifest["sequence"]["weight"] == 64.0
        watcher = ModelWatcher(ModelStore(tmp_path))
        watcher.refresh()
        version = watcher.model.name
        user = events[0].user
        done = {e.item for e in events if e.user == user}
        series = next(j for j in range(60) if f"s{j}-0" not in done and f"s{j}-1" not in done
                      and f"s{j}-1" in set(watcher.model.item_ids))  # fmt: skip
        produce(broker, topic, [f"{user}:s{series}-0".encode()])

        def first_is_the_next_part() -> bool:
            watcher.refresh()
            return watcher.model.recommend(user, 5).items[:1] == [f"s{series}-1"]

        wait_until(first_is_the_next_part, timeout=30, what="the next part of the series first")
        assert watcher.model.name == version, "no refit happened: this came from an update"
        assert watcher.model.recommend(user, 5).reasons[0] == "follows_recent"
        quality = builder.quality.summary()
    if quality["events"]:
        assert {"service", "ALS fold-in", "sequential rules", "popularity"} <= set(quality)
