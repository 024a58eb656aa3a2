"""Several server hosts: event → visible on every host, and new version → served by every host.

    sudo .venv/bin/python -m tests.benchmarks.hosts [--hosts 3] [--rate 1000] [--probes 100]
        [--items 100000] [--versions 5]

Each server host is a network namespace (``tests/netns.py``; needs root) with its own model
directory, reaching only the object store (SeaweedFS) and the broker, which run in the root
namespace with the builder.

1. **Freshness across hosts**: ``recsvc builder --model-store
   --updates-topic`` and ``recsvc serve --workers 2 --model-store --updates-topic`` on every
   host while a producer sends ``--rate`` events/s. Each probe is one more event of that stream
   for a known user with a unique ``ts``; the probe ends when every host's ``/recommend`` for
   that user shows it (``as_of``). Reports p50/p95/p99 of the slowest host per probe.
2. **Version propagation**: a synthetic ``--items``-item model (with its HNSW index, as the
   builder publishes at that size) is published ``--versions`` times into a directory mirrored
   to the store; the clock starts when the manifest's upload completes and stops when every
   worker of every host answers with the new version.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from recommendation_service.artifacts.object_store import ObjectStore, StoreLocation
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.artifacts.store_sync import StoreSync
from recommendation_service.sandbox.brokers import ensure_topic
from recommendation_service.sandbox.synthetic import TasteModel, make_catalog
from recommendation_service.vectors.ann import ANNParams

from ..netns import Hosts, netns_unavailable
from ..processes import (
    SeaweedFS,
    broker_of,
    json_or_none,
    stop,
)
from ..processes import builder as start_builder
from .freshness import Stream
from .load import publish
from .synthetic_model import synthetic_model


def every_worker_on(urls: list[str], version: int) -> bool:
    return all(
        (json_or_none(url + "/health") or {}).get("model_version") == version
        for url in urls
        for _ in range(4)  # a new connection each time: either worker may answer
    )


def wait_for(predicate, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def percentiles(seconds: list[float]) -> dict:
    ms = np.where(np.isfinite(seconds), np.array(seconds) * 1000, 10_000.0)
    return {"probes": len(ms), **{f"p{q}_ms": round(float(np.percentile(ms, q)), 1)
            for q in (50, 95, 99)}, "max_ms": round(float(ms.max()), 1)}  # fmt: skip


def freshness(hosts: Hosts, args) -> dict:
    tastes = TasteModel(make_catalog(2000, 16, 3), 5000, seed=3)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with (
            SeaweedFS(tmp / "seaweed", host=hosts.back_ip) as seaweed,
            broker_of(tmp / "broker", host=hosts.back_ip) as broker,
        ):
            topic = f"fleet-{uuid.uuid4().hex[:8]}"
            ensure_topic(broker.bootstrap_servers, topic)
            store, updates = f"s3://{seaweed.bucket}/fleet", f"updates-{topic}"
            builder = start_builder(broker.bootstrap_servers, topic, tmp / "builder",
                                    "--retrain-every", "5000", "--model-store", store,
                                    "--updates-topic", updates, env=seaweed.env)  # fmt: skip
            kafka = ("--updates-topic", updates, "--bootstrap-servers", broker.bootstrap_servers)
            urls, servers = hosts.serve(tmp, store, seaweed.env, *kafka)
            stream = Stream(broker.bootstrap_servers, topic, args.rate, tastes)
            sender = threading.Thread(target=stream.run, daemon=True)
            sender.start()
            try:
                wait_for(lambda: all(json_or_none(u + "/health") for u in urls), 180, "every host")
                time.sleep(2)
                known = json_or_none(urls[0] + "/recommend?user=probe-nobody&n=200")["items"]
                rng = np.random.default_rng(0)
                slowest, per_host, behind = [], [[] for _ in urls], []
                for _ in range(args.probes):
                    newest = int((tmp / "builder" / "CURRENT").read_text().strip()[1:])
                    for url in urls:
                        behind.append(
                            newest - (json_or_none(url + "/health") or {}).get("model_version", 0)
                        )
                    user = tastes.users[int(rng.integers(len(tastes.users)))]
                    ts = time.time()
                    start = time.perf_counter()
                    stream.probe(user, known[int(rng.integers(len(known)))], ts)

                    def seen(url, user=user, ts=ts, start=start):
                        while time.perf_counter() - start < 10:
                            body = json_or_none(url + f"/recommend?user={user}&n=10")
                            if body and (body.get("as_of") or 0) >= ts - 1e-6:
                                return time.perf_counter() - start
                            # Gently: three pollers at full speed took a core from 2.
                            time.sleep(0.02)
                        return float("inf")

                    with ThreadPoolExecutor(len(urls)) as pool:
                        delays = list(pool.map(seen, urls))
                    slowest.append(max(delays))
                    for k, d in enumerate(delays):
                        per_host[k].append(d)
                    time.sleep(0.05)
            finally:
                stream.done.set()
                sender.join(15)
                for proc in (*servers, builder):
                    stop(proc)
    return {
        "target_rate": args.rate,
        "sustained_rate": round(stream.sent / stream.seconds, 1),
        "hosts": hosts.n,
        "slowest_host_per_probe": percentiles(slowest),
        "per_host_p95_ms": [percentiles(h)["p95_ms"] for h in per_host],
        "versions_published": newest,
        "host_versions_behind_builder_at_probe": {
            "mean": round(float(np.mean(behind)), 2),
            "max": int(max(behind)),
        },
    }


class TimedStore(ObjectStore):
    """The object store, noting when each version's manifest upload completed."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.manifest_done: dict[str, float] = {}

    def put(self, key: str, data: bytes) -> None:
        super().put(key, data)
        if key.endswith("/manifest.json"):
            self.manifest_done[key.split("/")[-2]] = time.monotonic()


def propagation(hosts: Hosts, args) -> dict:
    model = synthetic_model(args.items, args.items // 2, seed=5)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with SeaweedFS(tmp / "seaweed", host=hosts.back_ip) as seaweed:
            location = StoreLocation.parse(f"s3://{seaweed.bucket}/big")
            local = ModelStore(tmp / "builder", keep=3)
            remote = TimedStore(location, client=_client(seaweed.env))
            up = StoreSync(local.root, remote, upload=True)
            urls, servers = hosts.serve(tmp, str(location), seaweed.env)
            delays, sizes = [], []
            try:
                for _ in range(args.versions):
                    publish(model, local, ANNParams())
                    name = local.current_name()
                    up.run_once()
                    start = remote.manifest_done[name]
                    version = int(name[1:])
                    wait_for(lambda v=version: every_worker_on(urls, v), 120, f"{name} everywhere")
                    delays.append(time.monotonic() - start)
                    sizes.append(
                        sum(p.stat().st_size for p in (local.versions_dir / name).iterdir())
                    )
            finally:
                for proc in servers:
                    stop(proc)
    return {
        "items": args.items,
        "users": args.items // 2,
        "version_mb": round(float(np.mean(sizes)) / 1e6, 1),
        "manifest_to_every_host_s": [round(d, 2) for d in delays],
        "median_s": round(float(np.median(delays)), 2),
        "max_s": round(max(delays), 2),
    }


def _client(env: dict):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_DEFAULT_REGION"],
        config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=5)
    args = parser.parse_args()
    reason = netns_unavailable()
    if reason is not None:
        raise SystemExit(f"this benchmark runs hosts in network namespaces: {reason}")
    with Hosts(args.hosts) as hosts:
        results = {"version_propagation": propagation(hosts, args)}
        results["freshness"] = freshness(hosts, args)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
