"""When a refit tunes: every ``every``-th refit, less often while tunings keep agreeing.

A tuning costs several fits (on a 300,000-event window, 40-50 CPU seconds against 8-11 for a
refit that reuses the last settings), and on a stream whose shape holds still each one finds
what the last one found. So the gap between tunings doubles each time a tuning chooses the
settings the previous one chose, up to ``backoff`` times ``every``, and falls back to ``every``
as soon as one chooses anything else (or could not tune): a stream that changes is searched
again at the configured pace. The builder's training worker and ``recsvc evaluate``'s replay
share this one rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..data.window import WindowSnapshot
from .fold_in import RealtimeParams
from .params import ALSParams
from .successors import SequenceParams
from .trained_model import TrainedModel
from .tuning import TuneParams, TuneResult, tune


@dataclass
class TuningSchedule:
    """Which refits tune, given what the tunings so far chose.

    Parameters
    ----------
    params
        The tuning settings: ``every`` is the shortest gap in refits, ``backoff`` how many
        times longer it may grow.
    """

    params: TuneParams
    #: Refits from the last tuning to the next one.
    gap: int = field(init=False)
    #: The refit number of the last tuning (None before the first).
    last: int | None = None
    #: The last tuning's outcome: the settings the refits until the next one use, and the
    #: incumbent that one starts from (None before the first).
    result: TuneResult | None = None

    def __post_init__(self) -> None:
        self.gap = self.params.every

    @property
    def winner(self) -> dict | None:
        """What the last tuning chose (None when it was skipped, or before the first)."""
        return _winner(self.result)

    def due(self, refit: int) -> bool:
        """Whether refit number ``refit`` (counted from 0) tunes."""
        return self.last is None or refit - self.last >= self.gap

    def record(self, refit: int, result: TuneResult) -> None:
        """Note the tuning refit number ``refit`` ran, and set the gap to the next one."""
        winner = _winner(result)
        if winner is not None and winner == self.winner:
            self.gap = min(2 * self.gap, self.params.every * self.params.backoff)
        else:
            self.gap = self.params.every
        self.last, self.result = refit, result

    def settings_for(
        self,
        refit: int,
        snap: WindowSnapshot,
        als: ALSParams,
        realtime: RealtimeParams,
        fit: Callable[[WindowSnapshot, ALSParams], TrainedModel],
        sequence: SequenceParams | None,
    ) -> tuple[TuneResult, bool]:
        """The tuning outcome refit number ``refit`` of ``snap`` uses, and whether it tuned:
        when due, a tuning around the configured ``als``, ``realtime`` and ``sequence`` from
        the last one's winner; else the last one's outcome."""
        due = self.due(refit)
        if due:
            outcome = tune(snap, als, realtime, self.params, fit, sequence, incumbent=self.result)
            self.record(refit, outcome)
        return self.result, due

    def as_dict(self) -> dict:
        """For the manifest: the refits until the next tuning, counted from the last one."""
        return {"gap": self.gap, "every": self.params.every, "backoff": self.params.backoff}


def _winner(result: TuneResult | None) -> dict | None:
    return None if result is None or result.skipped else result.as_dict()["winner"]
