"""The builder against the real embedded broker: consume, window, train, publish, restart."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.builder.model_builder import ModelBuilder
from recommendation_service.config.builder import BuilderConfig, LiveQualityParams
from recommendation_service.config.kafka import KafkaSettings
from recommendation_service.recommend.served_model import ServedModel
from recommendation_service.sandbox.brokers import ensure_topic

from ..conftest import SMALL_ALS, category, planted_events, planted_tastes

pytestmark = pytest.mark.integration


def wait_until(predicate, timeout=60.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def produce(broker, topic, values, partition=None, timestamp=None):
    # One request in flight: a retried first batch (the new topic's leader not yet known to
    # the producer) cannot land after later ones, so offsets follow the order of production.
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 5, "max.in.flight": 1}
    )
    for k, value in enumerate(values):
        kwargs = {} if partition is None else {"partition": partition(k)}
        if timestamp is not None:
            kwargs["timestamp"] = timestamp(k)
        producer.produce(topic, value=value, **kwargs)
        if k % 5000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0


class RunningBuilder:
    """A ModelBuilder on a thread, as `recsvc builder` runs it, stoppable like SIGTERM does."""

    def __init__(self, config: BuilderConfig):
        self.builder = ModelBuilder(config)
        self.thread = threading.Thread(target=self.builder.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.builder

    def __exit__(self, *exc):
        self.builder.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


def builder_config(broker, topic, model_dir, group, **kwargs) -> BuilderConfig:
    kafka = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        topic=topic,
        group_id=group,
        dead_letter_topic=kwargs.pop("dead_letter_topic", None),
        options={"auto.commit.interval.ms": "200"},
    )
    return BuilderConfig(kafka=kafka, model_dir=model_dir, als=SMALL_ALS, **kwargs)


def consumed(builder, n):
    return lambda: builder.events_consumed >= n


def test_events_become_a_model_that_reflects_planted_tastes(broker, topic, tmp_path):
    events = planted_events(6000)
    produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events])
    config = builder_config(
        broker, topic, tmp_path, f"g-{uuid.uuid4().hex}", window=10_000, retrain_every=1000
    )
    with RunningBuilder(config) as builder:
        wait_until(consumed(builder, 6000), what="all events consumed")
        builder.trainer.request()
        wait_until(
            lambda: (
                builder.trainer.last_manifest is not None
                and builder.trainer.last_manifest["window_size"] == 6000
            ),
            what="a model over the whole window",
        )
    manifest, arrays = ModelStore(tmp_path).read_version()
    assert manifest["offsets"] == {topic: {"0": 6000}}
    model = ServedModel(manifest, arrays)
    tastes = planted_tastes()
    agree = 0
    for user in tastes.users:
        rec = model.recommend(user, 10)
        assert rec.source == "model"
        top = Counter(category(i) for i in rec.items).most_common(1)[0][0]
        agree += top == tastes.favourite[user]
    assert agree / len(tastes.users) >= 0.9


def test_restart_rebuilds_the_window_without_loss_or_double_count(broker, topic, tmp_path):
    dlq = f"dead-{uuid.uuid4().hex[:8]}"
    ensure_topic(broker.bootstrap_servers, dlq)
    garbage = [b"", b"no-colon", b"\xff\xfe", b'{"user": "u"}']
    first = [f"u{k % 37}:i{k % 53}".encode() for k in range(3000)]
    first[100:100] = garbage  # malformed messages inside the replayed range
    produce(broker, topic, first)
    group = f"g-{uuid.uuid4().hex}"
    config = builder_config(
        broker, topic, tmp_path, group, window=2000, retrain_every=500, dead_letter_topic=dlq
    )
    with RunningBuilder(config) as builder:
        wait_until(consumed(builder, 3000), what="first batch consumed")
        assert builder.malformed.total == len(garbage)
        before = builder.window.events()
    second = [f"u{k % 41}:i{k % 59}".encode() for k in range(1000)]
    second[500:500] = garbage
    produce(broker, topic, second)
    with RunningBuilder(config) as restarted:
        wait_until(consumed(restarted, 1000), what="second batch consumed")
        after = restarted.window.events()
        assert restarted.malformed.total == len(garbage), "replayed garbage is not counted again"
    valid = [v.decode() for v in first + second if v not in garbage]
    expected = [tuple(v.split(":")) for v in valid[-2000:]]
    assert [(e.user, e.item) for e in after] == expected
    valid_first = [v.decode() for v in first if v not in garbage]
    assert [(e.user, e.item) for e in before] == [tuple(v.split(":")) for v in valid_first[-2000:]]
    dead = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": "dlq-check",
            "auto.offset.reset": "earliest",
        }
    )
    dead.subscribe([dlq])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 2 * len(garbage) and time.monotonic() < deadline:
        got += [m for m in dead.consume(100, 1.0) if not m.error()]
    dead.close()
    assert sorted((m.value() or b"") for m in got) == sorted(garbage * 2)
    assert {dict(m.headers())["recsvc-error"] for m in got} >= {b"empty", b"bad_format"}


def test_restart_with_two_partitions_keeps_the_newest_window(broker, tmp_path):
    topic = f"interactions-{uuid.uuid4().hex[:12]}"
    ensure_topic(broker.bootstrap_servers, topic, partitions=2)
    values = [f"u{k}:i{k % 11}".encode() for k in range(1200)]
    # Distinct timestamps: the rebuilt window is the newest W by message timestamp.
    base_ms = int(time.time() * 1000) - 10_000
    produce(broker, topic, values, partition=lambda k: k % 2, timestamp=lambda k: base_ms + k)
    config = builder_config(
        broker, topic, tmp_path, f"g-{uuid.uuid4().hex}", window=500, retrain_every=100_000
    )
    with RunningBuilder(config) as builder:
        wait_until(consumed(builder, 1200), what="events consumed")
    with RunningBuilder(config) as restarted:
        wait_until(lambda: len(restarted.window) == 500, what="window rebuilt")
        time.sleep(1)
        assert restarted.events_consumed == 0, "nothing after the committed offsets"
        users = sorted(int(e.user[1:]) for e in restarted.window.events())
    # Both partitions' newest 250 each: exactly the newest 500 events overall.
    assert users == list(range(700, 1200))


def test_events_after_a_refit_reach_the_servers_as_updates(broker, topic, tmp_path):
    import json

    from recommendation_service.server.model_watcher import ModelWatcher

    events = planted_events(3000)
    produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events])
    config = builder_config(
        broker, topic, tmp_path, f"g-{uuid.uuid4().hex}", window=10_000, retrain_every=3000
    )
    with RunningBuilder(config) as builder:
        wait_until(lambda: builder.trainer.last_manifest is not None, what="first refit")
        version = builder.trainer.last_manifest["name"]
        watcher = ModelWatcher(ModelStore(tmp_path))
        watcher.refresh()
        assert watcher.model.recommend("newcomer", 5).source == "popular"
        garden = [i for i in watcher.model.item_ids if category(i) == "garden"][:4]
        clicks = [
            {"user": "newcomer", "item": i, "action": "click", "ts": 100 + k}
            for k, i in enumerate(garden[:3])
        ]
        dislike = {"user": "newcomer", "item": garden[3], "action": "dislike", "ts": 200}
        produce(broker, topic, [json.dumps(e).encode() for e in [*clicks, dislike]])

        def reflected():
            watcher.refresh()
            return watcher.model.recommend("newcomer", 10).as_of == 200

        wait_until(reflected, timeout=20, what="the newcomer's events in an update")
        result = watcher.model.recommend("newcomer", 10)
        assert watcher.model.name == version, "no refit happened: this came from an update"
        assert result.source == "model"
        assert not set(garden) & set(result.items), "clicked and disliked items stay out"
        assert Counter(map(category, result.items)).most_common(1)[0][0] == "garden"
        assert builder.updates_written >= 1


def test_online_api_against_broker_and_builder(broker, topic, tmp_path):
    """Refit on request through the API; ingest over HTTP reaches the user's results."""
    from recommendation_service.config.server import ServerConfig
    from recommendation_service.server.app import create_app

    events = planted_events(3000)
    produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events])
    token = "integration-test-admin-token"
    config = builder_config(
        broker, topic, tmp_path, f"g-{uuid.uuid4().hex}", window=10_000, retrain_every=10**6
    )
    server = ServerConfig(
        model_dir=tmp_path,
        admin_token=token,
        ingest=KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic=topic),
    )
    app = create_app(server)
    client = app.test_client()
    with RunningBuilder(config) as builder:
        wait_until(consumed(builder, 3000), what="events consumed")
        assert builder.trainer.last_manifest is None  # N is huge: no refit of its own
        job = client.post(
            "/online/training/start", headers={"Authorization": f"Bearer {token}"}
        ).get_json()["job"]

        def job_done():
            response = client.get(f"/online/training/status?job={job}")
            return response.status_code == 200 and response.get_json()["state"] == "done"

        wait_until(job_done, timeout=30, what="the requested refit")
        status = client.get("/online/training/status").get_json()
        assert status["last_refit"]["version"] == 1 and status["retrain_every"] == 10**6
        wait_until(lambda: client.get("/health").status_code == 200, what="model served")

        garden = [f"garden-{k:04d}" for k in range(3)]
        response = client.post(
            "/online/data/add",
            json={
                "samples": [
                    *(
                        {"user_id": "api-user", "item_id": i, "action_type": "purchase"}
                        for i in garden
                    ),
                    {"user_id": "api-user", "item_id": "x", "action_type": "teleport"},
                ]
            },
        )
        body = response.get_json()
        assert response.status_code == 200 and body["accepted"] == 3
        assert (
            body["rejected"][0]["index"] == 3 and "unknown_action" in body["rejected"][0]["reason"]
        )
        # Nothing accepted is not a success, whatever a client reads first.
        response = client.post(
            "/online/data/add", json={"samples": [{"user_id": "", "item_id": "x"}]}
        )
        body = response.get_json()
        assert response.status_code == 400 and body["accepted"] == 0
        assert body["rejected"][0]["index"] == 0
        assert client.get("/online/training/status?job=no-such-job").status_code == 404

        def personalised():
            rec = client.get("/recommend?user=api-user&n=10").get_json()
            return rec["source"] == "model" and rec["as_of"] is not None

        wait_until(personalised, timeout=20, what="ingested events in the user's results")
        rec = client.get("/recommend?user=api-user&n=10").get_json()
        assert Counter(map(category, rec["items"])).most_common(1)[0][0] == "garden"
        assert not set(garden) & set(rec["items"])
    app.extensions["recsvc_watcher"].stop()


def test_refits_are_tuned_and_the_live_stream_is_scored(broker, topic, tmp_path):
    from recommendation_service.artifacts.control_files import ControlFiles

    events = planted_events(8000)
    produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events[:4000]])
    config = builder_config(
        broker,
        topic,
        tmp_path,
        f"g-{uuid.uuid4().hex}",
        window=10_000,
        retrain_every=4000,
        # Every event scored: a fast catch-up would otherwise be sampled within the budget.
        live_quality=LiveQualityParams(budget=1.0),
    )
    with RunningBuilder(config) as builder:
        wait_until(lambda: builder.trainer.last_manifest is not None, what="first refit")
        tuning = builder.trainer.last_manifest["tuning"]
        assert tuning["tuned_at_this_refit"] and tuning["skipped"] is None
        assert 2 <= len({(t["factors"], t["alpha"]) for t in tuning["trials"]}) <= 8
        assert builder.trainer.last_manifest["params"]["factors"] == tuning["winner"]["factors"]
        # Later events of known users are scored against the served model before they apply.
        produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events[4000:]])
        wait_until(consumed(builder, 8000), what="the later events")
        wait_until(
            lambda: (
                (ControlFiles(ModelStore(tmp_path)).read_status() or {})
                .get("live_quality", {})
                .get("events", 0)
                >= 3000
            ),
            what="live quality in the status file",
        )
    quality = ControlFiles(ModelStore(tmp_path)).read_status()["live_quality"]
    assert quality["k"] == 10
    # Planted tastes: the model ranks a user's next item far better than popularity does.
    assert quality["service"]["hit_rate"] > 1.5 * quality["popularity"]["hit_rate"]


def test_a_new_item_is_recommended_to_its_taste_before_the_next_refit(broker, topic, tmp_path):
    from recommendation_service.server.model_watcher import ModelWatcher

    tastes = planted_tastes(n_users=200)
    events = planted_events(8000, n_users=200)
    produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events])
    config = builder_config(
        broker, topic, tmp_path, f"g-{uuid.uuid4().hex}", window=20_000, retrain_every=8000
    )
    with RunningBuilder(config) as builder:
        wait_until(
            lambda: (builder.trainer.last_manifest or {}).get("window_size") == 8000,
            what="a model over the planted events",
        )
        version = builder.trainer.last_manifest["name"]
        taste = tastes.favourite["user-00000"]
        same = [u for u in tastes.users if tastes.favourite[u] == taste]
        fans, others = same[:20], same[20:]
        new_item = f"{taste}-just-launched"
        produce(broker, topic, [f"{u}:{new_item}".encode() for u in fans])
        watcher = ModelWatcher(ModelStore(tmp_path))

        def reaches_others():
            watcher.refresh()
            return sum(new_item in watcher.model.recommend(u, 10).items for u in others)

        wait_until(lambda: reaches_others() >= 0.6 * len(others), timeout=20, what="new item")
        assert watcher.model.name == version, "no refit happened: the item came in an update"
        strangers = [u for u in tastes.users if tastes.favourite[u] != taste]
        assert not any(new_item in watcher.model.recommend(u, 10).items for u in strangers)
        assert not any(new_item in watcher.model.recommend(u, 10).items for u in fans)


def test_the_catalog_topic_reaches_the_servers_filters(broker, topic, tmp_path):
    from recommendation_service.data.catalog import CATALOG_FILE
    from recommendation_service.server.model_watcher import ModelWatcher

    items_topic = f"items-{uuid.uuid4().hex[:8]}"
    ensure_topic(broker.bootstrap_servers, items_topic, partitions=1)
    events = planted_events(4000)
    produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events])
    catalog = [
        json.dumps({"id": i, "category": category(i)}).encode() for i in {e.item for e in events}
    ]
    produce(broker, items_topic, [*catalog, b"not json"])
    config = builder_config(
        broker, topic, tmp_path, f"g-{uuid.uuid4().hex}", window=10_000, retrain_every=4000,
        catalog_topic=items_topic,
    )  # fmt: skip
    with RunningBuilder(config) as builder:
        wait_until(lambda: builder.trainer.last_manifest is not None, what="first refit")
        wait_until(lambda: (tmp_path / CATALOG_FILE).exists(), what="the catalog file")
        watcher = ModelWatcher(ModelStore(tmp_path))
        watcher.refresh()
        assert len(watcher.catalog.row) == len(catalog)
        assert builder.malformed.by_reason["bad_json"] == 1
        user = events[0].user
        best = watcher.model.recommend(user, 10, catalog=watcher.catalog).items[0]
        # The item goes out of stock: it leaves the answers with no refit.
        produce(broker, items_topic, [json.dumps({"id": best, "available": False}).encode()])

        def gone():
            watcher.refresh()
            return best not in watcher.model.recommend(user, 10, catalog=watcher.catalog).items

        wait_until(gone, timeout=10, what="the unavailable item leaving the answers")
        # Deleted by tombstone: back to an unlisted (available) item.
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
        producer.produce(items_topic, key=best.encode(), value=None)
        producer.flush(10)
        wait_until(lambda: not gone(), timeout=10, what="the deleted item coming back")


def test_the_builder_runs_at_its_niceness_on_its_cpus(broker, topic, tmp_path):
    from ..processes import builder as start_builder
    from ..processes import stop

    cpu = min(os.sched_getaffinity(0))
    proc = start_builder(broker.bootstrap_servers, topic, tmp_path, "--nice", "7",
                         "--train-nice", "12", "--cpus", str(cpu),
                         "--group-id", f"g-{uuid.uuid4().hex}")  # fmt: skip
    def threads():
        nice, allowed = [], []
        for task in Path(f"/proc/{proc.pid}/task").iterdir():
            try:
                stat, status = (task / "stat").read_text(), (task / "status").read_text()
            except FileNotFoundError:  # a thread that ended between listing and reading
                continue
            nice.append(int(stat.rsplit(")", 1)[1].split()[16]))
            allowed.append(status.split("Cpus_allowed_list:")[1].split()[0])
        return nice, allowed

    try:
        wait_until(lambda: (tmp_path / "builder_status.json").exists(), what="the builder")
        # The training thread lowers its own priority once it starts, which may be
        # a moment after the status file appears.
        wait_until(lambda: 12 in threads()[0], timeout=20, what="the training thread at 12")
        nice, allowed = threads()
    finally:
        stop(proc)
    assert min(nice) >= 7 and max(nice) == 12  # every thread; the training thread at 12
    assert set(allowed) == {str(cpu)}
