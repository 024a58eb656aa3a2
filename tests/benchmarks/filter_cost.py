"""What request-time rules add to a recommendation, on a large real-factor model.

    .venv/bin/python -m tests.benchmarks.filter_cost [--items 100000] [--requests 2000]

Trains the load benchmark's model (taste stream: 300,000 events, 30,000 users, 100,000-item
catalog, HNSW index), publishes a catalog for its items (category = the stream's 500-item
taste group, so one category is about 1% of the catalog; prices 1..100; a "sale" tag on one
item in five; one item in a hundred unavailable; 40 brands as an attribute), and times
``ServedModel.recommend`` in process for the same users without and with each rule,
diversity setting, promotion and new-item exploration (1,000 catalog items without events,
created in the last day): the latency each adds to ``GET /recommend`` (the HTTP part is the
same for all). Prints p50 and p99 per case and the difference to no catalog at all.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.data.catalog import (
    CATALOG_FILE,
    CatalogEntry,
    CatalogSnapshot,
    write_catalog,
)
from recommendation_service.recommend.request import (
    NO_EXPLORATION,
    NO_SHAPE,
    ExploreParams,
    ListShape,
)
from recommendation_service.rules.expressions import compile_rule
from recommendation_service.rules.item_rules import ItemRules
from recommendation_service.server.model_watcher import ModelWatcher
from recommendation_service.vectors.ann import ANNParams

from .load import publish
from .real_factors import events_of, train

NAMED = compile_rule("cheap_in", "price < $max and category in $cats")
ON_SALE = compile_rule("on_sale", "'sale' in tags")
CASES = {
    "no catalog": (None, ItemRules(), NO_SHAPE),
    "catalog, availability only (default)": ("catalog", ItemRules(), NO_SHAPE),
    "category= (99% removed)": ("catalog", ItemRules(category="taste-7"), NO_SHAPE),
    "max_price=50 (about half pass)": ("catalog", ItemRules(max_price=50), NO_SHAPE),
    "tags=sale (a fifth pass)": ("catalog", ItemRules(tags=("sale",)), NO_SHAPE),
    "exclude= 20 ids": ("catalog", "exclude", NO_SHAPE),
    "rule: price < $max and category in $cats": (
        "catalog",
        ItemRules(named=((NAMED, (("cats", "taste-3,taste-9"), ("max", "60"))),)),
        NO_SHAPE,
    ),
    "same rule, $max new on every request (no cache)": ("catalog", "varying", NO_SHAPE),
    "diversify=category, max_per=2": ("catalog", ItemRules(), ListShape("category", 2)),
    "diversify=brand (attribute), max_per=2": ("catalog", ItemRules(), ListShape("brand", 2)),
    "promote=on_sale:2": (
        "catalog",
        ItemRules(),
        ListShape(promote=(ON_SALE, ()), promote_slots=2),
    ),
    "explore new items (share 0.05, 1,000 new)": ("explore", ItemRules(), NO_SHAPE),
    "all: rule + promote + diversify + explore": (
        "explore",
        ItemRules(max_price=80, named=((NAMED, (("cats", "taste-3,taste-9"), ("max", "90"))),)),
        ListShape("brand", 2, promote=(ON_SALE, ()), promote_slots=2),
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    model = train(events_of("taste", args.events, args.users, args.items), 10**8)
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(Path(tmp))
        publish(model, store, ANNParams())
        entries = {
            item: CatalogEntry(
                category=f"taste-{int(item.split('-')[1]) // 500}",
                tags=("sale",) if k % 5 == 0 else (),
                available=k % 100 != 1,
                price=float(1 + rng.integers(100)),
                attributes={"brand": f"brand-{k % 40}"},
            )
            for k, item in enumerate(model.snapshot.item_ids)
        }
        write_catalog(Path(tmp), entries, {})
        catalog = CatalogSnapshot.read(Path(tmp) / CATALOG_FILE)
        # 1,000 catalog items without events yet, created in the last day: explored.
        now = time.time()
        for k in range(1000):
            entries[f"fresh-{k}"] = CatalogEntry(created_at=now - rng.integers(86_400))
        fresh_dir = Path(tmp) / "explore"
        fresh_dir.mkdir()
        write_catalog(fresh_dir, entries, {})
        fresh_catalog = CatalogSnapshot.read(fresh_dir / CATALOG_FILE)
        watcher = ModelWatcher(store)
        watcher.refresh()
        served = watcher.model
        served.pipeline.masks.catalog_rows(catalog)  # as the watcher does off the request path
        explore = ExploreParams(share=0.05)
        users = rng.choice(model.snapshot.user_ids, size=args.requests).tolist()
        popular = list(model.snapshot.item_ids[:20])
        results = {}
        for name, (with_catalog, rules, shape) in CASES.items():
            if rules == "exclude":
                rules = ItemRules(exclude=frozenset(popular))
            per_request = {}
            if rules == "varying":  # a fresh parameter value each time: the rule cache misses
                per_request = {
                    user: ItemRules(named=((NAMED, (("cats", "taste-3,taste-9"),
                                                    ("max", f"{30 + k / 1000:.3f}"))),))
                    for k, user in enumerate(users)
                }  # fmt: skip
                rules = per_request[users[0]]
            cat = {None: None, "catalog": catalog, "explore": fresh_catalog}[with_catalog]
            exp = explore if with_catalog == "explore" else NO_EXPLORATION
            if cat is not None:
                served.pipeline.masks.catalog_rows(cat)
            for user in users[:100]:  # warm-up
                served.recommend(user, 10, rules, cat, shape, exp)
            times = []
            for user in users:
                rules = per_request.get(user, rules)
                t = time.perf_counter()
                rec = served.recommend(user, 10, rules, cat, shape, exp)
                times.append(time.perf_counter() - t)
                assert len(rec.items) == 10, (name, len(rec.items))
            results[name] = {
                "p50_ms": round(1000 * float(np.percentile(times, 50)), 3),
                "p99_ms": round(1000 * float(np.percentile(times, 99)), 3),
            }
    base = results["no catalog"]
    print(f"{'rule':<46}{'p50 ms':>9}{'p99 ms':>9}{'+p99 ms':>9}")
    for name, r in results.items():
        print(f"{name:<46}{r['p50_ms']:>9}{r['p99_ms']:>9}{r['p99_ms'] - base['p99_ms']:>9.3f}")
    print(json.dumps({"items": model.snapshot.n_items, "results": results}))


if __name__ == "__main__":
    main()
