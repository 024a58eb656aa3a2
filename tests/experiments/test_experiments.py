"""Experiment assignment and the statistics of the experiment report."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from recommendation_service.experiments.stats import analyse, lists_needed, two_proportion_p, wilson
from recommendation_service.experiments.variants import Experiment, Variant

EXPERIMENT = Experiment("e", "salt-1", (Variant("a", 1.0), Variant("b", 3.0)))


def test_assignment_follows_the_split_and_is_stable_across_processes():
    users = [f"user-{k}" for k in range(20_000)]
    counts = Counter(EXPERIMENT.assign(u).name for u in users)
    assert abs(counts["b"] / len(users) - 0.75) < 0.015
    # Another interpreter (another process, another hash seed) assigns the same way.
    code = (
        "from recommendation_service.experiments.variants import Experiment, Variant\n"
        "e = Experiment('e', 'salt-1', (Variant('a', 1.0), Variant('b', 3.0)))\n"
        "print(''.join(e.assign(f'user-{k}').name for k in range(200)))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "123"},
    ).stdout.strip()  # fmt: skip
    assert other == "".join(EXPERIMENT.assign(f"user-{k}").name for k in range(200))
    # A new salt reshuffles users.
    resalted = Experiment("e", "salt-2", EXPERIMENT.variants)
    moved = sum(EXPERIMENT.assign(u) != resalted.assign(u) for u in users[:2000])
    assert 500 < moved < 1000  # 2 * 0.25 * 0.75 of users expected to move


def test_wilson_interval_and_two_proportion_test():
    low, high = wilson(50, 500)
    assert low < 0.1 < high and low > 0.07 and high < 0.135
    assert wilson(0, 0) == (0.0, 1.0)
    assert two_proportion_p(100, 1000, 100, 1000) == pytest.approx(1.0)
    assert two_proportion_p(100, 1000, 150, 1000) < 0.001
    assert lists_needed(0.1, 0.2) == pytest.approx(3_800, rel=0.05)


def simulate(rng, lift: float, lists: int = 20_000, rate: float = 0.1) -> dict:
    counts = {}
    for name, p in (("control", rate), ("treatment", rate * (1 + lift))):
        counts[name] = {"lists": lists, "clicked_lists": int(rng.binomial(lists, p))}
    return analyse(counts)["treatment"]


def test_report_finds_a_planted_lift_and_no_difference_on_an_a_a_split_over_seeds():
    seeds = range(200)
    a_a = Counter(simulate(np.random.default_rng(s), 0.0)["verdict"] for s in seeds)
    a_b = Counter(simulate(np.random.default_rng(s), 0.2)["verdict"] for s in seeds)
    # A/A: about alpha = 5% false alarms, and the sample is big enough to say "no difference".
    assert a_a["differs"] <= 20 and a_a["no_difference"] >= 180
    # B clicked 20% more often: found nearly every time (power > 0.99 at 20,000 lists each).
    assert a_b["differs"] >= 195


def test_a_small_sample_is_too_small_to_decide():
    row = analyse(
        {"a": {"lists": 200, "clicked_lists": 20}, "b": {"lists": 200, "clicked_lists": 22}}
    )
    assert row["b"]["verdict"] == "too_small" and row["b"]["lists_needed"] > 200
    empty = analyse({"a": {"lists": 0}, "b": {"lists": 0}})
    assert empty["b"]["verdict"] == "too_small"
