from dataclasses import replace

import pytest

from recommendation_service.training.fold_in import RealtimeParams
from recommendation_service.training.params import ALSParams
from recommendation_service.training.tuning import TuneParams, TuneResult
from recommendation_service.training.tuning_schedule import TuningSchedule


def result(factors: int = 64, skipped: str | None = None) -> TuneResult:
    return TuneResult(replace(ALSParams(), factors=factors), RealtimeParams(), skipped=skipped)


def tuned_refits(schedule: TuningSchedule, winners, refits: int) -> list[int]:
    """Refit numbers that tuned over ``refits`` refits, each tuning choosing the next winner."""
    out, winners = [], iter(winners)
    for refit in range(refits):
        if schedule.due(refit):
            out.append(refit)
            schedule.record(refit, next(winners))
    return out


def test_agreeing_tunings_double_the_gap_up_to_the_backoff():
    schedule = TuningSchedule(TuneParams(every=5, backoff=4))
    same = [result() for _ in range(10)]
    # 5, then 10, then 20 (4 x 5), then 20 again
    assert tuned_refits(schedule, same, 80) == [0, 5, 15, 35, 55, 75]
    assert schedule.as_dict() == {"gap": 20, "every": 5, "backoff": 4}


def test_a_changed_choice_goes_back_to_every():
    schedule = TuningSchedule(TuneParams(every=5, backoff=4))
    winners = [result(), result(), result(), result(32), result(32)]
    # 0 and 5 agree (gap 10), 15 agrees (gap 20), 35 changes (gap 5), 40 agrees (gap 10)
    assert tuned_refits(schedule, winners, 45) == [0, 5, 15, 35, 40]
    assert schedule.gap == 10


def test_a_skipped_tuning_is_no_agreement():
    schedule = TuningSchedule(TuneParams(every=3, backoff=8))
    winners = [result(skipped="too few events"), result(skipped="too few events"), result()]
    assert tuned_refits(schedule, winners, 9) == [0, 3, 6]
    assert schedule.gap == 3 and schedule.winner is not None


def test_backoff_one_keeps_the_fixed_gap():
    schedule = TuningSchedule(TuneParams(every=5, backoff=1))
    assert tuned_refits(schedule, [result() for _ in range(5)], 21) == [0, 5, 10, 15, 20]


def test_backoff_below_one_is_refused():
    with pytest.raises(ValueError, match="tune-backoff must be >= 1"):
        TuneParams(backoff=0)
