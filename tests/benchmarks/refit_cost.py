"""What a refit costs the host: CPU seconds of the builder's refits, warm-started or not.

    .venv/bin/python -m tests.benchmarks.refit_cost [--stream pareto taste] [--refits 11]
        [--items 100000] [--users 30000] [--window 300000] [--retrain-every 30000]
        [--compare warm|backoff]

For each stream (real_factors.py: ``pareto`` heavy-tailed, ``taste`` clustered tastes), a
window of ``--window`` events, then ``--refits`` refits each after ``--retrain-every`` more,
run by the builder's own training worker with its defaults (tuning every 5th refit, the
index compared across kinds at the first refit and every 10th, associations, sequential
rules) and published to a temporary store: once with every refit from random factors
(``--warm-iterations 0``, the releases before), once warm-started (the default); or, with
``--compare backoff``, once tuning at every 5th refit whatever the tunings chose
(``--tune-backoff 1``, the releases before) and once with the default backoff (the gap doubling
while tunings agree; training/tuning_schedule.py), warm-started both times. Reports
each refit's CPU seconds (all the process's threads: implicit's, FAISS's and numpy's) and
wall seconds, which refits tuned, and the totals side by side. The first refit of each run
has nothing to start from and is left out of the totals.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from itertools import islice
from pathlib import Path

from threadpoolctl import threadpool_limits

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.builder.refits.training_worker import TrainingWorker
from recommendation_service.data.window import SlidingWindow
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.params import ALSParams
from recommendation_service.training.successors import SequenceParams
from recommendation_service.training.tuning import TuneParams

from .real_factors import stream_events


def _winner(manifest: dict) -> str:
    """What a tuning chose, in short (agreeing tunings back off)."""
    w = manifest["tuning"]["winner"]
    return (f"factors {w['factors']}, reg {w['regularization']:g}, alpha {w['alpha']:g}, "
            f"boost {w['recent_boost']:g}, sequence {w.get('sequence_weight', 0):g}")  # fmt: skip


def run(stream: str, warm_iterations: int, backoff: int, args) -> list[dict]:
    events = stream_events(stream, args.window + args.refits * args.retrain_every,
                           args.users, args.items, seed=3)  # fmt: skip
    window = SlidingWindow(args.window)
    for e in islice(events, args.window):
        window.add(e)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(Path(tmp), keep=3)
        worker = TrainingWorker(
            ALSTrainer(replace(ALSParams(), warm_iterations=warm_iterations)),
            store,
            lambda: (window.snapshot(), {}),
            tuning=TuneParams(backoff=backoff),
            sequence=SequenceParams(),
        )
        for refit in range(args.refits):
            if refit:
                for e in islice(events, args.retrain_every):
                    window.add(e)
            cpu, wall = time.process_time(), time.perf_counter()
            worker._train_once()
            manifest = worker.last_manifest
            tuned = bool((manifest.get("tuning") or {}).get("tuned_at_this_refit"))
            rows.append(
                {
                    "refit": refit + 1,
                    "cpu_s": round(time.process_time() - cpu, 2),
                    "wall_s": round(time.perf_counter() - wall, 2),
                    "tuned": tuned,
                    "index": (manifest.get("ann") or {}).get("kind"),
                    "winner": _winner(manifest) if tuned else None,
                }
            )
            print(stream, f"warm_iterations={warm_iterations} backoff={backoff}",
                  json.dumps(rows[-1]), flush=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", nargs="+", default=["pareto", "taste"])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--window", type=int, default=300_000)
    parser.add_argument("--retrain-every", type=int, default=30_000)
    parser.add_argument("--refits", type=int, default=11)
    parser.add_argument("--compare", choices=("warm", "backoff"), default="warm")
    parser.add_argument("--json-out", type=Path, default=Path("refit_cost.json"))
    args = parser.parse_args()
    results = {}
    # As in the builder: implicit's own threads, no BLAS threads on top.
    with threadpool_limits(1, "blas"):
        for stream in args.stream:
            if args.compare == "warm":
                for warm in (0, ALSParams.warm_iterations):
                    label = "random" if warm == 0 else "the last refit"
                    results[f"{stream}, from {label}"] = run(stream, warm, TuneParams.backoff, args)
            else:
                for backoff in (1, TuneParams.backoff):
                    label = "every 5th" if backoff == 1 else f"backoff {backoff}"
                    results[f"{stream}, tuning {label}"] = run(
                        stream, ALSParams.warm_iterations, backoff, args
                    )
    print(f"\n{'stream, ' + args.compare:<34}{'CPU s':>8}{'wall s':>8}{'tuned CPU s':>13}"
          f"{'untuned CPU s':>15}")  # fmt: skip
    for name, rows in results.items():
        later = rows[1:]
        tuned = [r["cpu_s"] for r in later if r["tuned"]]
        plain = [r["cpu_s"] for r in later if not r["tuned"]]
        print(
            f"{name:<34}{sum(r['cpu_s'] for r in later):>8.1f}"
            f"{sum(r['wall_s'] for r in later):>8.1f}"
            f"{(sum(tuned) / len(tuned) if tuned else 0):>13.1f}"
            f"{(sum(plain) / len(plain) if plain else 0):>15.1f}"
        )
    args.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
