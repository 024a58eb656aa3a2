"""Experiments end to end on a real broker: the server's lists go out as impressions, events
carrying their recommendation_id come back through the interactions topic, and the builder's
tracker attributes them to variant and position -- and recounts them exactly after a restart."""

from __future__ import annotations

import json
import uuid

import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.config.kafka import KafkaSettings
from recommendation_service.config.server import ServerConfig
from recommendation_service.experiments.stats import two_proportion_p
from recommendation_service.experiments.variants import load_rules_file
from recommendation_service.sandbox.brokers import ensure_topic
from recommendation_service.server.app import create_app
from recommendation_service.server.model_watcher import ModelWatcher

from ..conftest import planted_events
from .test_builder_integration import RunningBuilder, builder_config, produce, wait_until

pytestmark = pytest.mark.integration

RULES = """
[rules]
garden = "category == 'garden'"

[experiment]
name = "garden-push"
[[experiment.variants]]
name = "control"
share = 1
[[experiment.variants]]
name = "garden"
share = 1
promote = "garden:2"
"""


def test_clicks_and_purchases_are_attributed_to_variant_and_position(broker, topic, tmp_path):
    impressions = f"impressions-{uuid.uuid4().hex[:8]}"
    items_topic = f"items-{uuid.uuid4().hex[:8]}"
    for name in (impressions, items_topic):
        ensure_topic(broker.bootstrap_servers, name, partitions=1)
    events = planted_events(4000)
    produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events])
    produce(
        broker,
        items_topic,
        [json.dumps({"id": i, "category": i.rsplit("-", 1)[0]}).encode()
         for i in {e.item for e in events}],
    )  # fmt: skip
    config = builder_config(
        broker, topic, tmp_path, f"g-{uuid.uuid4().hex}", window=10_000, retrain_every=4000,
        catalog_topic=items_topic, impressions_topic=impressions,
    )  # fmt: skip
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    server = ServerConfig(
        model_dir=tmp_path,
        rules_file=load_rules_file(rules),
        ingest=KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic=topic),
        impressions_topic=impressions,
    )
    with RunningBuilder(config) as builder:
        wait_until(lambda: builder.trainer.last_manifest is not None, what="first refit")
        wait_until(lambda: (tmp_path / "catalog.npz").exists(), what="the catalog")
        watcher = ModelWatcher(ModelStore(tmp_path))
        watcher.refresh()
        client = create_app(server, watcher=watcher).test_client()
        served = {"control": 0, "garden": 0}
        clicks = []
        for k in range(60):
            body = client.get(f"/recommend?user=user-{k:05d}&n=10").get_json()
            served[body["variant"]] += 1
            if body["variant"] == "garden":
                assert body["reasons"].count("promoted") == 2
            if k % 3 == 0:  # a third of the lists get a click on the item at position 2
                clicks.append((body, 2, "click"))
            if k % 6 == 0:  # and half of those a purchase of it
                clicks.append((body, 2, "purchase"))
        client.application.extensions["recsvc_impressions"].close()
        produce(
            broker,
            topic,
            [json.dumps({"user": b["user"], "item": b["items"][pos], "action": action,
                         "recommendation_id": b["recommendation_id"]}).encode()
             for b, pos, action in clicks],
        )  # fmt: skip
        expected = {
            v: {
                "lists": served[v],
                "clicked_lists": sum(a == "click" and b["variant"] == v for b, _, a in clicks),
                "converted_lists": sum(a != "click" and b["variant"] == v for b, _, a in clicks),
            }
            for v in served
        }

        def counted():
            body = client.get("/experiments").get_json()
            got = {
                v: {key: c.get(key, 0) for key in ("lists", "clicked_lists", "converted_lists")}
                for v, c in body["counts"].items()
            }
            return got == expected and body

        wait_until(counted, timeout=30, what="the tracker's counts")
        body = counted()
        for v in served:
            assert body["counts"][v]["clicks_by_position"] == [0, 0, expected[v]["clicked_lists"]]
        garden, control = expected["garden"], expected["control"]
        assert body["click_through"]["garden"]["p_value"] == pytest.approx(
            two_proportion_p(control["clicked_lists"], control["lists"],
                             garden["clicked_lists"], garden["lists"])
        )  # fmt: skip
        metrics = client.get("/metrics").get_data(as_text=True)
        assert (
            'recsvc_experiment_clicked_lists{experiment="garden-push",variant="control"}' in metrics
        )
    # A restarted builder recounts from the topics: the same numbers, not twice as many.
    (tmp_path / "experiments.json").unlink()
    with RunningBuilder(config):
        wait_until(lambda: (tmp_path / "experiments.json").exists() and counted(), timeout=30,
                   what="the recount after a restart")  # fmt: skip


def test_every_list_is_attributed_without_an_experiment(broker, topic, tmp_path):
    """A shop that runs no experiment: each list answer still has an id and goes out as an
    impression; the service's and each endpoint's click-through and conversion follow the
    events within seconds (the target is 5 s), last hour and since start alike."""
    impressions = f"impressions-{uuid.uuid4().hex[:8]}"
    ensure_topic(broker.bootstrap_servers, impressions, partitions=1)
    events = planted_events(3000)
    produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events])
    config = builder_config(
        broker, topic, tmp_path, f"g-{uuid.uuid4().hex}", window=10_000, retrain_every=3000,
        impressions_topic=impressions,
    )  # fmt: skip
    server = ServerConfig(
        model_dir=tmp_path,
        ingest=KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic=topic),
        impressions_topic=impressions,
    )
    with RunningBuilder(config) as builder:
        wait_until(lambda: builder.trainer.last_manifest is not None, what="first refit")
        watcher = ModelWatcher(ModelStore(tmp_path))
        watcher.refresh()
        client = create_app(server, watcher=watcher).test_client()
        lists = [client.get(f"/recommend?user=user-{k:05d}&n=10").get_json() for k in range(30)]
        item = lists[0]["items"][0]
        similar = client.get(f"/similar?item={item}&n=5").get_json()
        popular = client.get("/popular?n=5").get_json()
        ranked = client.post("/recommend", json={"user_id": "user-00001", "top_k": 3,
                                                 "candidate_items": lists[1]["items"]}).get_json()
        dashboard = client.get("/dashboard/api/user?user=user-00002").get_json()
        ids = [b["recommendation_id"] for b in [*lists, similar, popular, ranked, dashboard]]
        assert len(set(ids)) == len(ids) and all(len(i) == 32 for i in ids)
        assert "variant" not in lists[0]
        samples = [{"user_id": b["user"], "item_id": b["items"][k % 3], "action_type": "click",
                    "recommendation_id": b["recommendation_id"]}
                   for k, b in enumerate(lists[:12])]  # fmt: skip
        samples.append({**samples[0], "action_type": "purchase"})
        samples.append({"user_id": "x", "item_id": similar["similar"][1]["item_id"],
                        "action_type": "click", "recommendation_id": similar["recommendation_id"]})
        assert client.post("/online/data/add", json={"samples": samples}).status_code == 200
        client.application.extensions["recsvc_impressions"].close()

        seen = []

        def counted():
            body = client.get("/attribution").get_json()
            seen[:] = [body]
            service = body["service"].get("last_hour", {})
            return service.get("clicked_lists") == 13 and service.get("lists") == 33 and body

        try:
            wait_until(counted, timeout=30, what="the service's counts")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last read: {seen}") from None
        body = counted()
        for window in ("all", "last_hour"):
            service = body["service"][window]
            assert service["lists"] == 33  # 30, similar, popular, candidates; not the dashboard's
            assert service["clicked_lists"] == 13 and service["converted_lists"] == 1
            assert service["click_through"] == pytest.approx(13 / 33)
            assert service["clicks_by_position"] == [4, 5, 4]  # positions 0,1,2 of 12; similar's 1
        endpoints = body["endpoints"]
        assert endpoints["recommend"]["all"]["lists"] == 30
        assert endpoints["recommend"]["all"]["clicked_lists"] == 12
        assert endpoints["similar"]["all"]["clicked_lists"] == 1
        assert endpoints["dashboard_user"]["all"]["lists"] == 1
        assert body == client.get("/experiments").get_json() | {"tracker_updated_at": body[
            "tracker_updated_at"]}  # fmt: skip
        metrics = client.get("/metrics").get_data(as_text=True)
        hour = 'recsvc_attribution_clicked_lists{scope="service",window="last_hour"} 13.0'
        assert hour in metrics
        assert 'recsvc_lists_total{endpoint="recommend",outcome="published"} 30.0' in metrics
