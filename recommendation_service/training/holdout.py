"""A refit's hold-out: the window's newest events, predicted one at a time from each user's
events before them, as the service answers between refits.

Tuning scores candidate settings on it (training/tuning.py); the rank stage's trainer turns its
events into training queries (training/ranker_queries.py).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from ..data.window import WindowSnapshot
from ..vectors.sequences import SequenceWeights, sequence_scores
from .fold_in import FoldIn, recent_columns
from .successors import SequenceParams, rules


class HoldOut:
    """The window split in two: training events, and later events to predict one by one.

    Parameters
    ----------
    snap
        The window (with its events).
    share
        Share of the newest events held out.
    most
        Most held-out events to predict (a seeded sample, in time order, beyond that).
    sequence
        Build the training part's sequential rules and each event's recent items too.
    """

    def __init__(
        self,
        snap: WindowSnapshot,
        share: float,
        most: int,
        sequence: SequenceParams | None = None,
    ) -> None:
        ev = snap.events
        n = len(ev.rows)
        cut = n - int(n * share)
        self.cut = cut
        shape = (snap.n_users, snap.n_items)
        matrix = sp.csr_matrix(
            (ev.weights[:cut].astype(np.float32), (ev.rows[:cut], ev.cols[:cut])), shape=shape
        )
        matrix.sum_duplicates()
        seen = matrix.copy()
        matrix.eliminate_zeros()
        self.train = replace(snap, matrix=matrix, seen=seen, n_events=cut)
        self.held_out = n - cut
        # Each held-out event is predicted from the user's events before it (training ones and
        # earlier held-out ones), as the service answers between refits. Scored: positive
        # events of users with earlier events, on items they had not touched yet.
        order = np.argsort(ev.rows, kind="stable")  # by user, then time
        bounds = np.searchsorted(ev.rows[order], np.arange(shape[0] + 1))
        candidates = []
        for j in range(cut, n):
            if ev.weights[j] <= 0:
                continue
            user = ev.rows[j]
            mine = order[bounds[user] : bounds[user + 1]]
            before = mine[mine < j]
            if len(before) and ev.cols[j] not in set(ev.cols[before].tolist()):
                candidates.append((j, before))
        if len(candidates) > most:
            keep = np.sort(np.random.default_rng(0).choice(len(candidates), most, False))
            candidates = [candidates[k] for k in keep.tolist()]
        self.targets = np.array([ev.cols[j] for j, _ in candidates], dtype=np.int64)
        self.history = [(ev.cols[before], ev.weights[before]) for _, before in candidates]
        #: When each predicted event happened, and the seconds since its user's previous one.
        self.when = np.array([ev.ts[j] for j, _ in candidates], dtype=np.float64)
        #: Each predicted event's user row, and whether the user had a held-out event before
        #: it (a server has a fresh vector for them; the others have the refit's).
        self.users = np.array([ev.rows[j] for j, _ in candidates], dtype=np.int64)
        self.fresh = np.array([bool((before >= cut).any()) for _, before in candidates])
        self.gap = np.array(
            [ev.ts[j] - ev.ts[before[-1]] for j, before in candidates], dtype=np.float64
        )
        # Sequential rules of the training part, and what each predicted event followed.
        self.rules = None
        if sequence is not None:
            train = ev.weights[:cut] > 0
            users, items = ev.rows[:cut][train], ev.cols[:cut][train]
            order = np.argsort(users, kind="stable")
            rule = rules(users[order], items[order], snap.n_items, sequence)
            self.rules = (rule.indptr, rule.indices, rule.data)
            self.recent = [recent_columns(c, sequence.recent) for c, _ in self.history]

    def __len__(self) -> int:
        return len(self.targets)

    def gains(self, fold: FoldIn, k: int, sequence: SequenceWeights | None = None) -> np.ndarray:
        """NDCG gain of each predicted event (0 = its item not in the user's top ``k``), its
        scores the service's: ALS and similarity, plus the sequence term with ``sequence``."""
        vectors = fold.vectors_of(self.history)
        gains = np.zeros(len(self))
        follow = sequence is not None and sequence.weight > 0 and self.rules is not None
        for start in range(0, len(self), 256):  # bounded memory per chunk
            rows = range(start, min(start + 256, len(self)))
            scores = vectors[start : rows.stop] @ fold.scoring_matrix.T
            for r in rows:
                if follow:
                    cols, seq = sequence_scores(
                        *self.rules, self.recent[r], sequence.depth, sequence.decay
                    )
                    if len(cols):
                        scores[r - start, cols] += sequence.term(seq)
                scores[r - start, self.history[r][0]] = -np.inf
            target = scores[np.arange(len(rows)), self.targets[start : rows.stop]]
            # Its rank: how many unseen items score at least as high (ties count against it).
            rank = (scores >= target[:, None]).sum(axis=1) - 1
            hit = rank < k
            gains[start : rows.stop][hit] = 1.0 / np.log2(rank[hit] + 2)
        return gains
