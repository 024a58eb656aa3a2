"""Tuned refits: choose ALS and real-time settings on the newest events of the window.

The right model capacity depends on the stream: 64 factors suit a long, rich window and overfit
a small one with a few strong tastes. So, at a refit, the newest events of the window are held
out; candidate settings are fitted on the rest and scored on them the way the service would
answer between refits -- each held-out event predicted from that user's events before it,
folded in with the served fold-in, their seen items excluded, its item checked against the
top 10 (the measure ``recsvc evaluate`` and live quality use).

The search is short and greedy: factors first (the incumbent, half and a quarter of it), then
regularization, then alpha, at most ``max_fits`` fits; then the real-time settings (recency
boost, half-life, similarity weight) and the sequence term's weight and depth, which need no
refit to try (the trials' sequential rules come from the training part alone). A candidate
replaces the best so far only if it is better by more than two standard errors of the paired
difference, so noise on a small hold-out never moves the settings, and settings the user pinned
on the command line are never searched. A tuning after the first starts from the settings being
served (the last one's winner), so the same rule keeps them against noise from one tuning to
the next; its candidates remain the steps around the configured values. The model published is
then fitted on the whole window with the winner's settings.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..data.window import WindowSnapshot
from ..errors import ModelFitError
from ..vectors.sequences import SequenceWeights
from .fold_in import FoldIn, RealtimeParams
from .holdout import HoldOut
from .params import ALSParams
from .successors import SequenceParams
from .trained_model import TrainedModel

logger = logging.getLogger(__name__)

#: Settings the search may change; a pinned one keeps the value it was given.
ALS_KNOBS = ("factors", "regularization", "alpha")
REALTIME_KNOBS = ("recent_boost", "recent_half_life", "similarity_weight")
SEQUENCE_KNOBS = ("sequence_weight", "sequence_depth")
#: Most (user, item) scores one candidate computes: 80 MB of float32.
_MAX_CELLS = 20_000_000


@dataclass(frozen=True)
class TuneParams:
    """When and how refits are tuned.

    Parameters
    ----------
    enabled
        Off keeps the configured settings at every refit.
    every
        Tune at every ``every``-th refit; refits in between reuse the last winner.
    backoff
        While tunings keep choosing the same settings the gap between them doubles, up to
        ``backoff`` times ``every`` (1: always ``every``; see tuning_schedule.py).
    holdout
        Share of the window's newest events held out to score candidates.
    max_events
        Held-out events scored per candidate (a seeded sample beyond that; fewer on catalogs
        so large that events x items would exceed 20 million scores, but at least 100).
    max_fits
        Most candidate fits per tuning.
    pinned
        Names of settings (``factors``, ``alpha``, ``recent_boost``, ...) never searched.
    k
        Length of the lists scored.
    """

    enabled: bool = True
    every: int = 5
    backoff: int = 4
    holdout: float = 0.1
    max_events: int = 1000
    max_fits: int = 8
    pinned: frozenset[str] = frozenset()
    k: int = 10

    def __post_init__(self) -> None:
        if self.every < 1 or not 0 < self.holdout < 0.5 or self.max_events < 10:
            raise ValueError("tuning needs every >= 1, 0 < holdout < 0.5 and max-events >= 10")
        if self.backoff < 1:
            raise ValueError("tune-backoff must be >= 1 (1: tune at every --tune-every-th refit)")
        if not 1 <= self.max_fits <= 8:
            raise ValueError("tuning fits at most 8 candidates (max-fits 1..8)")
        unknown = set(self.pinned) - set(ALS_KNOBS) - set(REALTIME_KNOBS) - set(SEQUENCE_KNOBS)
        if unknown:
            raise ValueError(f"unknown pinned settings: {sorted(unknown)}")
        object.__setattr__(self, "pinned", frozenset(self.pinned))


@dataclass
class TuneResult:
    """The winner, and what was tried on the way."""

    als: ALSParams
    realtime: RealtimeParams
    #: The sequence term's weights (None when versions carry no sequential rules).
    sequence: SequenceWeights | None = None
    trials: list[dict] = field(default_factory=list)
    held_out_events: int = 0
    scored_events: int = 0
    seconds: float = 0.0
    skipped: str | None = None

    def as_dict(self) -> dict:
        """As the manifest and ``/model/info`` show it."""
        return {
            "winner": {
                **{k: getattr(self.als, k) for k in ALS_KNOBS},
                **asdict(self.realtime),
                **_sequence_fields(self.sequence),
            },
            "held_out_events": self.held_out_events,
            "scored_events": self.scored_events,
            "seconds": round(self.seconds, 3),
            "skipped": self.skipped,
            "trials": self.trials,
        }


def _sequence_fields(weights: SequenceWeights | None) -> dict:
    if weights is None:
        return {}
    return {"sequence_weight": weights.weight, "sequence_depth": weights.depth}


def _most_events(params: TuneParams, snap: WindowSnapshot) -> int:
    """Held-out events one candidate scores: each prediction scores every item, so the work
    (time and memory) is bounded on big catalogs."""
    return max(100, min(params.max_events, _MAX_CELLS // max(1, snap.n_items)))


def _better(candidate: np.ndarray, best: np.ndarray, errors: float = 2.0) -> bool:
    """Whether ``candidate`` beats ``best`` by more than ``errors`` standard errors (paired)."""
    diff = candidate - best
    if len(diff) < 2:
        return False
    se = diff.std(ddof=1) / math.sqrt(len(diff))
    return diff.mean() > errors * se and diff.mean() > 0


def _around(values: list, current) -> list:
    """``values`` (steps around a configured value) without ``current``, each once."""
    out = []
    for v in values:
        if v != current and v not in out:
            out.append(v)
    return out


def _steps(value: float, factors: Iterable[float], integer: bool = False) -> list:
    """``value`` times each of ``factors`` (at least 8, rounded, when ``integer``), each
    once, ``value`` itself left out."""
    return _around([max(8, round(value * f)) if integer else value * f for f in factors], value)


def tune(
    snap: WindowSnapshot,
    als: ALSParams,
    realtime: RealtimeParams,
    params: TuneParams,
    fit: Callable[[WindowSnapshot, ALSParams], TrainedModel],
    sequence: SequenceParams | None = None,
    incumbent: TuneResult | None = None,
) -> TuneResult:
    """Search settings for ``snap`` around the configured ``als``, ``realtime`` and
    ``sequence``'s weights; without ``sequence`` there is no sequence term to tune.

    The search starts from ``incumbent``'s winner (the last tuning's, the settings being
    served; None: the configured ones), and a candidate replaces it only by the rule of
    :func:`_better`: a noisy hold-out then keeps what is served instead of swinging between
    two settings from one tuning to the next. Candidates are steps from the configured value
    (and the configured value itself), not from the incumbent, so the settings never drift
    further from the configuration than one search reaches.
    """
    start = time.perf_counter()
    weights = None if sequence is None else sequence.weights
    if incumbent is None:
        result = TuneResult(als, realtime, weights)
    else:
        seq = None if sequence is None else (incumbent.sequence or weights)
        result = TuneResult(incumbent.als, incumbent.realtime, seq)
    if snap.events is None or snap.events.weights is None:
        result.skipped = "the snapshot carries no events"
        return result
    split = HoldOut(snap, params.holdout, _most_events(params, snap), sequence)
    result.held_out_events, result.scored_events = split.held_out, len(split)
    if len(split) < 50:
        result.skipped = f"{len(split)} held-out events to score; at least 50 are needed"
        result.seconds = time.perf_counter() - start
        return result
    pinned = params.pinned
    fits = 0
    best_gains: np.ndarray | None = None
    best_model: TrainedModel | None = None

    def trial(
        candidate: ALSParams,
        rt: RealtimeParams,
        model: TrainedModel,
        seconds: float,
        seq: SequenceWeights | None = None,
    ):
        seq = seq or result.sequence
        fold = FoldIn(snap.item_ids, model.item_factors, candidate, rt)
        gains = split.gains(fold, params.k, seq)
        result.trials.append(
            {
                **{k: getattr(candidate, k) for k in ALS_KNOBS},
                **asdict(rt),
                **_sequence_fields(seq),
                "hit_rate": round(float((gains > 0).mean()), 4),
                "ndcg": round(float(gains.mean()), 4),
                "fit_seconds": round(seconds, 3),
            }
        )
        return gains

    def try_als(candidate: ALSParams) -> None:
        nonlocal fits, best_gains, best_model
        if fits >= params.max_fits:
            return
        fits += 1
        t = time.perf_counter()
        # Candidates are compared at half the sweeps (ALS ranks settle early); the published
        # model gets them all.
        quick = replace(candidate, iterations=max(3, candidate.iterations // 2))
        try:
            model = fit(split.train, quick)
        except ModelFitError as exc:
            # A candidate that diverges (e.g. alpha too high) is out; the search goes on.
            result.trials.append(
                {k: getattr(candidate, k) for k in ALS_KNOBS} | {"error": str(exc)}
            )
            return
        gains = trial(candidate, result.realtime, model, time.perf_counter() - t)
        if best_gains is None or _better(gains, best_gains):
            best_gains, best_model, result.als = gains, model, candidate

    try_als(result.als)
    search = {
        "factors": (lambda v: [v, *_steps(v, (0.5, 0.25), integer=True)]),
        "regularization": (lambda v: [v, *_steps(v, (4.0, 0.25))]),
        "alpha": (lambda v: [v, *_steps(v, (1 / 3, 3.0))]),
    }
    for knob in ALS_KNOBS:
        if knob in pinned:
            continue
        best = result.als
        for value in _around(search[knob](getattr(als, knob)), getattr(best, knob)):
            try_als(replace(best, **{knob: value}))
    if best_model is None:
        result.skipped = "no candidate could be fitted"
        result.seconds = time.perf_counter() - start
        return result
    rt_search = {
        "recent_boost": (lambda v: [v, v / 10, v * 4] if v else [v, 10.0]),
        "recent_half_life": (lambda v: [v, v * 4]),
        "similarity_weight": (lambda v: [v, 0.0, v * 4] if v else [v, 0.05]),
    }
    for knob in REALTIME_KNOBS:
        if knob in pinned:
            continue
        best_rt = result.realtime
        for value in _around(rt_search[knob](getattr(realtime, knob)), getattr(best_rt, knob)):
            candidate = replace(best_rt, **{knob: value})
            gains = trial(result.als, candidate, best_model, 0.0)
            if _better(gains, best_gains):
                best_gains, result.realtime = gains, candidate
    if sequence is not None:
        best_gains = _tune_sequence(result, best_gains, trial, best_model, pinned, sequence)
    result.seconds = time.perf_counter() - start
    logger.info(
        "tuned on %d held-out events in %.2f s (%d fits): factors %d, regularization %g, "
        "alpha %g, recent boost %g, half-life %g, similarity %g, sequence %s",
        len(split),
        result.seconds,
        fits,
        result.als.factors,
        result.als.regularization,
        result.als.alpha,
        result.realtime.recent_boost,
        result.realtime.recent_half_life,
        result.realtime.similarity_weight,
        _sequence_fields(result.sequence) or "off",
    )
    return result


#: The weights the sequence search walks through, a factor 4 apart: from 1 (the best follower
#: counts about as much as a confident ALS prediction) to where the term decides the order
#: alone and ALS only breaks its ties and fills the list.
WEIGHT_LADDER = (1.0, 4.0, 16.0, 64.0, 256.0)


def _tune_sequence(result, best_gains, trial, model, pinned, sequence: SequenceParams):
    """The sequence term's weight, then its depth.

    The weight walks the ladder away from the incumbent, up first (down to 0 when the first
    step up does not win). The first step must beat the incumbent by the two-standard-error
    rule -- so a stream without order keeps the configured weight, 0 by default -- and the
    walk then goes on while each step beats the last by one standard error (how far the term
    should count, once the evidence says it counts at all). Then each other depth is tried,
    the best of those that beat the incumbent by the two-standard-error rule wins, and the
    weight walks on from there.
    """

    def walk(values, moved: bool = False) -> bool:
        nonlocal best_gains
        for value in values:
            candidate = replace(result.sequence, weight=value)
            gains = trial(result.als, result.realtime, model, 0.0, candidate)
            won = _better(gains, best_gains, 1.0 if moved else 2.0)
            if not won:
                break
            best_gains, result.sequence, moved = gains, candidate, True
        return moved

    if "sequence_weight" not in pinned:
        start = result.sequence.weight
        if not walk([w for w in WEIGHT_LADDER if w > start]) and start > 0:
            walk([w for w in (*reversed(WEIGHT_LADDER), 0.0) if w < start])
    if "sequence_depth" not in pinned and result.sequence.weight > 0:
        winner = None
        for depth in (1, 3, 5, 10):
            if depth == result.sequence.depth or depth > sequence.recent:
                continue
            candidate = replace(result.sequence, depth=depth)
            gains = trial(result.als, result.realtime, model, 0.0, candidate)
            if _better(gains, best_gains) and (winner is None or gains.mean() > winner[0].mean()):
                winner = (gains, candidate)
        if winner is not None:
            best_gains, result.sequence = winner
            # A shallower or deeper term may want more or less weight: walk on from here.
            weight = result.sequence.weight
            if "sequence_weight" not in pinned and not walk(
                [w for w in WEIGHT_LADDER if w > weight], moved=True
            ):
                walk([w for w in (*reversed(WEIGHT_LADDER), 0.0) if 0 < w < weight], moved=True)
    return best_gains
