"""A load that starts the moment a cold server says it is ready: are any requests refused?

    .venv/bin/python -m tests.benchmarks.cold_start_load [--items 100000] [--seconds 15]
        [--connections 32] [--trials 3]

Needs ``wrk``. Each trial starts ``recsvc serve --workers 2`` on an empty model directory,
publishes one version (a synthetic model of ``--items`` items, 64 factors, with its HNSW
index: loading it takes each worker a noticeable while), polls ``/health`` every 20 ms until
it answers 200, then runs wrk with ``--connections`` keep-alive connections for ``--seconds``
over the model's users. The kernel hands the connections to both workers, so a worker that
has not loaded the version yet gets requests from the first moment. Reports, per trial,
requests, non-2xx answers and socket errors (target: 0 non-2xx), and the seconds from the
publish to readiness.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.training.fold_in import FoldIn, RealtimeParams
from recommendation_service.vectors.ann import ANNParams, build_index

from ..conftest import free_port
from ..processes import get, serve, stop
from .live_serving import WRK_SCRIPT, wrk
from .synthetic_model import synthetic_model


def trial(publish, seconds: float, connections: int, script: Path, root: Path) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve(root, port, workers=2)
    try:
        deadline = time.monotonic() + 60
        while True:  # listening, with nothing to serve: 503 no_model
            try:
                if get(f"{url}/health", timeout=2)[0] == 503:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start within 60 s")
            time.sleep(0.1)
        time.sleep(1.0)  # both workers booted and made their first, empty, poll
        published = time.monotonic()
        publish(ModelStore(root))
        while get(f"{url}/health", timeout=30)[0] != 200:
            if time.monotonic() > deadline:
                raise SystemExit("the server did not serve the version within 60 s")
            time.sleep(0.02)
        ready = time.monotonic() - published
        row = wrk(port, script, connections, seconds, server.pid)
    finally:
        stop(server)
    return {"requests": row["requests"], "non_2xx": row["non_2xx"],
            "socket_errors": row["socket_errors"],
            "publish_to_ready_s": round(ready, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    model = synthetic_model(n_items=args.items, n_users=args.users, factors=64)
    # As the builder publishes a refit: scoring rows and the HNSW index, built once here.
    fold = FoldIn(model.snapshot.item_ids, model.item_factors, model.params, RealtimeParams())
    index = build_index(fold.scoring_matrix, ANNParams())

    def publish(store: ModelStore) -> None:
        store.publish(model, fold, index=index)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "recommend.lua"
        ids = ",".join(f'"user-{u}"' for u in range(args.users))
        script.write_text(WRK_SCRIPT % {"seed": 7, "path": "/recommend", "ids": ids})
        for k in range(args.trials):
            root = Path(tmp) / f"models-{k}"
            root.mkdir()
            rows.append(trial(publish, args.seconds, args.connections, script, root))
            print(json.dumps(rows[-1]), flush=True)
    bad = sum(r["non_2xx"] + r["socket_errors"] for r in rows)
    total = sum(r["requests"] for r in rows)
    print(f"{args.trials} cold starts, {args.connections} connections for {args.seconds:.0f} s "
          f"from readiness: {total} requests, {bad} refused or failed")  # fmt: skip


if __name__ == "__main__":
    main()
