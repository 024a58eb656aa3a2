"""Replay quality of the service and every baseline, side by side, on logs with and without
order: the table of docs/evaluation.md.

    .venv/bin/python -m tests.benchmarks.sequence_quality [--log LOG ...]

For each stream, the same test-then-learn replay as ``recsvc evaluate`` with its defaults
(tuning on): the newest 10% of events scored, full catalog, seen items excluded. Streams: the
given logs; users walking through series of items (planted order); the same events shuffled
within each user (no order); and the stable-taste stream of tests/benchmarks/taste_precision.py
(no order). Prints HR@10 per method and the sequence weight and depth the refits chose.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recommendation_service.data.events import Event
from recommendation_service.evaluation.interaction_log import read_log
from recommendation_service.evaluation.replay import METHODS, EvalConfig, evaluate
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog
from recommendation_service.training.tuning import TuneParams

from ..streams import series_events, shuffled


def taste_events() -> list[Event]:
    tastes = TasteModel(make_catalog(200, 5, 1), 300, focus=0.9, seed=1)
    return [Event(u, i, 1.0, float(k)) for k, (u, i) in enumerate(tastes.events(9000))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, action="append", default=[])
    parser.add_argument("--json-out", type=Path, default=Path("sequence_quality.json"))
    args = parser.parse_args()
    series = series_events(n_users=2000, per_user=60, noise=0.1, seed=7)
    streams = {
        "series (planted order)": (series, EvalConfig(window=50_000, retrain_every=5_000)),
        "series, shuffled per user": (shuffled(series, seed=8),
                                      EvalConfig(window=50_000, retrain_every=5_000)),
        "stable tastes (no order)": (taste_events(),
                                     EvalConfig(window=20_000, retrain_every=2_000)),
    }  # fmt: skip
    for path in args.log:
        events, _ = read_log(path)
        streams[path.name] = (events, EvalConfig())
    results = {}
    for name, (events, config) in streams.items():
        config = EvalConfig(**{**vars(config), "tuning": TuneParams()})
        report = evaluate(sorted(events, key=lambda e: e.ts), config)
        figures = report.as_dict()
        results[name] = figures
        chosen = [
            f"weight {c['sequence_weight']:g} depth {c['sequence_depth']} ({c['refits']} fits)"
            for c in figures["tuning_choices"]
        ]
        print(f"\n{name}: {figures['scored_events']} scored; tuning chose {'; '.join(chosen)}")
        for method in METHODS:
            print(f"  {method:<20}{report.hit_rate(method):>8.4f}")
    args.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
