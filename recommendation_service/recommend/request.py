"""A recommendation request, and the query the pipeline works on: the request with the user's
state and the catalog rows its rules allow, each looked up once.

Unknown-id rule: a user who is neither in the model nor in any update since has no state
(``Query.state`` is None) and gets the window's most popular items with ``source="popular"``;
any other user gets scores over all items of the model, minus the items they already
interacted with in the window, with ``source="model"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..data.catalog import CatalogSnapshot
from ..rules.item_rules import NO_RULES, ItemRules, allowed_rows
from ..vectors.sequences import SequenceWeights, sequence_scores

#: The sequence term off (versions without sequential rules).
NO_SEQUENCE = SequenceWeights(weight=0.0)


@dataclass(frozen=True)
class ExploreParams:
    """How much new catalog items are explored.

    Parameters
    ----------
    share
        Chance that a brand-new item is shown to a given user (0 = off).
    half_life
        Seconds after which that chance has halved.
    max_age
        Items created longer ago than this are not explored.
    slots
        Most explored items per list.
    """

    share: float = 0.05
    half_life: float = 86_400.0
    max_age: float = 10 * 86_400.0
    slots: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.share <= 1:
            raise ValueError("explore-share must be in [0, 1]")
        if not (self.half_life > 0 and self.max_age > 0 and math.isfinite(self.max_age)):
            raise ValueError("explore half-life and max-age must be positive")
        if not 1 <= self.slots <= 100:
            raise ValueError("explore-slots must be 1..100")


NO_EXPLORATION = ExploreParams(share=0.0)


@dataclass(frozen=True)
class ListShape:
    """How a request wants its list shaped beyond filtering.

    Parameters
    ----------
    diversify
        ``"category"`` or a catalog attribute name; None = no cap.
    max_per
        Most items per value of ``diversify`` before the others.
    promote
        A named rule with the request's parameters, ``(rule, ((name, value), ...))``.
    promote_slots
        Places in the list for items passing ``promote``.
    """

    diversify: str | None = None
    max_per: int = 2
    promote: tuple | None = None
    promote_slots: int = 0


NO_SHAPE = ListShape()


# Named tuples, not dataclasses: made on every request, where each microsecond shows.
class RecommendRequest(NamedTuple):
    """Everything that decides one recommendation list.

    Parameters
    ----------
    user, n
        Who, and how many items at most.
    rules
        Which items the list may hold (filters, named rules; rules/item_rules.py).
    catalog
        The item catalog the rules and shaping read (None: no catalog published).
    shape
        Diversity and promoted slots.
    explore
        How new catalog items are shown before they have events (exploration.py).
    sequence
        The sequence term's weight and depth (None: those the version's refit chose).
    ranker
        Which ranker orders the candidates (ranking/version_stage.py's ``RANKER_CHOICES``;
        None: the one the version's refit chose).
    """

    user: str
    n: int
    rules: ItemRules = NO_RULES
    catalog: CatalogSnapshot | None = None
    shape: ListShape = NO_SHAPE
    explore: ExploreParams = NO_EXPLORATION
    sequence: SequenceWeights | None = None
    ranker: str | None = None


class UserState(NamedTuple):
    """What the served version knows of one user when the request starts."""

    vector: np.ndarray
    seen: np.ndarray  # item columns they interacted with in the window
    as_of: float | None  # newest event time reflected, if fresh vectors did
    seen_new: frozenset[str] = frozenset()  # touched items the version does not know
    #: Item columns of their most recent distinct items, newest first (the sequence term).
    recent: np.ndarray = np.zeros(0, dtype=np.int32)
    #: When their newest event in the window was, where the version records it (as_of for a
    #: fresh vector); the rank stage's ``user_gap`` feature.
    refit_last_ts: float | None = None

    @property
    def last_event(self) -> float | None:
        return self.as_of if self.as_of is not None else self.refit_last_ts


class Query:
    """A request as the pipeline works on it; lives for one request.

    Parameters
    ----------
    request
        What was asked.
    state
        What the served version knows of the user (None: an unknown user).
    sequence
        The sequence term's settings in force: the request's, else the version's.
    """

    __slots__ = ("_rows", "_successors", "request", "sequence", "state")

    def __init__(
        self,
        request: RecommendRequest,
        state: UserState | None,
        sequence: SequenceWeights = NO_SEQUENCE,
    ) -> None:
        self.request = request
        self.state = state
        self.sequence = sequence
        self._rows: dict = {}
        self._successors: tuple | None = None

    def rows(self, rules: ItemRules) -> np.ndarray | None:
        """Per catalog row, whether ``rules`` allow it (None: every row), computed once per
        rules for the whole request."""
        if rules not in self._rows:
            self._rows[rules] = allowed_rows(rules, self.request.catalog)
        return self._rows[rules]

    def successors(self, rules: tuple | None) -> tuple[np.ndarray, np.ndarray]:
        """(columns ascending, sequence scores) of what follows the user's recent items under
        the version's ``rules`` (indptr, indices, weights), computed once for the request."""
        if self._successors is None:
            recent = self.state.recent if self.state is not None else ()
            if rules is None or self.sequence.weight <= 0 or not len(recent):
                self._successors = (_NO_COLUMNS, _NO_SCORES)
            else:
                self._successors = sequence_scores(
                    *rules, recent, self.sequence.depth, self.sequence.decay
                )
        return self._successors


_NO_COLUMNS = np.zeros(0, dtype=np.int64)
_NO_SCORES = np.zeros(0, dtype=np.float32)
