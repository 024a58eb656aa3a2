"""The training thread outlives a refit that fails in an unforeseen way."""

from __future__ import annotations

import time

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.builder.refits.training_worker import TrainingWorker
from recommendation_service.data.window import SlidingWindow
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.tuning import TuneParams

from ..conftest import SMALL_ALS, planted_events


class FailsOnce:
    """A trainer whose first fit raises what no handler expects (a bug, say)."""

    def __init__(self) -> None:
        self.inner, self.calls = ALSTrainer(SMALL_ALS), 0
        self.params = self.inner.params

    def fit(self, snapshot, params=None, warm=None):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("an unforeseen failure")
        return self.inner.fit(snapshot, params, warm)


def test_an_unexpected_refit_failure_is_logged_and_retried(tmp_path, caplog):
    window = SlidingWindow(10_000)
    for event in planted_events(1500):
        window.add(event)
    worker = TrainingWorker(
        FailsOnce(), ModelStore(tmp_path), lambda: (window.snapshot(), {}),
        tuning=TuneParams(enabled=False),
    )  # fmt: skip
    worker.start()
    try:
        worker.request()
        deadline = time.monotonic() + 30
        while worker.last_manifest is None:
            assert time.monotonic() < deadline, "no version after the failed refit"
            time.sleep(0.05)
    finally:
        worker.stop()
    assert worker.trainer.calls == 2 and worker.unexpected_failures == 0
    assert "refit failed unexpectedly" in caplog.text


def test_tunings_back_off_while_they_agree(tmp_path):
    # The same window at every refit: each tuning starts from the last one's winner and
    # keeps it, so the gap doubles (1, 2, 4) up to backoff x every.
    window = SlidingWindow(10_000)
    for event in planted_events(1500):
        window.add(event)
    worker = TrainingWorker(
        ALSTrainer(SMALL_ALS), ModelStore(tmp_path), lambda: (window.snapshot(), {}),
        tuning=TuneParams(every=1, backoff=4, max_fits=2),
    )  # fmt: skip
    tuned, gaps = [], []
    for _ in range(12):
        worker._train_once()
        tuning = worker.last_manifest["tuning"]
        tuned.append(tuning["tuned_at_this_refit"])
        gaps.append(tuning["schedule"]["gap"])
    assert [k for k, t in enumerate(tuned) if t] == [0, 1, 3, 7, 11]
    assert gaps[-1] == 4 and gaps[:2] == [1, 2]
