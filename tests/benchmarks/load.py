"""Load benchmark: requests/s and latency of ``recsvc serve`` against the seed's design.

    .venv/bin/python -m tests.benchmarks.load [--stream taste] [--items 100000] [--users 30000]
        [--events 300000] [--ef 128]

Needs ``wrk`` (Debian: ``apt-get install wrk``). Trains a model on a realistic stream with the
builder's own code (``--stream pareto|taste|retail``, see real_factors.py; ``synthetic`` draws
clean clustered factors instead, for reference), publishes it as the builder does (with the
HNSW index when the catalog reaches the builder's default threshold), and drives the real
server over real sockets with wrk: 1 and 2 workers at 4 and 32
concurrent connections, a run with 2 workers while three new versions are published, and the
seed's design (model unpickled and matrix reloaded per request, Flask development server) at
the same concurrencies. Also reports recall@10 of what is served against exact float32 search
(seen items excluded, users sampled from the model),
and the memory (PSS) of the server with 1 and 2 workers. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.common.threads import lower_thread_priority
from recommendation_service.recommend.served_model import ServedModel
from recommendation_service.server.model_watcher import ModelWatcher
from recommendation_service.training.fold_in import FoldIn, RealtimeParams
from recommendation_service.vectors.ann import ANNParams, build_index

from ..conftest import free_port
from ..processes import process_tree, serve, stop, wait_healthy
from .real_factors import events_of, train
from .synthetic_model import synthetic_model

#: The end of every wrk script here: one RESULT line that wrk() parses (a %-template).
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%f %%f %%f %%f\\n", summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3))
end
"""

WRK_SCRIPT = (
    """
math.randomseed(%(seed)d)
ids = {%(ids)s}
request = function()
  return wrk.format("GET", "/recommend?user=" .. ids[math.random(1, #ids)] .. "&n=10")
end
"""
    + WRK_DONE
)


def wrk(port: int, script: Path, connections: int, seconds: float) -> dict:
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = re.search(r"RESULT (.*)", out).group(1).split()
    requests, bad_status, socket_errors = map(int, fields[:3])
    duration, p50, p95, p99 = map(float, fields[3:])
    return {
        "connections": connections,
        "requests": requests,
        "requests_per_second": round(requests / duration, 1),
        "p50_ms": round(p50, 3),
        "p95_ms": round(p95, 3),
        "p99_ms": round(p99, 3),
        "errors": bad_status + socket_errors,
    }


def is_listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pss_mb(root_pid: int) -> float:
    """Proportional set size of a process and its children, in MB (shared pages split)."""
    pids = process_tree(root_pid)
    total = 0
    for pid in pids:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        total += int(re.search(r"^Pss:\s+(\d+) kB", text, re.M).group(1))
    return round(total / 1024, 1)


def publish(model, store: ModelStore, ann: ANNParams) -> None:
    """As the builder's training worker publishes a refit."""
    fold = FoldIn(model.snapshot.item_ids, model.item_factors, model.params, RealtimeParams())
    index = None
    if model.snapshot.n_items >= ann.min_items:
        index = build_index(fold.scoring_matrix, ann)
    store.publish(model, fold, index=index)


def recall_at_10(store: ModelStore, ef: int, sample: int = 1000) -> float | None:
    served = ModelWatcher(store, ef=ef)
    served.refresh()
    if served.model.index is None:
        return None
    exact = ServedModel(*store.read_version())  # no index: exact float32 search
    rng = np.random.default_rng(1)
    hits = []
    users = exact.user_ids
    for row in rng.choice(len(users), size=min(sample, len(users)), replace=False).tolist():
        a = set(served.model.recommend(users[row], 10).items)
        b = set(exact.recommend(users[row], 10).items)
        hits.append(len(a & b) / max(1, len(b)))
    return round(float(np.mean(hits)), 4)


def make_model(args):
    if args.stream == "synthetic":
        return synthetic_model(args.items, args.users, args.factors)
    return train(events_of(args.stream, args.events, args.users, args.items, args.log), 10**8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stream", choices=("taste", "pareto", "retail", "synthetic"), default="taste"
    )
    parser.add_argument("--log", type=Path, help="interaction log for --stream retail")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--factors", type=int, default=64, help="for --stream synthetic")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--ef", type=int, default=128, help="the server's --ann-ef")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-seed", action="store_true", help="do not run the seed design")
    parser.add_argument("--json-out", type=Path, default=Path("load_benchmark.json"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark needs wrk: apt-get install wrk")

    t = time.perf_counter()
    model = make_model(args)
    n_users = model.snapshot.n_users
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        script = tmp / "load.lua"
        # Users of the model (at most 100,000 of them): unknown ids would get the cheap
        # popularity answer and flatter the figures.
        rng = np.random.default_rng(7)
        known = model.snapshot.user_ids
        picked = rng.choice(len(known), size=min(100_000, len(known)), replace=False)
        ids = ",".join(json.dumps(urllib.parse.quote(known[i])) for i in picked.tolist())
        script.write_text(WRK_SCRIPT % {"seed": 7, "ids": ids})
        store = ModelStore(tmp / "models", keep=3)
        ann = ANNParams()
        publish(model, store, ann)
        model_mb = sum(f.stat().st_size for f in (tmp / "models" / "versions").rglob("*.*")) / 2**20
        build_seconds = time.perf_counter() - t
        recall = recall_at_10(store, args.ef)
        memory = {}
        baseline = {}
        for workers in (1, 2):
            # The same server with no model: what a worker costs before any model is loaded.
            port = free_port()
            (tmp / "empty").mkdir(exist_ok=True)
            empty = serve(tmp / "empty", port, workers=workers)
            try:
                deadline = time.monotonic() + 60
                while not is_listening(port) and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(2)
                baseline[workers] = pss_mb(empty.pid)
            finally:
                stop(empty)
        for workers in (1, 2):
            port = free_port()
            server = serve(
                store.root,
                port,
                "--ann-ef",
                str(args.ef),
                "--threads",
                str(args.threads),
                workers=workers,
            )
            try:
                wait_healthy(f"http://127.0.0.1:{port}", timeout=120)
                wrk(port, script, 4, 2)  # warm-up: page in the model, start threads
                memory[workers] = pss_mb(server.pid)
                for connections in (4, 32):
                    rows.append(
                        {
                            "server": f"recsvc, {workers} worker(s)",
                            **wrk(port, script, connections, args.seconds),
                        }
                    )
                if workers == 2:

                    def publish_three():
                        lower_thread_priority()  # as the builder's training thread does
                        for _ in range(3):
                            time.sleep(args.seconds / 4)
                            publish(model, store, ann)

                    publisher = threading.Thread(target=publish_three)
                    publisher.start()
                    rows.append(
                        {
                            "server": "recsvc, 2 workers, 3 publishes during the run",
                            **wrk(port, script, 4, args.seconds),
                        }
                    )
                    publisher.join()
            finally:
                stop(server)
        if not args.skip_seed:
            from .seed_server import write_seed_model

            seed_dir = tmp / "seed"
            seed_dir.mkdir()
            write_seed_model(model, seed_dir)
            port = free_port()
            seed = subprocess.Popen(
                [sys.executable, "-m", "tests.benchmarks.seed_server", str(seed_dir), str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_healthy(f"http://127.0.0.1:{port}", timeout=60)
                for connections in (4, 32):
                    rows.append(
                        {
                            "server": "seed design (reload per request, dev server)",
                            **wrk(port, script, connections, args.seconds),
                        }
                    )
            finally:
                stop(seed)

    result = {
        "model": {
            "stream": args.stream,
            "items": model.snapshot.n_items,
            "users": n_users,
            "factors": model.params.factors,
            "published_mb": round(model_mb, 1),
            "approximate_index": recall is not None,
            "ef": args.ef,
            "recall_at_10_vs_exact": recall,
            "build_and_publish_seconds": round(build_seconds, 1),
        },
        "memory_pss_mb": {
            "1 worker": memory[1],
            "2 workers": memory[2],
            "no model, 1 worker": baseline[1],
            "no model, 2 workers": baseline[2],
            "second worker, total": round(memory[2] - memory[1], 1),
            # What the model adds to a second worker, beyond the interpreter and libraries.
            "second worker, model share": round(
                (memory[2] - memory[1] - (baseline[2] - baseline[1])) / model_mb, 3
            ),
        },
        "runs": rows,
    }
    seed_rps = [r["requests_per_second"] for r in rows if r["server"].startswith("seed")]
    ours = [r["requests_per_second"] for r in rows if r["server"] == "recsvc, 2 worker(s)"]
    if seed_rps:
        result["throughput_ratio_2_workers_vs_seed_at_32"] = round(ours[1] / seed_rps[1], 1)
    print(
        f"{'server':<48}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}"
    )
    for r in rows:
        print(
            f"{r['server']:<48}{r['connections']:>6}{r['requests_per_second']:>10}"
            f"{r['p50_ms']:>9}{r['p95_ms']:>9}{r['p99_ms']:>9}{r['errors']:>8}"
        )
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    args.json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
