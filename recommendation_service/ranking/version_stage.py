"""The rank stage of a loaded version: its arrays and rankers, checked, and the ranker it
ranks by.

Versions of earlier releases, and versions whose builder ran without the rank stage, carry
none of these arrays: they rank by the sum of the score terms, as before.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import ModelLoadError
from ..vectors.sequences import SequenceWeights
from .channels import ITEM_STATS, RankArrays
from .features import item_block
from .rankers import Ranker, SumRanker, best_learned, load_rankers

#: What ``ranker=`` may ask for: the version's own choice, the sum, the learned ranker the
#: refit preferred, or one kind.
RANKER_CHOICES = ("auto", "sum", "learned", "linear", "trees")


class VersionRankStage(NamedTuple):
    """The rank stage of one version (``arrays`` None: it has none, and ranks by the sum)."""

    arrays: RankArrays | None
    rankers: dict[str, Ranker]
    chosen: str
    #: The learned ranker the refit's validation preferred, chosen or not (None: none).
    best_learned: str | None
    user_last_ts: np.ndarray | None

    def ranker(self, asked: str | None) -> tuple[str, Ranker]:
        """The ranker a request gets, by name: ``asked`` (one of :data:`RANKER_CHOICES`, None
        = ``auto``), where the version has it; else the sum."""
        name = self.chosen if asked in (None, "auto") else asked
        if name == "learned":
            name = self.best_learned or "sum"
        if name not in self.rankers:
            name = "sum"
        return name, self.rankers[name]


NO_RANK_STAGE = VersionRankStage(None, {"sum": SumRanker()}, "sum", None, None)


def load_rank_stage(
    name: str,
    arrays: dict[str, np.ndarray],
    manifest: dict,
    scoring_matrix: np.ndarray,
    rules: tuple | None,
    sequence: SequenceWeights,
    n_users: int,
) -> VersionRankStage:
    """The rank stage of version ``name`` from its arrays and manifest.

    Raises
    ------
    ModelLoadError
        If the arrays are there but do not fit the version.
    """
    if "rank_item_stats" not in arrays:
        return NO_RANK_STAGE
    n_items = len(scoring_matrix)
    stats = arrays["rank_item_stats"]
    popular, trending = arrays["rank_popular"], arrays["rank_trending"]
    last_ts = arrays["rank_user_last_ts"]
    neighbours = None
    if "neighbours_indptr" in arrays:
        neighbours = (
            arrays["neighbours_indptr"], arrays["neighbours_indices"],
            arrays["neighbours_weights"],
        )  # fmt: skip
    problems = []
    if stats.shape != (n_items, len(ITEM_STATS)) or not np.isfinite(stats).all():
        problems.append("item counters do not match the items")
    for order in (popular, trending):
        if len(order) and (order.min() < 0 or order.max() >= n_items):
            problems.append("popularity orders point outside the items")
    if last_ts.shape != (n_users,):
        problems.append("users' newest event times do not match the users")
    if neighbours is not None and (
        len(neighbours[0]) != n_items + 1
        or int(neighbours[0][-1]) != len(neighbours[1])
        or (len(neighbours[1]) and (neighbours[1].min() < 0 or neighbours[1].max() >= n_items))
    ):
        problems.append("item neighbours do not match the items")
    try:
        rankers = load_rankers(arrays, manifest)
    except ModelLoadError as exc:
        problems.append(str(exc))
    if problems:
        raise ModelLoadError(f"{name}: " + "; ".join(problems))
    info = manifest.get("ranker") or {}
    chosen = info.get("chosen", "sum")
    validation = info.get("validation") or {}
    best = best_learned(rankers, validation)
    rank_arrays = RankArrays(
        scoring_matrix, rules, neighbours, stats, popular, trending, sequence, item_block(stats)
    )
    return VersionRankStage(
        rank_arrays,
        rankers,
        chosen if chosen in rankers else "sum",
        best,
        last_ts,
    )
