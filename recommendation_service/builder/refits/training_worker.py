"""The training thread: refits on the newest window whenever asked, and publishes the result.

Requests coalesce: while a fit runs, any number of new requests collapse into one, and the next
fit snapshots the window as it is *then*. Consuming never waits for training, and no queue of
stale snapshots can build up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from ...artifacts.store import ModelStore
from ...common.threads import lower_thread_priority
from ...data.window import WindowSnapshot
from ...errors import LeaseLost, ModelFitError
from ...training.als import ALSTrainer
from ...training.associations import AssociationParams, associations
from ...training.fold_in import FoldIn, RealtimeParams
from ...training.ranker_fit import RankerChoice, RankerParams
from ...training.ranker_refit import RankStage, fit_rank_stage
from ...training.successors import SequenceParams, Successors, successors
from ...training.trained_model import TrainedModel
from ...training.tuning import TuneParams
from ...training.tuning_schedule import TuningSchedule
from ...vectors.ann import ANNParams
from ...vectors.sequences import SequenceWeights
from .index_choice import IndexChoice
from .write_failures import WriteFailures

logger = logging.getLogger(__name__)

SnapshotSource = Callable[[], tuple[WindowSnapshot, Mapping[str, Mapping[int, int]]]]
PublishedHook = Callable[[dict, FoldIn, Successors | None, RankStage | None], None]


class TrainingWorker:
    """Runs fits and publishes in a daemon thread.

    Parameters
    ----------
    trainer
        Fits ALS on a snapshot.
    store
        Where models are published.
    take_snapshot
        Called on the training thread; returns the window snapshot and the offsets it covers.
    realtime
        Fold-in settings published with each model.
    on_published
        Called on the training thread with the manifest and fold-in state of each new version.
    ann
        When and how to choose the approximate index published with each version.
    assoc
        How baskets are formed and which co-occurrences are kept.
    tuning
        Whether and how often refits search their settings on held-out events.
    ranker
        Whether and how the rank stage's rankers are fitted (None: versions rank by the sum).
    max_backoff
        Upper bound of the wait between retries after a failed publish.
    niceness
        Scheduling niceness of the training thread and the ALS threads it starts (the
        builder passes its ``--train-nice``; 19, the lowest priority, when used alone).
    """

    def __init__(
        self,
        trainer: ALSTrainer,
        store: ModelStore,
        take_snapshot: SnapshotSource,
        realtime: RealtimeParams | None = None,
        on_published: PublishedHook | None = None,
        ann: ANNParams | None = None,
        assoc: AssociationParams | None = None,
        tuning: TuneParams | None = None,
        max_backoff: float = 60.0,
        sequence: SequenceParams | None = None,
        ranker: RankerParams | None = None,
        niceness: int = 19,
    ) -> None:
        self.trainer = trainer
        self.niceness = niceness
        self.store = store
        self.take_snapshot = take_snapshot
        self.realtime = realtime or RealtimeParams()
        self.ann = ann or ANNParams()
        self.index_choice = IndexChoice(self.ann)
        self.assoc = assoc or AssociationParams()
        self.tuning = tuning or TuneParams(enabled=False)
        #: Which refits tune, and the last tuning's outcome the refits between reuse.
        self.tune_schedule = TuningSchedule(self.tuning)
        #: How sequential rules are learnt and weighted (None: versions carry none).
        self.sequence = sequence
        self.ranker = ranker if ranker is not None and ranker.enabled else None
        #: The last fitted rankers, kept by the refits between ranker fits, and the hold-out
        #: fit they were learnt on (the next one starts from it).
        self._rankers: RankerChoice | None = None
        self._holdout_warm = None
        # (offsets, model, fold, index, assoc, tuning, successors, probe, rank stage) of a fit
        # whose publish failed.
        self._unpublished: tuple | None = None
        #: The last published fit: the next refit starts from its factors (warm start).
        self._warm: TrainedModel | None = None
        self.on_published = on_published
        self.trainings = 0
        #: Fits that raised (the window is kept; the next events trigger another try).
        self.fit_failures = 0
        #: Refits that raised something unforeseen, in a row (retried with a backoff).
        self.unexpected_failures = 0
        #: Publishes that failed (disk full, unwritable directory), retried with backoff.
        self.publish_failures = WriteFailures(f"model to {store.root}", maximum=max_backoff)
        self.last_manifest: dict | None = None
        self.training = False
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="als-trainer", daemon=True)

    def start(self) -> TrainingWorker:
        self._thread.start()
        return self

    def request(self) -> None:
        """Ask for a refit on the newest window (cheap; coalesces with pending requests)."""
        self._idle.clear()
        self._wanted.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no fit is pending or running (used by tests and shutdown)."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wanted.set()
        self._thread.join(timeout)
        if hasattr(self.trainer, "stop"):
            self.trainer.stop()  # Spark's JVM

    def _run(self) -> None:
        # Refits, tuning and index builds are bulk work: on a host shared with servers they
        # take only the share of the CPU their niceness buys (alone on a host this changes
        # nothing).
        lower_thread_priority(self.niceness)
        while True:
            self._wanted.wait()
            if self._stop.is_set():
                return
            self._wanted.clear()
            self.training = True
            try:
                ok = self._train_once()
                delay = self.publish_failures.delay()
            except Exception:  # a bug must not end refits for the life of the process
                self.unexpected_failures += 1
                delay = min(60.0, 2.0**self.unexpected_failures)
                logger.exception("refit failed unexpectedly; retrying in %.0f s", delay)
                ok = False
            finally:
                self.training = False
            if ok:
                self.unexpected_failures = 0
            else:
                # Retry later with the newest window; never spin on a full disk.
                self._wanted.set()
                if self._stop.wait(delay):
                    return
            if not self._wanted.is_set():
                self._idle.set()

    def _train_once(self) -> bool:
        snapshot, offsets = self.take_snapshot()
        if snapshot.matrix.nnz == 0:
            return True
        start = time.perf_counter()
        covers = (offsets, snapshot.erasures_applied)
        if self._unpublished is not None and self._unpublished[0] == covers:
            # The last publish failed and no event (or erasure) came since: publish it again.
            _, model, fold, index, assoc, tuning, succ, probe, stage = self._unpublished
        else:
            self._unpublished = None
            try:
                als, realtime, weights, tuning = self._settings(snapshot)
                model = self.trainer.fit(snapshot, als, warm=self._warm)
            except ModelFitError as exc:
                self.fit_failures += 1
                logger.error("training failed, keeping the last model: %s", exc)
                return True  # the same window would fail again; wait for new events
            start = time.perf_counter()
            depth = 10 if self.sequence is None else self.sequence.recent
            fold = FoldIn(
                snapshot.item_ids, model.item_factors, model.params, realtime,
                model.user_factors, recent_depth=depth,
            )  # fmt: skip
            index, probe = self.index_choice.choose(fold, model.user_factors, snapshot)
            assoc = None
            if snapshot.positive_events is not None:
                assoc = associations(snapshot.positive_events, snapshot.n_items, self.assoc)
            succ = None
            if self.sequence is not None and snapshot.events is not None:
                succ = successors(snapshot, self.sequence, weights)
            retuned = tuning is not None and tuning["tuned_at_this_refit"]
            stage = self._rank_stage(snapshot, model, fold, succ, realtime, retuned)
        try:
            manifest = self.store.publish(
                model, fold, offsets, index=index, assoc=assoc, tuning=tuning, successors=succ,
                ann_probe=probe, rank_stage=stage,
            )  # fmt: skip
        except LeaseLost as exc:  # another builder took over: this one is stepping down
            logger.warning("refit not published: %s", exc)
            return True
        except OSError as exc:
            self.publish_failures.failed(exc)
            self._unpublished = (covers, model, fold, index, assoc, tuning, succ, probe, stage)
            return False
        self._unpublished = None
        self.publish_failures.succeeded()
        self.trainings += 1
        self._warm = model  # the next refit starts from these factors
        self.last_manifest = manifest
        if self.on_published is not None:
            self.on_published(manifest, fold, succ, stage)
        logger.info(
            "published model %s: window %d events, %d users, %d items, trained %.2f s, "
            "written %.2f s",
            manifest["name"],
            manifest["window_size"],
            manifest["n_users"],
            manifest["n_items"],
            model.training_seconds,
            time.perf_counter() - start,
        )
        return True

    def _rank_stage(
        self,
        snapshot: WindowSnapshot,
        model: TrainedModel,
        fold: FoldIn,
        succ: Successors | None,
        realtime: RealtimeParams,
        retuned: bool = False,
    ) -> RankStage | None:
        """The version's rank stage: rankers fitted at every ``every``-th refit and at every
        tuned one (new settings change what the features mean), kept between."""
        params = self.ranker
        if params is None or snapshot.events is None or snapshot.events.weights is None:
            return None
        due = params.due(self.trainings, retuned, self._rankers is not None)
        rules, weights = (None, SequenceWeights()) if succ is None else succ.scorer()
        stage = fit_rank_stage(
            snapshot, fold, rules, weights, self.trainer.fit, model.params, realtime,
            self.sequence, params, keep=None if due else self._rankers, warm=self._holdout_warm,
        )  # fmt: skip
        self._rankers = stage.choice
        if stage.holdout_model is not None:
            self._holdout_warm = stage.holdout_model
        return stage

    def _settings(self, snapshot: WindowSnapshot):
        """ALS, real-time and sequence settings for this refit, and the tuning report for the
        manifest."""
        t = self.tuning
        weights = None if self.sequence is None else self.sequence.weights
        if not t.enabled:
            return self.trainer.params, self.realtime, weights, None
        tuned, due = self.tune_schedule.settings_for(
            self.trainings, snapshot, self.trainer.params, self.realtime, self.trainer.fit,
            self.sequence,
        )  # fmt: skip
        report = tuned.as_dict()
        report["tuned_at_this_refit"] = due
        report["schedule"] = self.tune_schedule.as_dict()
        return tuned.als, tuned.realtime, tuned.sequence or weights, report
