"""Does ``recsvc demo`` keep learning? Versions and events over time, with its defaults.

    .venv/bin/python -m tests.benchmarks.demo_endurance [--minutes 60]

Runs ``recsvc demo`` exactly as a user would (default rate, window and refit cadence; only
ports are chosen free) for ``--minutes``, and every 30 s prints the served model version, the
events the builder consumed, and the builder's Kafka state from ``/health``. At the end it
prints when the last new version appeared; exit status 1 if versions stopped coming.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..processes import free_port, get, recsvc, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    http = free_port()
    url = f"http://127.0.0.1:{http}"
    demo = recsvc(
        "demo", "--port", str(free_port()), "--http-port", str(http),
        "--metrics-port", str(free_port()), "--duration", str(args.minutes * 60 + 30),
        quiet=True,
    )  # fmt: skip
    start = time.monotonic()
    samples, last_version, last_new = [], None, 0.0
    try:
        while (elapsed := time.monotonic() - start) < args.minutes * 60:
            time.sleep(min(30.0, max(0.0, args.minutes * 60 - elapsed)))
            if demo.poll() is not None:
                print("the demo exited with code", demo.returncode, flush=True)
                break
            try:
                _, health = get(f"{url}/health")
                _, status = get(f"{url}/online/training/status")
            except OSError as exc:
                print("no answer:", exc, flush=True)
                continue
            t = round(time.monotonic() - start)
            version = health.get("model_version")
            if version != last_version:
                last_version, last_new = version, t
            samples.append(
                {
                    "t": t,
                    "version": version,
                    "events_consumed": status.get("events_consumed"),
                    "builder": health.get("builder", {}).get("state"),
                }
            )
            print(json.dumps(samples[-1]), flush=True)
    finally:
        stop(demo, timeout=60)
    kept = bool(samples) and samples[-1]["t"] - last_new <= 60
    report = {
        "minutes": args.minutes,
        "last_version": last_version,
        "last_new_version_at_s": last_new,
        "events_consumed": samples[-1]["events_consumed"] if samples else None,
        "kept_publishing": kept,
    }
    print(json.dumps(report, indent=2))
    sys.exit(0 if kept else 1)


if __name__ == "__main__":
    main()
