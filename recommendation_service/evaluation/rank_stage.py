"""The rank stage in a replay: each scored event gets one list per ranker a version carries,
from the same candidates, and counts which channels brought its item.

What one refit gives the stage is fitted exactly as the builder fits it
(training/ranker_refit.py).
"""

from __future__ import annotations

import numpy as np

from ..ranking.channels import UserContext, exact_search
from ..ranking.rankers import top_lists
from ..training.ranker_refit import RankStage


class ReplayRankStage:
    """The rank stage of one refit in a replay."""

    def __init__(self, stage: RankStage) -> None:
        self.stage = stage
        self.choice = stage.choice
        self._search = exact_search(stage.arrays.scoring_matrix)

    def lists(
        self, user: UserContext, k: int, target: int | None
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Each ranker's top ``k`` columns for ``user``, and which channels brought column
        ``target`` (booleans in ``ranking.channels.CHANNELS`` order)."""
        hits, out = top_lists(self.stage.arrays, user, self._search, self.choice.rankers, k)
        brought = np.array([target is not None and bool((h.cols == target).any()) for h in hits])
        return out, brought
