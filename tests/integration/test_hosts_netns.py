"""Three server hosts in separate network namespaces with nothing shared but the object store
(SeaweedFS) and the broker: every host serves the newest version, an event is visible on all
of them within a second, and a host cut off from store and broker keeps serving and catches
up when reconnected. Needs root (``ip netns``); skipped with the reason otherwise, and
``RECSVC_TEST_REQUIRE_NETNS=1`` (set by ``.ci/run``) turns the skip into a failure."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from recommendation_service.sandbox.brokers import ensure_topic

from ..conftest import new_broker, planted_events, skip_or_fail
from ..netns import Hosts, netns_unavailable
from ..processes import SeaweedFS, builder, json_or_none, stop
from .test_builder_integration import produce, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosts():
    skip_or_fail(netns_unavailable(), "RECSVC_TEST_REQUIRE_NETNS")
    with Hosts(3) as made:
        yield made


def _visible_everywhere(urls, user, ts, timeout=10.0) -> float:
    """Seconds until every host's /recommend for ``user`` reflects the event at ``ts``."""
    start = time.monotonic()

    def wait(url):
        while time.monotonic() - start < timeout:
            body = json_or_none(url + f"/recommend?user={user}&n=5")
            if body is not None and body.get("as_of") == ts:
                return time.monotonic() - start
            time.sleep(0.02)
        return float("inf")

    with ThreadPoolExecutor(len(urls)) as pool:
        return max(pool.map(wait, urls))


def _newest(directory) -> int:
    return int((directory / "CURRENT").read_text().strip()[1:])


def test_hosts_share_only_store_and_broker(hosts, tmp_path):
    with (
        SeaweedFS(tmp_path / "seaweed", host=hosts.back_ip) as seaweed,
        new_broker("tansu", tmp_path / "broker", host=hosts.back_ip) as broker,
    ):
        env = seaweed.env
        topic = f"fleet-{uuid.uuid4().hex[:8]}"
        ensure_topic(broker.bootstrap_servers, topic)
        events = planted_events(3000)
        produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events[:1000]])
        store, updates = f"s3://{seaweed.bucket}/fleet", f"updates-{topic}"
        builder_dir = tmp_path / "builder"
        b = builder(broker.bootstrap_servers, topic, builder_dir, "--window", "10000",
                    "--retrain-every", "500", "--tune", "off", "--model-store", store,
                    "--updates-topic", updates, log_path=tmp_path / "builder.log",
                    env=env)  # fmt: skip
        kafka = ("--updates-topic", updates, "--bootstrap-servers", broker.bootstrap_servers)
        urls, servers = hosts.serve(tmp_path, store, env, *kafka)

        def versions() -> list[int | None]:
            # Several answers per host: any of its two workers may answer.
            out = []
            for url in urls:
                seen = {
                    (json_or_none(url + "/health") or {}).get("model_version") for _ in range(4)
                }
                out.append(seen.pop() if len(seen) == 1 else None)
            return out

        try:
            wait_until(lambda: (builder_dir / "CURRENT").exists(), timeout=90, what="a model")
            wait_until(lambda: versions() == [_newest(builder_dir)] * hosts.n, timeout=60,
                       what="every host on the newest version")  # fmt: skip

            # An event on all three hosts: through the updates topic, not a disk.
            delays = []
            for k in range(5):
                ts = 2e9 + k
                event = {"user": events[k].user, "item": events[k + 7].item, "ts": ts}
                produce(broker, topic, [json.dumps(event).encode()])
                delays.append(_visible_everywhere(urls, events[k].user, ts))
            assert max(delays) < 10 and statistics.median(delays) <= 1.0, delays

            # Host 2 loses the store and the broker; clients still reach it.
            hosts.cut(2)
            served = versions()[2]
            wait_until(lambda: (json_or_none(urls[2] + "/health") or {}).get("model_store", {})
                       .get("state") == "unreachable", timeout=30,
                       what="the cut host reporting the store unreachable")  # fmt: skip
            produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events[1000:]])
            wait_until(lambda: _newest(builder_dir) > served, timeout=60, what="a new version")
            probe = {"user": events[0].user, "item": events[9].item, "ts": 3e9}
            produce(broker, topic, [json.dumps(probe).encode()])
            for _ in range(10):
                body = json_or_none(urls[2] + f"/recommend?user={events[0].user}&n=5")
                assert body is not None and len(body["items"]) == 5, body
            assert versions()[2] == served
            assert (json_or_none(urls[2] + "/health") or {}).get("status") == "degraded"

            # Reconnected: it catches up on versions and on fresh vectors.
            hosts.restore(2)
            wait_until(lambda: versions() == [_newest(builder_dir)] * hosts.n, timeout=60,
                       what="the reconnected host on the newest version")  # fmt: skip
            assert _visible_everywhere(urls, events[0].user, 3e9, timeout=30) < 30
            wait_until(lambda: (json_or_none(urls[2] + "/health") or {}).get("status") == "ok",
                       timeout=30, what="the reconnected host healthy")  # fmt: skip
        finally:
            for proc in (*servers, b):
                stop(proc)
