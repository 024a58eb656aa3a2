"""What a refit costs the host: CPU seconds of the builder's refits, warm-started or not.

    .venv/bin/python -m tests.benchmarks.refit_cost [--stream pareto taste] [--refits 11]
        [--items 100000] [--users 30000] [--window 300000] [--retrain-every 30000]

For each stream (real_factors.py: ``pareto`` heavy-tailed, ``taste`` clustered tastes), a
window of ``--window`` events, then ``--refits`` refits each after ``--retrain-every`` more,
run by the builder's own training worker with its defaults (tuning every 5th refit, the
index compared across kinds at the first refit and every 10th, associations, sequential
rules) and published to a temporary store: once with every refit from random factors
(``--warm-iterations 0``, the releases before), once warm-started (the default). Reports
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


def run(stream: str, warm_iterations: int, args) -> list[dict]:
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
            tuning=TuneParams(),
            sequence=SequenceParams(),
        )
        for refit in range(args.refits):
            if refit:
                for e in islice(events, args.retrain_every):
                    window.add(e)
            cpu, wall = time.process_time(), time.perf_counter()
            worker._train_once()
            manifest = worker.last_manifest
            rows.append(
                {
                    "refit": refit + 1,
                    "cpu_s": round(time.process_time() - cpu, 2),
                    "wall_s": round(time.perf_counter() - wall, 2),
                    "tuned": bool((manifest.get("tuning") or {}).get("tuned_at_this_refit")),
                    "index": (manifest.get("ann") or {}).get("kind"),
                }
            )
            print(stream, f"warm_iterations={warm_iterations}", json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", nargs="+", default=["pareto", "taste"])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--window", type=int, default=300_000)
    parser.add_argument("--retrain-every", type=int, default=30_000)
    parser.add_argument("--refits", type=int, default=11)
    parser.add_argument("--json-out", type=Path, default=Path("refit_cost.json"))
    args = parser.parse_args()
    results = {}
    # As in the builder: implicit's own threads, no BLAS threads on top.
    with threadpool_limits(1, "blas"):
        for stream in args.stream:
            for warm in (0, ALSParams.warm_iterations):
                results[f"{stream} warm_iterations={warm}"] = run(stream, warm, args)
    print(f"\n{'stream, refits from':<34}{'CPU s':>8}{'wall s':>8}{'tuned CPU s':>13}"
          f"{'untuned CPU s':>15}")  # fmt: skip
    for name, rows in results.items():
        later = rows[1:]
        tuned = [r["cpu_s"] for r in later if r["tuned"]]
        plain = [r["cpu_s"] for r in later if not r["tuned"]]
        label = name.replace("warm_iterations=0", "random").replace(
            f"warm_iterations={ALSParams.warm_iterations}", "the last refit"
        )
        print(
            f"{label:<34}{sum(r['cpu_s'] for r in later):>8.1f}"
            f"{sum(r['wall_s'] for r in later):>8.1f}"
            f"{(sum(tuned) / len(tuned) if tuned else 0):>13.1f}"
            f"{(sum(plain) / len(plain) if plain else 0):>15.1f}"
        )
    args.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
