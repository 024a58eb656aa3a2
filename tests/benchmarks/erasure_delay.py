"""Seconds from ``DELETE /users/{user}`` to every server process answering the user as
unknown, against a running system.

    .venv/bin/recsvc demo --model-dir /tmp/demo-models &
    RECSVC_SERVE_ADMIN_TOKEN=$TOKEN .venv/bin/recsvc serve --model-dir /tmp/demo-models \\
        --port 5001 --workers 2 --bootstrap-servers 127.0.0.1:9092 --no-access-log &
    RECSVC_BENCH_TOKEN=$TOKEN .venv/bin/python -m tests.benchmarks.erasure_delay \\
        --url http://127.0.0.1:5001 [--trials 10] [--checks 20]

(any servers with ``--bootstrap-servers`` and ``--admin-token`` beside a builder will do).

Each trial makes a user of its own (three events through ``POST /online/data/add``; the
demo's shoppers would send new events for theirs, which make them a new user again), waits
until every answer for them comes from the model, erases them, then asks ``/recommend`` for
that user on a new connection every 20 ms -- connections spread over the workers -- until
``--checks`` answers in a row come from popularity (unknown). Prints the DELETE's own
latency, the time to the first of those answers, the median and the maximum (target:
within 1 s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import urllib.request

from ..processes import get


def call(method: str, url: str, token: str, body: dict | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def source(url: str, user: str) -> str:
    return get(f"{url}/recommend?user={user}&n=1")[1]["source"]


def streak_of(url: str, user: str, wanted: str, checks: int, start: float) -> float:
    """Seconds from ``start`` to the first of ``checks`` answers in a row from ``wanted``."""
    streak, first = 0, None
    while streak < checks:
        if time.monotonic() - start > 30:
            raise SystemExit(f"{user} did not answer from {wanted} within 30 s")
        if source(url, user) == wanted:
            first = first or time.monotonic() - start
            streak += 1
        else:
            streak, first = 0, None
        time.sleep(0.02)
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--checks", type=int, default=20)
    args = parser.parse_args()
    url, token = args.url.rstrip("/"), os.environ.get("RECSVC_BENCH_TOKEN", "")
    if not token:
        raise SystemExit("set RECSVC_BENCH_TOKEN to the server's admin token")
    rows = []
    for trial in range(args.trials):
        user = f"erasure-probe-{os.getpid()}-{trial}"
        items = get(f"{url}/popular?n=3")[1]["items"]
        call("POST", f"{url}/online/data/add", token,
             {"samples": [{"user_id": user, "item_id": i} for i in items]})  # fmt: skip
        streak_of(url, user, "model", args.checks, time.monotonic())
        start = time.monotonic()
        call("DELETE", f"{url}/users/{user}", token)
        answered = time.monotonic() - start
        first_unknown = streak_of(url, user, "popular", args.checks, start)
        rows.append({"user": user, "delete_s": round(answered, 3),
                     "unknown_everywhere_s": round(first_unknown, 3)})  # fmt: skip
        print(f"trial {trial}: {rows[-1]}", flush=True)
    delays = [r["unknown_everywhere_s"] for r in rows]
    deletes = [r["delete_s"] for r in rows]
    print(json.dumps({"median_s": statistics.median(delays), "max_s": max(delays),
                      "delete_median_s": statistics.median(deletes)}))  # fmt: skip


if __name__ == "__main__":
    main()
