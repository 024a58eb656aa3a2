"""What users see while the service learns: serving beside a live builder, side by side with
the builder stopped and with a trivial endpoint, in one run.

    .venv/bin/python -m tests.benchmarks.live_serving [--stream taste|pareto]
        [--items 100000] [--users 30000]
        [--window 300000] [--rate 1000] [--retrain-every 30000] [--seconds 60] [--rounds 2]
        [--builder-nice 5] [--train-nice 19] [--builder-cpus ""] [--server-ef N]

Needs ``wrk``. On one host: Apache Kafka (``recsvc broker``'s broker), a
backlog of ``--window`` events over ``--items`` items (a stream of real_factors.py: ``taste``,
favourite categories with Pareto heads inside, or ``pareto``, half of the events on uniformly
random items and half on a Pareto(0.6) head: popularity as heavy-tailed as real catalogs),
``recsvc builder`` with that window and a refit every ``--retrain-every`` events (its
defaults otherwise: tuning, live quality, the sequence term), and ``recsvc serve --workers
2``. Once the builder has published a version of the whole backlog, events flow at
``--rate`` per second (30 s between refits at the defaults, if refits keep up) and wrk asks
``/recommend`` for random known users at 4 and at 32 connections, each for ``--seconds`` or
two refit periods (measured first, events flowing, no requests; at most 300 s), whichever
is longer. After each live run the stream pauses, the builder goes quiet (nothing to
consume, its refit written) and the same run repeats: ``--rounds`` such pairs, neighbours in
time, so that the shared machine's drift hits both sides of the comparison. Then the builder
stops and the same runs repeat once more; then the same server answers ``/livez`` (no model,
no files) at the same concurrencies. Reports req/s, p50/p99/p99.9, versions published during
each live run (a live run counts only if at least two landed during it: it is reported
either way, marked), the servers' CPU per request, as a ratio to the trivial endpoint's,
and the factors and regularization each tuning chose.

Each version's search breadth comes from the builder's recall probe, and with tuning on it
moves between refits (from 32 to 384 in runs on this stream), which moves a request's cost
as much as the builder does. ``--server-ef N`` pins the servers' breadth so that live and
stopped runs differ only by the builder; the breadths the probe chose are reported either way.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.sandbox.brokers import ensure_topic
from recommendation_service.sandbox.producers import Pacer

from ..conftest import free_port
from ..processes import broker_of, cpu_seconds, process_tree, serve, stop, wait_healthy
from ..processes import builder as start_builder
from .builder_throughput import produce_backlog
from .real_factors import STREAMS

WRK_SCRIPT = """
math.randomseed(%(seed)d)
ids = {%(ids)s}
request = function()
  if #ids == 0 then return wrk.format("GET", "%(path)s") end
  return wrk.format("GET", "%(path)s?user=" .. ids[math.random(1, #ids)] .. "&n=10")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%f %%f %%f %%f\\n", summary.requests,
    e.status, e.connect + e.read + e.write + e.timeout, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    latency:percentile(99.9) / 1e3))
end
"""


def server_cpu(pid: int) -> float:
    return sum(cpu_seconds(p) for p in process_tree(pid))


def wrk(port: int, script: Path, connections: int, seconds: float, server_pid: int) -> dict:
    before = server_cpu(server_pid)
    out = subprocess.run(
        ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{int(seconds)}s",
         "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    cpu = server_cpu(server_pid) - before
    fields = re.search(r"RESULT (.*)", out).group(1).split()
    requests, bad_status, socket_errors = map(int, fields[:3])
    duration, p50, p99, p999 = map(float, fields[3:])
    return {
        "connections": connections,
        "requests_per_second": round(requests / duration, 1),
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "p99_9_ms": round(p999, 3),
        "errors": bad_status + socket_errors,
        "requests": requests,
        "non_2xx": bad_status,
        "socket_errors": socket_errors,
        "server_cpu_ms_per_request": round(1000 * cpu / max(1, requests), 4),
    }


class Stream:
    """Events at ``rate`` per second until stopped (batched as an app's producer would);
    :meth:`pause` holds them back, :meth:`resume` sends at the rate again (no burst)."""

    def __init__(self, bootstrap: str, topic: str, pairs, rate: float) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.topic, self.pairs, self.rate = topic, pairs, rate
        self.sent, self.done, self.flowing = 0, threading.Event(), threading.Event()
        self.flowing.set()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pacer, base = None, 0
        while not self.done.is_set():
            if not self.flowing.is_set():
                self.producer.flush(10)
                self.flowing.wait(0.2)
                pacer = None
                continue
            if pacer is None:
                pacer, base = Pacer(self.rate), self.sent
            u, i = self.pairs[self.sent % len(self.pairs)]
            self.producer.produce(self.topic, f"{u}:{i}".encode())
            self.producer.poll(0)
            self.sent += 1
            pacer.wait(self.sent - base)
        self.producer.flush(10)
        self.producer = None  # closed now: it would log refused connections once the broker stops

    def pause(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def stop(self) -> None:
        self.done.set()
        self.flowing.set()
        self.thread.join(30)


def wait_quiet(pid: int, cores: float = 0.05, timeout: float = 120.0) -> float:
    """Wait until process ``pid`` (and its children) used under ``cores`` over each of two
    seconds in a row -- a builder with nothing to consume, its last refit written; returns
    the seconds waited."""
    start, calm, last = time.monotonic(), 0, server_cpu(pid)
    while calm < 2 and time.monotonic() - start < timeout:
        time.sleep(1.0)
        now = server_cpu(pid)
        calm = calm + 1 if now - last < cores else 0
        last = now
    return round(time.monotonic() - start, 1)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def version_of(control: ControlFiles) -> int:
    return ((control.read_status() or {}).get("last_refit") or {}).get("version") or 0


def refit_period(control: ControlFiles, timeout: float = 900.0) -> float:
    """Seconds between the next two versions the builder publishes."""
    start = time.monotonic()
    times, last = [], version_of(control)
    while len(times) < 2:
        if time.monotonic() - start > timeout:
            raise SystemExit("the builder published no two versions in 15 minutes")
        time.sleep(0.5)
        now = version_of(control)
        if now != last:
            times.append(time.monotonic())
            last = now
    return times[1] - times[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", choices=sorted(STREAMS), default="taste")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--window", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--retrain-every", type=int, default=30_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--builder-nice", type=int, default=None, help="default: the builder's")
    parser.add_argument("--train-nice", type=int, default=None, help="default: the builder's")
    parser.add_argument("--builder-cpus", default="")
    parser.add_argument(
        "--server-ef",
        type=int,
        default=None,
        help="the servers' --ann-ef (default: each version's probed breadth)",
    )
    parser.add_argument("--json-out", type=Path, default=Path("live_serving.json"))
    args = parser.parse_args()

    # Streams of real_factors.py: the factor structures real shopping logs give (tastes, or
    # heavy-tailed popularity), through the builder's own pipeline.
    live_count = int(args.rate * args.seconds * 10) + 1000
    make_pairs = STREAMS[args.stream]
    pairs = [(f"user-{u}", f"item-{i}") for u, i in
             make_pairs(args.window + live_count, args.users, args.items, seed=1)]  # fmt: skip
    backlog, live_pairs = pairs[: args.window], pairs[args.window :]
    results: dict = {"settings": vars(args) | {"json_out": str(args.json_out)}}
    with tempfile.TemporaryDirectory() as tmp, broker_of(Path(tmp) / "b") as broker:
        topic = f"live-{uuid.uuid4().hex[:8]}"
        ensure_topic(broker.bootstrap_servers, topic)
        produce_backlog(broker.bootstrap_servers, topic, backlog)
        model_dir = Path(tmp) / "models"
        control = ControlFiles(ModelStore(model_dir))
        extra = ["--window", str(args.window), "--retrain-every", str(args.retrain_every)]
        if args.builder_nice is not None:
            extra += ["--nice", str(args.builder_nice)]
        if args.train_nice is not None:
            extra += ["--train-nice", str(args.train_nice)]
        if args.builder_cpus:
            extra += ["--cpus", args.builder_cpus]
        started = time.monotonic()
        builder = start_builder(broker.bootstrap_servers, topic, model_dir, *extra,
                                log_path=Path(tmp) / "builder.log")  # fmt: skip
        port = free_port()
        server = None
        try:
            while True:  # a version of the whole backlog
                status = control.read_status() or {}
                consumed = status.get("events_consumed") or 0
                if consumed >= args.window and (status.get("last_refit") or {}).get("version"):
                    break
                if time.monotonic() - started > 1800:
                    raise SystemExit("no model of the backlog within 30 minutes")
                time.sleep(1.0)
            results["first_model_seconds"] = round(time.monotonic() - started, 1)
            server = serve(
                model_dir,
                port,
                *(["--ann-ef", str(args.server_ef)] if args.server_ef else []),
                workers=2,
            )
            wait_healthy(f"http://127.0.0.1:{port}", timeout=120)
            users = sorted({u for u, _ in backlog})[:30_000]
            scripts = {}
            for name, path, ids in (("recommend", "/recommend", users), ("livez", "/livez", [])):
                scripts[name] = Path(tmp) / f"{name}.lua"
                scripts[name].write_text(WRK_SCRIPT % {
                    "seed": 7, "path": path, "ids": ",".join(f'"{u}"' for u in ids)})  # fmt: skip
            stream = Stream(broker.bootstrap_servers, topic, live_pairs, args.rate)
            stream.thread.start()
            # How long refits take to come while events flow and nobody asks for lists; each
            # live run then lasts two of them.
            period = refit_period(control)
            results["refit_period_s"] = round(period, 1)
            seconds = min(300.0, max(args.seconds, 2 * period))
            print(f"refit every {period:.1f} s with events flowing: live runs of {seconds:.0f} s",
                  flush=True)  # fmt: skip
            # Rounds of a live run then a run with the stream paused and the builder idle
            # (nothing to consume, no refit): neighbours in time, so the shared machine's
            # drift hits both; the builder-stopped runs come after all rounds.
            live, idle = [], []
            for r in range(args.rounds):
                for connections in (4, 32):
                    stream.resume()
                    v0 = version_of(control)
                    builder_cpu = server_cpu(builder.pid)
                    broker_cpu = server_cpu(broker.process.pid)
                    row = wrk(port, scripts["recommend"], connections, seconds, server.pid)
                    row["round"] = r + 1
                    row["versions_published_during"] = version_of(control) - v0
                    # What the builder and the broker took meanwhile, in cores.
                    row["builder_cores"] = round(
                        (server_cpu(builder.pid) - builder_cpu) / seconds, 3
                    )
                    row["broker_cores"] = round(
                        (server_cpu(broker.process.pid) - broker_cpu) / seconds, 3
                    )
                    live.append(row)
                    print("live", json.dumps(row), flush=True)
                    stream.pause()
                    waited = wait_quiet(builder.pid)
                    row = wrk(port, scripts["recommend"], connections, args.seconds, server.pid)
                    row.update(round=r + 1, quiet_after_s=waited)
                    idle.append(row)
                    print("builder idle", json.dumps(row), flush=True)
            stream.stop()
            stop(builder)
            results["events_streamed"] = stream.sent
            stopped = []
            for connections in (4, 32):
                stopped.append(wrk(port, scripts["recommend"], connections, args.seconds,
                                   server.pid))  # fmt: skip
                print("builder stopped", json.dumps(stopped[-1]), flush=True)
            trivial = []
            for connections in (4, 32):
                trivial.append(wrk(port, scripts["livez"], connections, args.seconds / 2,
                                   server.pid))  # fmt: skip
                print("/livez", json.dumps(trivial[-1]), flush=True)
        finally:
            if server is not None:
                stop(server)
            if builder.poll() is None:
                stop(builder)
            build_log = (Path(tmp) / "builder.log").read_text(errors="replace")
    results.update(live=live, builder_idle=idle, builder_stopped=stopped, livez=trivial)
    chosen = re.findall(r"index (\w+) at breadth (\d+): recall|(searching exactly)", build_log)
    results["probe_choices"] = [f"{k}@{b}" if k else "exact" for k, b, _ in chosen]
    # On heavy-tailed factors the index a probe can use depends on the regularization tuned.
    results["tuning_choices"] = re.findall(r"tuned on .*?: (factors \d+, regularization [\d.e+-]+)",
                                           build_log)  # fmt: skip

    def rps(rows: list[dict], connections: int) -> list[float]:
        return [r["requests_per_second"] for r in rows if r["connections"] == connections]

    # Each round's live run over the idle run next to it; then their median.
    results["live_over_idle_rps_32"] = [
        round(a / b, 3) for a, b in zip(rps(live, 32), rps(idle, 32))
    ]
    results["live_over_idle_rps_32_median"] = round(median(results["live_over_idle_rps_32"]), 3)
    results["live_over_stopped_rps_32"] = round(median(rps(live, 32)) / rps(stopped, 32)[0], 3)
    results["recommend_cpu_over_livez_32"] = round(
        stopped[1]["server_cpu_ms_per_request"] / trivial[1]["server_cpu_ms_per_request"], 2
    )
    results["live_p99_ms_4"] = [r["p99_ms"] for r in live if r["connections"] == 4]
    results["refits_per_live_run"] = [r["versions_published_during"] for r in live]
    results["live_runs_with_two_refits"] = sum(n >= 2 for n in results["refits_per_live_run"])
    args.json_out.write_text(json.dumps(results, indent=2))
    print(f"\n{'run':<22}{'conns':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}"
          f"{'CPU ms/req':>12}{'versions':>10}")  # fmt: skip
    for name, rows in (("live builder", live), ("builder idle", idle),
                       ("builder stopped", stopped), ("/livez", trivial)):  # fmt: skip
        for r in rows:
            print(f"{name:<22}{r['connections']:>6}{r['requests_per_second']:>9.0f}"
                  f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['p99_9_ms']:>10.2f}"
                  f"{r['server_cpu_ms_per_request']:>12.3f}"
                  f"{r.get('versions_published_during', ''):>10}")  # fmt: skip
    print(
        f"refits landed per live run: {results['refits_per_live_run']} "
        f"({results['live_runs_with_two_refits']} of {len(live)} runs with at least two: only "
        f"those count as serving while the service learns)"
    )
    print(
        f"index kinds and breadths the builder's probe chose: {results['probe_choices']}; servers: "
        f"{args.server_ef or 'the probed breadth of each version'}"
    )
    print(f"tuning chose: {results['tuning_choices']}")
    print(
        f"live / idle req/s at 32, per round: {results['live_over_idle_rps_32']} (median "
        f"{results['live_over_idle_rps_32_median']}); live (median) / stopped: "
        f"{results['live_over_stopped_rps_32']}; "
        f"/recommend CPU per request / /livez's: {results['recommend_cpu_over_livez_32']}"
    )


if __name__ == "__main__":
    main()
