"""Seconds from a click on a served list to the click in ``/attribution`` (what the dashboard
shows), against a running system.

    .venv/bin/recsvc demo &        # or any server with --bootstrap-servers and a builder
    .venv/bin/python -m tests.benchmarks.attribution_delay [--url http://127.0.0.1:5000]
        [--trials 10]

Each trial asks ``/popular`` for a list (the demo's shoppers only use ``/recommend``, so that
endpoint's counts move only with these clicks), posts a click on its first item with the
list's ``recommendation_id`` through ``POST /online/data/add``, and polls ``/attribution``
every 50 ms until the endpoint's clicked lists go up. Prints each delay, the median and the
maximum (target: within 5 s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from ..processes import get, post


def clicked(url: str) -> int:
    body = get(f"{url}/attribution")[1]
    return ((body.get("endpoints") or {}).get("popular") or {}).get("all", {}).get(
        "clicked_lists", 0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    url = args.url.rstrip("/")
    delays = []
    for trial in range(args.trials):
        status, body = get(f"{url}/popular?n=5")
        if status != 200:
            raise SystemExit(f"{url}/popular answered {status}: is a model served?")
        before = clicked(url)
        sample = {"user_id": f"delay-probe-{trial}", "item_id": body["items"][0],
                  "action_type": "click", "recommendation_id": body["recommendation_id"]}
        start = time.monotonic()
        status, answer = post(f"{url}/online/data/add", {"samples": [sample]})
        if status != 200:
            raise SystemExit(f"ingest answered {status}: {answer}")
        while clicked(url) <= before:
            if time.monotonic() - start > 60:
                raise SystemExit("the click did not show within 60 s: is the builder tracking "
                                 "(--impressions-topic)?")  # fmt: skip
            time.sleep(0.05)
        delays.append(round(time.monotonic() - start, 2))
        print(f"trial {trial}: {delays[-1]} s", flush=True)
        time.sleep(0.5)
    print(json.dumps({"delays_s": delays, "median_s": statistics.median(delays),
                      "max_s": max(delays)}))  # fmt: skip


if __name__ == "__main__":
    main()
