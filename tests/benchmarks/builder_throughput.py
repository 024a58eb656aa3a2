"""Builder benchmark: catch-up events/s on a backlog, and seconds to fit a 100k window.

    .venv/bin/python -m tests.benchmarks.builder_throughput [--events 1000000]

Publishes a backlog of demo-style events (text ``user:item``) to Apache Kafka, then runs the
builder with the default window and refit cadence until it has applied every event, training
concurrently as it goes; then the same without live-quality scoring, without tuning and without
the sequence term's rules. Separately, times one ALS fit with the default parameters on a
100,000-event window of the same stream, and a tuned refit (search plus final fit) on the same
window.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from recommendation_service.builder.model_builder import ModelBuilder
from recommendation_service.config.builder import BuilderConfig, LiveQualityParams
from recommendation_service.config.kafka import KafkaSettings
from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow
from recommendation_service.sandbox.brokers import ensure_topic
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.fold_in import RealtimeParams
from recommendation_service.training.params import ALSParams
from recommendation_service.training.tuning import TuneParams, tune

from ..processes import broker_of
from .real_factors import retail_events


def produce_backlog(bootstrap: str, topic: str, pairs: list[tuple[str, str]]) -> None:
    """Send ``pairs`` as ``user:item`` events, batched, and wait until all are stored."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for n, (u, i) in enumerate(pairs):
        while True:
            try:
                producer.produce(topic, f"{u}:{i}".encode())
                break
            except BufferError:
                producer.poll(0.05)
        if n % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0


def run_backlog(pairs: list[tuple[str, str]], **settings) -> dict:
    """Builder throughput on a backlog of ``pairs`` in a fresh broker.

    ``settings`` override BuilderConfig fields (the defaults otherwise).
    """
    with tempfile.TemporaryDirectory() as tmp, broker_of(Path(tmp) / "broker") as broker:
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        ensure_topic(broker.bootstrap_servers, topic)
        produce_backlog(broker.bootstrap_servers, topic, pairs)
        config = BuilderConfig(
            kafka=KafkaSettings(broker.bootstrap_servers, topic, f"bench-{uuid.uuid4().hex}"),
            model_dir=Path(tmp) / "models",
            **settings,
        )
        builder = ModelBuilder(config)
        thread = threading.Thread(target=builder.run, daemon=True)
        thread.start()
        while builder.events_consumed == 0:
            time.sleep(0.005)
        start = time.perf_counter()
        deadline = start + 600
        while builder.events_consumed < len(pairs) and time.perf_counter() < deadline:
            time.sleep(0.005)
        seconds = time.perf_counter() - start
        consumed = builder.events_consumed
        builder.stop()
        thread.join(60)
    return {
        "events_consumed": consumed,
        "events_per_second": round(consumed / seconds),
        "seconds": round(seconds, 2),
        "refits_published_meanwhile": builder.trainer.trainings,
        "live_quality": builder.quality.summary(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument(
        "--fit-log", type=Path, help="time the fits on this log's newest 100,000 events instead"
    )
    parser.add_argument("--fits-only", action="store_true", help="skip the catch-up runs")
    parser.add_argument(
        "--catch-up-only",
        action="store_true",
        help="only the catch-up with the builder's defaults (tuning and live quality on)",
    )
    args = parser.parse_args()

    tastes = TasteModel(make_catalog(args.items, 16, 1), args.users, seed=1)
    pairs = tastes.events(args.events)
    if args.catch_up_only:
        print(json.dumps({"events": args.events, "catch_up": run_backlog(pairs)}, indent=2))
        return

    defaults = BuilderConfig(kafka=KafkaSettings(), model_dir=Path("."))
    window = SlidingWindow(100_000)
    if args.fit_log:
        for e in retail_events(args.fit_log)[-100_000:]:
            window.add(e)
    else:
        for k, (u, i) in enumerate(pairs[-100_000:]):
            window.add(Event(u, i, 1.0, float(k)))
    snapshot = window.snapshot()
    fit = ALSTrainer(ALSParams()).fit(snapshot)

    # What tuning costs a refit on this window: the search plus the final fit, against one fit.
    start = time.perf_counter()
    trainer = ALSTrainer(ALSParams())
    tuned = tune(
        snapshot, ALSParams(), RealtimeParams(), TuneParams(), trainer.fit, defaults.sequence
    )
    trainer.fit(snapshot, tuned.als)
    tuned_seconds = time.perf_counter() - start

    catch_up = None if args.fits_only else run_backlog(pairs)
    # The same backlog without live quality, without tuning, without the sequence term.
    variants = (
        {}
        if catch_up is None
        else {
            "defaults": catch_up,
            "--live-quality-budget 0": run_backlog(
                pairs, live_quality=LiveQualityParams(budget=0.0)
            ),
            "--tune off": run_backlog(pairs, tuning=TuneParams(enabled=False)),
            "--sequence-distance 0": run_backlog(pairs, sequence=None),
        }
    )
    result = {
        "events": args.events,
        "catch_up": catch_up,
        "catch_up_variants": {
            name: {k: run[k] for k in ("events_per_second", "refits_published_meanwhile")}
            for name, run in variants.items()
        },
        "window": defaults.window,
        "retrain_every": defaults.retrain_every,
        "train_100k_window": {
            "seconds": round(fit.training_seconds, 2),
            "users": snapshot.n_users,
            "items": snapshot.n_items,
            "nonzeros": int(snapshot.matrix.nnz),
            "params": vars(ALSParams()),
        },
        "tuned_refit_100k_window": {
            "seconds": round(tuned_seconds, 2),
            "times_one_fit": round(tuned_seconds / fit.training_seconds, 2),
            "fits": len({(t["factors"], t["regularization"], t["alpha"]) for t in tuned.trials}),
            "winner": tuned.as_dict()["winner"],
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
