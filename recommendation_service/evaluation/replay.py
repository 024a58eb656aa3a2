"""Replay evaluation: score each later event before learning it, side by side with baselines.

The first ``1 - test_fraction`` of the events (by time) fill the window and train the first
model. Then every later event is, in order: scored -- top-N for its user with all items ranked
and the user's seen items excluded, counted when the user was seen before -- and then learned,
through the same window, trainer and fold-in code the builder runs. These recommenders answer
each scored event:

* ``service``: the service as configured (refits every N events, per-event fold-in, the
  refit's tuning), its candidates from every channel ordered by the ranker the refit chose
  (evaluation/rank_stage.py); without the rank stage, the sum ranker;
* ``sum ranker``, ``linear ranker``, ``trees ranker``: the same candidates ordered by each
  ranker a version carries (the sum of the score terms; the learned ones);
* ``service without rank stage``: the sum of the terms over every item, as earlier releases
  ranked (ALS and similarity over all items, the sequence term over what follows);
* ``ALS fold-in``: the same without the sequence term (ALS and similarity only);
* ``sequential rules``: the sequence term alone (evaluation/baselines.py);
* ``item kNN``: items whose users overlap most with the user's items' (cosine);
* ``popularity``: the sliding window's most popular items;
* ``refit-only``: only the last refit's factors, as a server without per-event updates has
  (the seed's behaviour): users the last refit did not know get nothing;
* ``refit-only+popular``: the same, but such users get the last refit's popular items.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..data.events import Event
from ..data.window import Decay, SlidingWindow
from ..ranking.channels import CHANNELS, UserContext
from ..training.als import ALSTrainer
from ..training.fold_in import FoldIn, RealtimeParams, recent_columns
from ..training.params import ALSParams
from ..training.ranker_fit import RankerChoice, RankerParams
from ..training.ranker_refit import fit_rank_stage
from ..training.successors import SequenceParams, successors
from ..training.trained_model import TrainedModel
from ..training.tuning import ALS_KNOBS, TuneParams
from ..training.tuning_schedule import TuningSchedule
from ..vectors.sequences import SequenceWeights, sequence_scores
from ..vectors.top_n import top_n
from .baselines import item_knn, knn_scores, top_of
from .rank_stage import ReplayRankStage

METHODS = (
    "service",
    "sum ranker",
    "linear ranker",
    "trees ranker",
    "service without rank stage",
    "ALS fold-in",
    "sequential rules",
    "item kNN",
    "popularity",
    "refit-only",
    "refit-only+popular",
)
#: What a developer could hand-write, and the service's own parts alone.
BASELINES = METHODS[5:]
CHOICE_KEYS = (
    "factors",
    "regularization",
    "alpha",
    "recent_boost",
    "recent_half_life",
    "similarity_weight",
    "sequence_weight",
    "sequence_depth",
)


@dataclass(frozen=True)
class EvalConfig:
    window: int = 100_000
    retrain_every: int = 10_000
    als: ALSParams = field(default_factory=ALSParams)
    realtime: RealtimeParams = field(default_factory=RealtimeParams)
    decay: Decay = field(default_factory=Decay)
    test_fraction: float = 0.1
    max_test_events: int = 0  # 0 = all
    k: int = 10
    tuning: TuneParams = field(default_factory=lambda: TuneParams(enabled=False))
    sequence: SequenceParams | None = field(default_factory=SequenceParams)
    #: The rank stage's rankers (None: no rank stage, the sum over every item).
    ranker: RankerParams | None = field(default_factory=RankerParams)


@dataclass
class MethodScore:
    hits: int = 0
    dcg: float = 0.0

    def add(self, recommended: list, target) -> None:
        for rank, item in enumerate(recommended):
            if item == target:
                self.hits += 1
                self.dcg += 1.0 / math.log2(rank + 2)
                return


@dataclass
class EvalReport:
    scored: int
    test_events: int
    scores: dict[str, MethodScore]
    seconds: float
    refit_seconds: list[float]
    #: Settings each fit used when tuning was on (the first fit, before the scored events,
    #: included): (factors, regularization, alpha, boost, half-life, similarity) -> fits.
    chosen: dict[tuple, int] = field(default_factory=dict)
    #: Scored events whose item each channel brought ("all": any of them).
    channel_hits: dict[str, int] = field(default_factory=dict)
    #: The ranker each refit chose (before the scored events included), and why.
    rankers: list[dict] = field(default_factory=list)

    def channel_recall(self, channel: str) -> float:
        return self.channel_hits.get(channel, 0) / self.scored if self.scored else 0.0

    def hit_rate(self, method: str) -> float:
        return self.scores[method].hits / self.scored if self.scored else 0.0

    def ndcg(self, method: str) -> float:
        return self.scores[method].dcg / self.scored if self.scored else 0.0

    def as_dict(self) -> dict:
        return {
            "scored_events": self.scored,
            "test_events": self.test_events,
            "events_per_second": round(self.test_events / self.seconds, 1) if self.seconds else 0,
            "refits": len(self.refit_seconds),
            "refit_seconds_mean": round(float(np.mean(self.refit_seconds)), 3)
            if self.refit_seconds
            else 0.0,
            "methods": {
                m: {"hit_rate": round(self.hit_rate(m), 5), "ndcg": round(self.ndcg(m), 5)}
                for m in METHODS
            },
            "channel_recall": {c: round(self.channel_recall(c), 5) for c in self.channel_hits},
            "rankers": self.rankers,
            "tuning_choices": [
                {**dict(zip(CHOICE_KEYS, key)), "refits": n} for key, n in self.chosen.items()
            ],
        }


class _Fitted:
    """What one refit gives each recommender."""

    def __init__(
        self,
        model: TrainedModel,
        realtime: RealtimeParams,
        sequence: SequenceParams | None,
        weights: SequenceWeights | None,
    ) -> None:
        snap = model.snapshot
        self.item_ids = snap.item_ids
        self.item_factors = model.item_factors
        self.user_factors = model.user_factors
        self.row = {u: r for r, u in enumerate(snap.user_ids)}
        self.seen = snap.seen
        self.fold = FoldIn(snap.item_ids, model.item_factors, model.params, realtime)
        self.base = self.fold.base_vectors(model.user_factors, snap)
        counts = snap.seen.getnnz(axis=0)
        self.popular = [snap.item_ids[c] for c in np.lexsort((np.arange(len(counts)), -counts))]
        self.knn = item_knn(snap)
        # The sequential rules the version would carry, and the weights it would serve with.
        self.weights = weights if sequence is not None else None
        self.rules = None
        self.depth = 10
        if sequence is not None:
            rules = successors(snap, sequence, weights).rules
            self.rules = (rules.indptr, rules.indices, rules.data)
            self.depth = sequence.recent
        self.stage: ReplayRankStage | None = None

    def seen_cols(self, row: int) -> np.ndarray:
        return self.seen.indices[self.seen.indptr[row] : self.seen.indptr[row + 1]]

    def top(
        self, matrix: np.ndarray, vector: np.ndarray, seen: np.ndarray, k: int, extra=None
    ) -> list[str]:
        scores = matrix @ vector
        if extra is not None:
            cols, values = extra
            scores[cols] += values
        scores[seen] = -np.inf
        return [self.item_ids[c] for c in top_n(scores, k).tolist()]

    def following(self, recent: np.ndarray, weights: SequenceWeights | None):
        """(columns, sequence scores) of what follows ``recent`` (columns, newest first)."""
        if self.rules is None or not len(recent):
            return None
        weights = weights or SequenceWeights()
        cols, scores = sequence_scores(*self.rules, recent, weights.depth, weights.decay)
        return (cols, scores) if len(cols) else None


def evaluate(
    events: list[Event],
    config: EvalConfig,
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    """Replay ``events`` (sorted by time) and score the last ``test_fraction`` of them."""
    split = int(len(events) * (1 - config.test_fraction))
    history, test = events[:split], events[split:]
    if config.max_test_events:
        test = test[: config.max_test_events]
    if not history or not test:
        raise ValueError("need events both before and after the split")
    window = SlidingWindow(config.window, config.decay)
    trainer = ALSTrainer(config.als)
    seen_users = set()
    for e in history:
        window.add(e)
        seen_users.add(e.user)
    refit_seconds: list[float] = []
    chosen: dict[tuple, int] = {}
    warm: list[TrainedModel] = []
    rankers: list[dict] = []
    fitted_choice: list[RankerChoice] = []
    holdout_warm: list = []  # the last hold-out fit of the rank stage, as the builder keeps
    schedule = TuningSchedule(config.tuning)  # which refits tune, as in the builder

    def refit() -> _Fitted:
        # As the builder's training worker: tune (when on and due), then fit the whole window.
        start = time.perf_counter()
        snap = window.snapshot()
        als, realtime = config.als, config.realtime
        retuned = False
        if config.tuning.enabled:
            tuned, retuned = schedule.settings_for(
                len(refit_seconds), snap, config.als, config.realtime, trainer.fit,
                config.sequence,
            )  # fmt: skip
            als, realtime = tuned.als, tuned.realtime
            seq = tuned.sequence
            key = tuple(
                getattr(als if k in ALS_KNOBS else realtime, k) if k in CHOICE_KEYS[:6]
                else (None if seq is None else getattr(seq, k.split("_")[1]))
                for k in CHOICE_KEYS
            )  # fmt: skip
            chosen[key] = chosen.get(key, 0) + 1
        weights = None if config.sequence is None else config.sequence.weights
        if config.tuning.enabled and schedule.result.sequence is not None:
            weights = schedule.result.sequence
        model = trainer.fit(snap, als, warm=warm[0] if warm else None)
        warm[:] = [model]  # the next refit starts from these factors, as the builder's does
        fitted = _Fitted(model, realtime, config.sequence, weights)
        if config.ranker is not None and config.ranker.enabled:
            due = config.ranker.due(len(refit_seconds), retuned, bool(rankers))  # as the builder
            stage = fit_rank_stage(
                snap, fitted.fold, fitted.rules, fitted.weights or SequenceWeights(), trainer.fit,
                als, realtime, config.sequence, config.ranker,
                keep=None if due else fitted_choice[0],
                warm=holdout_warm[0] if holdout_warm else None,
            )  # fmt: skip
            fitted_choice[:] = [stage.choice]
            if stage.holdout_model is not None:
                holdout_warm[:] = [stage.holdout_model]
            fitted.stage = ReplayRankStage(stage)
            rankers.append({"refit": len(refit_seconds), "fitted": due, **stage.choice.as_dict()})
        refit_seconds.append(time.perf_counter() - start)
        return fitted

    fitted = refit()
    touched: set[str] = set()
    scores = {m: MethodScore() for m in METHODS}
    channel_hits = dict.fromkeys((*CHANNELS, "all"), 0)
    scored = since = 0
    start = time.perf_counter()
    k = config.k
    for n, e in enumerate(test):
        if e.user in seen_users:
            scored += 1
            _score_event(e, window, fitted, touched, scores, k, channel_hits)
        window.add(e)
        seen_users.add(e.user)
        touched.add(e.user)
        since += 1
        if since >= config.retrain_every:
            fitted, since = refit(), 0
            touched.clear()
        if progress is not None and n % 500 == 499:
            progress(500)
    if config.ranker is None or not config.ranker.enabled:
        channel_hits = {}
    for r in rankers:
        r.pop("features")
    return EvalReport(
        scored, len(test), scores, time.perf_counter() - start, refit_seconds[1:], chosen,
        channel_hits, rankers,
    )  # fmt: skip


def _score_event(e, window, fitted: _Fitted, touched, scores, k, channel_hits) -> None:
    row = fitted.row.get(e.user)
    history = window.user_history(e.user)
    # One exclusion rule for every method: the items this user has touched so far (window).
    exclude = set(history.items) if history is not None else set()
    exclude_cols = np.fromiter(
        (c for c in map(fitted.fold.item_col.get, exclude) if c is not None), dtype=np.int64
    )
    scores["popularity"].add(window.popular_items(k, exclude), e.item)

    # refit-only: the last fit's user factors; users it did not know get nothing (or popular).
    if row is not None:
        refit_top = fitted.top(fitted.item_factors, fitted.user_factors[row], exclude_cols, k)
        scores["refit-only"].add(refit_top, e.item)
    else:
        refit_top = [i for i in fitted.popular[: k + len(exclude)] if i not in exclude][:k]
    scores["refit-only+popular"].add(refit_top, e.item)

    # Sequential rules and item kNN alone, from the items of the user's window history.
    cols = np.fromiter(
        (fitted.fold.item_col.get(i, -1) for i in (history.items if history else ())), np.int64
    )
    recent = recent_columns(cols, fitted.depth)
    following = fitted.following(recent, fitted.weights)
    rules_top = [] if following is None else top_of(*following, exclude_cols, k).tolist()
    scores["sequential rules"].add([fitted.item_ids[c] for c in rules_top], e.item)
    known = np.unique(cols[cols >= 0])
    knn_top = top_of(*knn_scores(fitted.knn, known), exclude_cols, k).tolist() if len(known) else []
    scores["item kNN"].add([fitted.item_ids[c] for c in knn_top], e.item)

    # service: a fresh vector for users with events since the refit, else the published one;
    # plus what follows the user's recent items, as the served sequence term scores it.
    vector = None
    if e.user in touched and history is not None:
        fresh = fitted.fold.user_vector(history)
        vector = fresh.vector if fresh is not None else None
    if vector is None and row is not None:
        vector = fitted.base[row]
    if vector is not None:
        matrix = fitted.fold.scoring_matrix
        fold_top = fitted.top(matrix, vector, exclude_cols, k)
        extra = None
        if following is not None and fitted.weights is not None and fitted.weights.weight > 0:
            extra = (following[0], fitted.weights.term(following[1]))
        service_top = fold_top if extra is None else fitted.top(matrix, vector, exclude_cols, k,
                                                                extra)  # fmt: skip
    else:
        fold_top = service_top = window.popular_items(k, exclude)
    scores["ALS fold-in"].add(fold_top, e.item)
    scores["service without rank stage"].add(service_top, e.item)
    if fitted.stage is None or vector is None:
        # No rank stage, or a user no version knows: every ranker answers as the sum does.
        for method in ("service", "sum ranker", "linear ranker", "trees ranker"):
            scores[method].add(service_top, e.item)
        return
    user = UserContext(
        vector, np.unique(exclude_cols), recent,
        float(e.ts - history.ts[-1]) if history is not None else 0.0,
    )  # fmt: skip
    lists, brought = fitted.stage.lists(user, k, fitted.fold.item_col.get(e.item))
    for channel, hit in zip(CHANNELS, brought.tolist()):
        channel_hits[channel] += hit
    channel_hits["all"] += bool(brought.any())
    for kind, cols in lists.items():
        scores[f"{kind} ranker"].add([fitted.item_ids[c] for c in cols.tolist()], e.item)
    for kind in ("linear", "trees"):
        if kind not in lists:  # the refit had too few queries to fit it: the sum ranks
            scores[f"{kind} ranker"].add([fitted.item_ids[c] for c in lists["sum"]], e.item)
    chosen = lists[fitted.stage.choice.chosen]
    scores["service"].add([fitted.item_ids[c] for c in chosen.tolist()], e.item)
