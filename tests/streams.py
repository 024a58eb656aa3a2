"""Synthetic streams with and without order, for the sequence term's tests and benchmarks.

* :func:`series_events` -- users walk through series of items in order (the next episode, the
  next part): most of what a user does next is the item after the one they just did.
* :func:`shuffled` -- the same events with each user's order shuffled: the same items per
  user, no order left to learn.
"""

from __future__ import annotations

import numpy as np

from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow
from recommendation_service.training.als import ALSTrainer
from recommendation_service.training.fold_in import FoldIn, RealtimeParams
from recommendation_service.training.params import ALSParams


def series_events(
    n_users: int = 300,
    n_series: int = 60,
    length: int = 8,
    per_user: int = 40,
    noise: float = 0.1,
    seed: int = 0,
) -> list[Event]:
    """Events of users who each follow series of ``length`` items (``s<j>-<k>``) from the
    start, one series after another (series drawn by a Zipf-like popularity), with a share
    ``noise`` of events on random items instead; interleaved across users in time."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_series + 1) ** 0.8
    popularity /= popularity.sum()
    streams = []
    for u in range(n_users):
        items: list[str] = []
        while len(items) < per_user:
            series = int(rng.choice(n_series, p=popularity))
            for k in range(length):
                if rng.random() < noise:
                    items.append(f"s{rng.integers(n_series)}-{rng.integers(length)}")
                items.append(f"s{series}-{k}")
        streams.append((f"user-{u:05d}", items[:per_user]))
    # Interleave: at each step a random user with events left does their next one.
    pos = [0] * n_users
    left = list(range(n_users))
    events = []
    while left:
        k = int(rng.integers(len(left)))
        u = left[k]
        user, items = streams[u]
        events.append(Event(user, items[pos[u]], 1.0, float(len(events))))
        pos[u] += 1
        if pos[u] == len(items):
            left[k] = left[-1]
            left.pop()
    return events


def shuffled(events: list[Event], seed: int = 0) -> list[Event]:
    """``events`` with each user's items in a random order (their time slots kept)."""
    rng = np.random.default_rng(seed)
    by_user: dict[str, list[int]] = {}
    for k, e in enumerate(events):
        by_user.setdefault(e.user, []).append(k)
    items = [e.item for e in events]
    out = list(events)
    for slots in by_user.values():
        order = rng.permutation(len(slots))
        for slot, j in zip(slots, order.tolist()):
            e = events[slot]
            out[slot] = Event(e.user, items[slots[j]], e.weight, e.ts)
    return out


def series_model(seed: int, params: ALSParams):
    """(window, trained model, fold-in) of a 200-user series stream, as a refit makes them."""
    window = SlidingWindow(100_000)
    for e in series_events(n_users=200, per_user=40, noise=0.05, seed=seed):
        window.add(e)
    model = ALSTrainer(params).fit(window.snapshot())
    snap = model.snapshot
    return window, model, FoldIn(snap.item_ids, model.item_factors, model.params, RealtimeParams())


def ranked_series_model(seed: int, params: ALSParams, trees: int):
    """(window, trained model, fold-in, successors, rank stage) of :func:`series_model`'s
    stream, the sum without its sequence term (as tuning leaves it on a stream it has not
    measured), and rankers of ``trees`` trees fitted as a refit fits them."""
    from recommendation_service.training.ranker_fit import RankerParams
    from recommendation_service.training.ranker_refit import fit_rank_stage
    from recommendation_service.training.successors import SequenceParams, successors
    from recommendation_service.vectors.sequences import SequenceWeights

    window, model, fold = series_model(seed, params)
    succ = successors(model.snapshot, SequenceParams(), SequenceWeights(weight=0.0))
    rules, weights = succ.scorer()
    stage = fit_rank_stage(
        model.snapshot, fold, rules, weights, ALSTrainer(params).fit, params, fold.params,
        SequenceParams(), RankerParams(trees=trees),
    )  # fmt: skip
    return window, model, fold, succ, stage
