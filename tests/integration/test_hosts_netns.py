"""Three server hosts in separate network namespaces with nothing shared but the object store
(SeaweedFS) and the broker: every host serves the newest version, an event is visible on all
of them within a second, and a host cut off from store and broker keeps serving and catches
up when reconnected. Needs root (``ip netns``); skipped with the reason otherwise, and
``RECSVC_TEST_REQUIRE_NETNS=1`` (set by ``.ci/run``) turns the skip into a failure."""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from recommendation_service.sandbox.brokers import ensure_topic

from ..conftest import new_broker, planted_events, skip_or_fail
from ..netns import Hosts, netns_unavailable
from ..processes import SeaweedFS, builder, free_port, json_or_none, recsvc, stop
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
        new_broker(tmp_path / "broker", host=hosts.back_ip) as broker,
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


def test_a_builder_cut_off_from_broker_and_store_is_replaced_and_fenced(
    hosts, tmp_path, monkeypatch
):
    """Builders on hosts 0 and 1 (Kafka lease, separate directories), a server on host 2. The
    active builder's back link is cut: the standby takes over, the cut-off one stops writing
    and, reconnected, steps down and stands by; nothing it wrote after the cut is served."""
    from recommendation_service.artifacts.store import ModelStore

    from .test_builder_crash import assert_exact_window, produce_at
    from .test_kafka_lease import ServedLog, _builders, caught_up_and_served

    with (
        SeaweedFS(tmp_path / "seaweed", host=hosts.back_ip) as seaweed,
        new_broker(tmp_path / "broker", host=hosts.back_ip) as broker,
    ):
        for key, value in seaweed.env.items():
            monkeypatch.setenv(key, value)
        topic = f"lease-{uuid.uuid4().hex[:8]}"
        ensure_topic(broker.bootstrap_servers, topic)
        store, updates = f"s3://{seaweed.bucket}/lease-{topic}", f"updates-{topic}"
        first, second = _builders(broker, topic, tmp_path, seaweed.env, store, updates,
                                  host=[hosts.prefix(0), hosts.prefix(1)])  # fmt: skip
        port = free_port()
        server = recsvc("serve", "--model-dir", str(tmp_path / "host"), "--host", "0.0.0.0",
                        "--port", str(port), "--model-store", store, "--updates-topic", updates,
                        "--bootstrap-servers", broker.bootstrap_servers, "--no-access-log",
                        log_path=tmp_path / "host.log", env=seaweed.env,
                        host=hosts.prefix(2))  # fmt: skip
        done = threading.Event()
        sender = threading.Thread(target=produce_at, args=(broker, topic, 400.0, done))
        url = f"http://{hosts.front_ip(2)}:{port}"
        try:
            with ServedLog(url, tmp_path / "host") as log:
                sender.start()
                wait_until(lambda: (log.health().get("model_version") or 0) >= 2, timeout=90,
                           what="versions served through the store")  # fmt: skip
                wait_until(lambda: len(log.health()["builder"]["standbys"]) == 1, timeout=30,
                           what="the standby announced")  # fmt: skip
                old_id = log.health()["builder"]["active"]
                cut = 0 if (tmp_path / "builder-a" / "CURRENT").exists() else 1
                old_dir = tmp_path / ("builder-a", "builder-b")[cut]
                last_at_cut = ModelStore(old_dir).versions()[-1]
                hosts.cut(cut)
                cut_at = time.monotonic()
                wait_until(lambda: log.health()["builder"]["active"] not in (None, old_id),
                           timeout=60, what="the standby taking over")  # fmt: skip
                print(f"link cut: standby active {time.monotonic() - cut_at:.1f} s after")
                new_id = log.health()["builder"]["active"]
                # Cut off, the old builder writes nothing: no new local version either once
                # its lease is unconfirmed (half the session timeout).
                time.sleep(8)
                newest_old = ModelStore(old_dir).versions()[-1]
                hosts.restore(cut)
                wait_until(lambda: "steps down" in (old_dir.parent / f"{old_dir.name}.log")
                           .read_text(errors="replace"), timeout=60,
                           what="the reconnected builder stepping down")  # fmt: skip
                wait_until(lambda: len(log.health()["builder"]["standbys"]) == 1, timeout=60,
                           what="the old builder standing by again")  # fmt: skip
                assert log.health()["builder"]["active"] == new_id
                wait_until(done.is_set, timeout=60, what="all events produced")
                caught_up_and_served(tmp_path / ("builder-b", "builder-a")[cut], topic, log)
                assert ModelStore(old_dir).versions()[-1] == newest_old
        finally:
            done.set()
            for proc in (first, second, server):
                stop(proc)
            sender.join(30)
    assert_exact_window(ModelStore(tmp_path / "host"), topic)
    served = [v for _, v, *_ in log.samples if v is not None]
    assert served == sorted(served)
    late = [v for t, v, *_ in log.samples if v is not None and t > cut_at]
    assert not [v for v in late if log.manifests.get(v, {}).get("builder_id") == old_id
                and v > last_at_cut], "served a version the cut-off builder wrote"  # fmt: skip
