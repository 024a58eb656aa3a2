"""Reading an experiment's counts: rates with confidence intervals, and whether the variants
differ.

The unit is a served list (one impression): its click-through is whether it got at least one
click, its conversion whether it led to at least one purchase. Lists are independent trials
per user request, so a two-proportion z-test applies (pooled standard error, two-sided).

A verdict is one of:

* ``differs`` -- p < ``alpha`` against the first (control) variant;
* ``no_difference`` -- p >= ``alpha`` with a sample large enough that a relative lift of
  ``DECIDABLE_LIFT`` would have been detected with 80% power;
* ``too_small`` -- neither: more lists are needed, and the report says how many.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from prometheus_client.core import GaugeMetricFamily

#: A sample can say "no difference" only if it would have caught a lift this large (relative).
DECIDABLE_LIFT = 0.10
_NORMAL = NormalDist()


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (well-behaved near 0 and for small samples)."""
    if trials <= 0:
        return 0.0, 1.0
    z = _NORMAL.inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    )
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value that two proportions are equal (pooled z-test); 1.0 when undefined."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k2 / n2 - k1 / n1) / se
    return 2 * (1 - _NORMAL.cdf(abs(z)))


def lists_needed(rate: float, lift: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Lists per variant to detect a relative ``lift`` over ``rate`` (normal approximation)."""
    if not 0 < rate < 1:
        return 0
    other = min(rate * (1 + lift), 1 - 1e-9)
    z = _NORMAL.inv_cdf(1 - alpha / 2) + _NORMAL.inv_cdf(power)
    spread = rate * (1 - rate) + other * (1 - other)
    return math.ceil(z * z * spread / (other - rate) ** 2)


def analyse(counts: dict[str, dict], metric: str = "clicked_lists", alpha: float = 0.05) -> dict:
    """Per variant (the first is the control): rate, 95% interval, lift, p-value, verdict.

    ``counts`` maps variant name -> {"lists": n, metric: k, ...}, in the experiment's order.
    """
    names = list(counts)
    out = {}
    if not names:
        return out
    control = counts[names[0]]
    n0, k0 = int(control.get("lists", 0)), int(control.get(metric, 0))
    rate0 = k0 / n0 if n0 else 0.0
    for name in names:
        n, k = int(counts[name].get("lists", 0)), int(counts[name].get(metric, 0))
        rate = k / n if n else 0.0
        low, high = wilson(k, n)
        row = {"lists": n, metric: k, "rate": rate, "ci95": [low, high]}
        if name != names[0]:
            p = two_proportion_p(k0, n0, k, n)
            needed = lists_needed(rate0, DECIDABLE_LIFT, alpha) if rate0 else None
            if p < alpha:
                verdict = "differs"
            elif needed and min(n0, n) >= needed:
                verdict = "no_difference"
            else:
                verdict = "too_small"
            row.update(
                lift=(rate / rate0 - 1) if rate0 else None,
                p_value=p,
                verdict=verdict,
                lists_needed=needed,
            )
        out[name] = row
    return out


_COUNTED = (
    ("lists", "Lists served"),
    ("clicks", "Click events carrying a recommendation_id"),
    ("clicked_lists", "Lists with at least one click"),
    ("conversions", "Purchase events carrying a recommendation_id"),
    ("converted_lists", "Lists with at least one purchase"),
)


def _families(prefix: str, by: str, labels: list[str]) -> dict[str, GaugeMetricFamily]:
    return {
        key: GaugeMetricFamily(
            f"{prefix}_{key}", f"{text}, {by} (the builder's attribution tracker)", labels=labels
        )
        for key, text in _COUNTED
    }


def metric_families(data: dict) -> list:
    """Prometheus gauges of the tracker's counts (``experiments.json``'s shape): per variant
    (``recsvc_experiment_*``, since start) and for the service and each endpoint
    (``recsvc_attribution_*``, ``window`` = ``all`` or ``last_hour``)."""
    families = _families("recsvc_experiment", "by variant", ["experiment", "variant"])
    for experiment, variants in data.get("experiments", {}).items():
        for variant, counts in variants.items():
            for key, family in families.items():
                family.add_metric([experiment, variant], counts.get(key, 0))
    service = _families(
        "recsvc_attribution",
        "by scope (service or endpoint:<name>) and window (all or last_hour)",
        ["scope", "window"],
    )
    scopes = {"service": data.get("service") or {}}
    for endpoint, windows in (data.get("endpoints") or {}).items():
        scopes[f"endpoint:{endpoint}"] = windows
    for scope, windows in scopes.items():
        for window, counts in windows.items():
            for key, family in service.items():
                family.add_metric([scope, window], counts.get(key, 0))
    unattributed = GaugeMetricFamily(
        "recsvc_experiment_unattributed",
        "Events with a recommendation_id whose list was not found, by kind",
        labels=["kind"],
    )
    for kind, value in data.get("unattributed", {}).items():
        unattributed.add_metric([kind], value)
    return [*families.values(), *service.values(), unattributed]
