"""What the rank stage costs: refit CPU, version size and request time, with it and without.

    .venv/bin/python -m tests.benchmarks.rank_stage_cost [--stream pareto taste retail]
        [--items 100000] [--users 30000] [--window 300000] [--retrain-every 30000]
        [--refits 3] [--requests 2000] [--ranker-every 1]

For each stream (real_factors.py: ``pareto`` heavy-tailed, ``taste`` clustered tastes,
``retail`` the shared Online Retail log, its newest 100,000 events as the window), the
builder's own training worker refits ``--refits`` times with its defaults (tuning at the
first refit, sequential rules, the index chosen by measurement), once with ``--ranker off``
and once with it on, fitting the rankers at every refit (``--ranker-every``), publishing to
a temporary store. Reports the CPU seconds of each refit (all threads), the version's size
on disk, the ranker each refit chose, and then, through the servers' own loading path
(ModelWatcher), the in-process time of ``recommend()`` for ``--requests`` known users: the
version's own ranker against ``ranker=sum`` on the same version, asked in turn for each user
(each first for half of them), p50 and p99 side by side and the median per-user extra
(``paired``; about 0 with ``--ranker off``, where both are the sum).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.builder.refits.training_worker import TrainingWorker
from recommendation_service.data.window import SlidingWindow
from recommendation_service.server.model_watcher import ModelWatcher
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.params import ALSParams
from recommendation_service.training.ranker_fit import RankerParams
from recommendation_service.training.successors import SequenceParams
from recommendation_service.training.tuning import TuneParams

from .real_factors import retail_events, stream_events

RETAIL_WINDOW = 100_000


def events_and_window(stream: str, args) -> tuple[list, int, int]:
    """The stream's events, its window and the events between refits."""
    if stream == "retail":
        events = retail_events(args.log) if args.log else retail_events()
        every = 10_000
        return events[-(RETAIL_WINDOW + args.refits * every) :], RETAIL_WINDOW, every
    total = args.window + args.refits * args.retrain_every
    events = list(stream_events(stream, total, args.users, args.items, seed=5))
    return events, args.window, args.retrain_every


def refits(stream: str, ranker: bool, store_dir: Path, args) -> list[dict]:
    events, size, every = events_and_window(stream, args)
    window = SlidingWindow(size)
    source = iter(events)
    for e in islice(source, size):
        window.add(e)
    store = ModelStore(store_dir, keep=2)
    worker = TrainingWorker(
        ALSTrainer(ALSParams()), store, lambda: (window.snapshot(), {}),
        tuning=TuneParams(every=args.refits + 1), sequence=SequenceParams(),
        ranker=RankerParams(enabled=ranker, every=args.ranker_every),
    )  # fmt: skip
    rows = []
    for refit in range(args.refits):
        if refit:
            for e in islice(source, every):
                window.add(e)
        cpu = time.process_time()
        worker._train_once()
        m = worker.last_manifest
        files = store.versions_dir / m["name"]
        rows.append(
            {
                "refit": refit + 1,
                "cpu_s": round(time.process_time() - cpu, 2),
                "version_mb": round(sum(p.stat().st_size for p in files.iterdir()) / 1e6, 1),
                "index": (m.get("ann") or {}).get("kind", "exact"),
                "ranker": (m.get("ranker") or {}).get("chosen"),
                "ranker_s": (m.get("ranker") or {}).get("stage_seconds"),
                "reason": (m.get("ranker") or {}).get("reason"),
            }
        )
        print(stream, f"ranker={'on' if ranker else 'off'}", json.dumps(rows[-1]), flush=True)
    return rows


def request_times(store_dir: Path, requests: int) -> dict:
    """p50/p99 microseconds of recommend() with the version's ranker and with the sum, the
    two asked in turn for each user (a noisy host slows both alike), and the median of the
    per-user differences."""
    watcher = ModelWatcher(ModelStore(store_dir), 1.0)
    watcher.refresh()
    model = watcher.current()
    rng = np.random.default_rng(0)
    users = [model.user_ids[int(r)] for r in rng.integers(model.n_users, size=requests)]
    rankers = {"own": None, "sum": "sum"}
    for user in users[:50]:  # warm caches and the index's pages
        for ranker in rankers.values():
            model.recommend(user, 10, ranker=ranker)
    times = {name: [] for name in rankers}
    for k, user in enumerate(users):
        # The second request for a user finds its vector's index pages in the CPU's caches:
        # each ranker goes first for half of the users.
        for name, ranker in list(rankers.items())[:: 1 if k % 2 else -1]:
            t = time.perf_counter()
            model.recommend(user, 10, ranker=ranker)
            times[name].append(time.perf_counter() - t)
    out = {"serving": model.rank_stage.chosen}
    for name, values in times.items():
        us = np.array(values) * 1e6
        out[name] = {"p50_us": round(float(np.percentile(us, 50)), 1),
                     "p99_us": round(float(np.percentile(us, 99)), 1)}  # fmt: skip
    paired = (np.array(times["own"]) - np.array(times["sum"])) * 1e6
    out["paired_median_extra_us"] = round(float(np.median(paired)), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", nargs="+", default=["pareto", "taste", "retail"])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--window", type=int, default=300_000)
    parser.add_argument("--retrain-every", type=int, default=30_000)
    parser.add_argument("--refits", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--ranker-every", type=int, default=1,
        help="Fit the rankers at every k-th refit (the builder's default is 3; 1 here, so "
        "that every refit shows what fitting them costs).",
    )  # fmt: skip
    parser.add_argument("--log", type=Path, default=None, help="The Online Retail log.")
    parser.add_argument("--json-out", type=Path, default=Path("rank_stage_cost.json"))
    args = parser.parse_args()
    results = {}
    # As in the builder and the servers: no BLAS threads beyond the caller's.
    with threadpool_limits(1, "blas"):
        for stream in args.stream:
            for ranker in (False, True):
                with tempfile.TemporaryDirectory() as tmp:
                    rows = refits(stream, ranker, Path(tmp), args)
                    timing = request_times(Path(tmp), args.requests)
                results[f"{stream} ranker={'on' if ranker else 'off'}"] = {
                    "refits": rows, "requests": timing,
                }  # fmt: skip
                print(stream, json.dumps(timing), flush=True)
    print(f"\n{'stream, rank stage':<22}{'refit CPU s':>12}{'version MB':>11}{'serves':>8}"
          f"{'p50 own':>9}{'p99 own':>9}{'p50 sum':>9}{'p99 sum':>9}{'paired':>8}"
          "  (µs)")  # fmt: skip
    for name, r in results.items():
        cpu = sum(x["cpu_s"] for x in r["refits"]) / len(r["refits"])
        t = r["requests"]
        print(f"{name:<22}{cpu:>12.1f}{r['refits'][-1]['version_mb']:>11.1f}{t['serving']:>8}"
              f"{t['own']['p50_us']:>9.0f}{t['own']['p99_us']:>9.0f}"
              f"{t['sum']['p50_us']:>9.0f}{t['sum']['p99_us']:>9.0f}"
              f"{t['paired_median_extra_us']:>8.0f}")  # fmt: skip
    args.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
