"""Models trained by the builder's own code on realistic streams, for serving benchmarks.

Synthetic factors drawn around clean topic centres flatter an approximate index: real ALS
factors of a long-tailed catalog give unequal clusters, popular items with large norms, and
user vectors that all point at the popular head. These helpers train real factors instead:
events go through the builder's sliding window, its ALS trainer and its fold-in (the same
code ``recsvc builder`` runs), so a benchmark serves what a user's own stream would produce.

Streams:

- ``pareto``: ``users`` users, each event's item drawn half uniformly over ``items`` ids and
  half from a Pareto-popular head (Zipf exponent 1.3 over a shuffled catalog).
- ``taste``: as ``pareto``, but 70% of each user's events in one favourite category of 500
  items, so the factors have the structure real logs have.
- ``retail``: the shared Online Retail log (``../shared/data/online_retail_events.csv.gz``),
  a real e-commerce log of 4,000 items, or any log in the same format.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow
from recommendation_service.evaluation.interaction_log import LogFormat, read_log
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.params import ALSParams
from recommendation_service.training.trained_model import TrainedModel

RETAIL_LOG = Path(__file__).resolve().parents[3] / "shared" / "data" / "online_retail_events.csv.gz"


def pareto_pairs(events: int, users: int, items: int, seed: int = 0) -> Iterator[tuple[int, int]]:
    """(user, item) numbers of a long-tailed stream, in chunks so 10M events fit in memory."""
    rng = np.random.default_rng(seed)
    popular_order = rng.permutation(items)
    chunk = 1_000_000
    for start in range(0, events, chunk):
        size = min(chunk, events - start)
        user = rng.integers(users, size=size)
        uniform = rng.integers(items, size=size)
        head = popular_order[np.minimum(rng.zipf(1.3, size=size) - 1, items - 1)]
        item = np.where(rng.random(size) < 0.5, uniform, head)
        yield from zip(user.tolist(), item.tolist())


def taste_pairs(events: int, users: int, items: int, seed: int = 0) -> Iterator[tuple[int, int]]:
    """Like :func:`pareto_pairs`, but 70% of a user's events fall in one favourite category
    of 500 items (Zipf popularity within it): the structure real shopping logs have."""
    rng = np.random.default_rng(seed)
    size_of_category = 500
    categories = max(1, items // size_of_category)
    favourite = rng.integers(categories, size=users)
    popular_order = rng.permutation(items)
    chunk = 1_000_000
    for start in range(0, events, chunk):
        size = min(chunk, events - start)
        user = rng.integers(users, size=size)
        within = np.minimum(rng.zipf(1.2, size=size) - 1, size_of_category - 1)
        own = (favourite[user] * size_of_category + within) % items
        head = popular_order[np.minimum(rng.zipf(1.3, size=size) - 1, items - 1)]
        other = np.where(rng.random(size) < 0.5, rng.integers(items, size=size), head)
        item = np.where(rng.random(size) < 0.7, own, other)
        yield from zip(user.tolist(), item.tolist())


STREAMS = {"pareto": pareto_pairs, "taste": taste_pairs}


def stream_events(
    stream: str, events: int, users: int, items: int, seed: int = 0
) -> Iterator[Event]:
    pairs = STREAMS[stream](events, users, items, seed)
    for k, (u, i) in enumerate(pairs):
        yield Event(f"user-{u}", f"item-{i}", 1.0, float(k))


def retail_events(path: Path = RETAIL_LOG) -> list[Event]:
    if not path.exists():
        raise SystemExit(f"the Online Retail log is not at {path}; pass --log PATH")
    events, _ = read_log(path, LogFormat(weight_col="quantity"))
    return events


def events_of(stream: str, events: int, users: int, items: int, log: Path | None = None):
    """The events of a named stream: ``retail`` reads ``log`` (default: the shared log)."""
    if stream == "retail":
        return retail_events(log or RETAIL_LOG)
    return stream_events(stream, events, users, items)


def train(events, window: int, params: ALSParams | None = None) -> TrainedModel:
    """Fit the builder's ALS on the newest ``window`` events, through its sliding window."""
    sliding = SlidingWindow(window)
    for event in events:
        sliding.add(event)
    return ALSTrainer(params or ALSParams()).fit(sliding.snapshot())
