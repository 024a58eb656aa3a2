"""A fitted model and what it publishes: the arrays and manifest fields of one version.

The model store (artifacts/store.py) knows how a version is written -- files, checksums,
atomic rename -- but not what a trained model holds; :meth:`TrainedModel.version_content` is
where the two meet, so servers can read versions without importing any training code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..common.id_table import byte_order, encode_strings
from ..data.window import WindowSnapshot
from .fold_in import FoldIn, RealtimeParams
from .params import ALSParams

if TYPE_CHECKING:
    from .associations import Associations
    from .ranker_refit import RankStage
    from .successors import Successors


@dataclass(frozen=True)
class TrainedModel:
    """Factors learned from one snapshot, with everything needed to publish and serve them."""

    user_factors: np.ndarray  # (n_users, factors) float32
    item_factors: np.ndarray  # (n_items, factors) float32
    snapshot: WindowSnapshot
    params: ALSParams
    training_seconds: float
    trainer: str = "implicit"  # which library fitted it (recorded in the manifest)

    def version_content(
        self,
        fold: FoldIn | None = None,
        assoc: Associations | None = None,
        successors: Successors | None = None,
        rank_stage: RankStage | None = None,
    ) -> tuple[dict[str, np.ndarray], dict]:
        """Every array of a published version by file stem, and the manifest fields that
        describe the model (the store adds version, times, offsets and checksums).

        ``fold`` defaults to a fold-in with the default :class:`RealtimeParams`; without
        ``successors`` the version has no sequence term, without ``rank_stage`` no rank stage
        (it ranks by the sum).
        """
        if fold is None:
            fold = FoldIn(self.snapshot.item_ids, self.item_factors, self.params, RealtimeParams())
        arrays = self._arrays(fold, assoc)
        fields = self._fields(fold, assoc)
        if successors is not None:
            arrays.update(successors.arrays())
            fields["sequence"] = successors.manifest()
        if rank_stage is not None:
            arrays.update(rank_stage.version_arrays())
            fields["ranker"] = rank_stage.manifest()
        return arrays, fields

    def _arrays(self, fold: FoldIn, assoc: Associations | None) -> dict[str, np.ndarray]:
        snap = self.snapshot
        user_blob, user_offsets = encode_strings(snap.user_ids)
        item_blob, item_offsets = encode_strings(snap.item_ids)
        popular_items, popular_scores = popularity(snap)
        arrays = {
            "user_ids.blob": user_blob,
            "user_ids.offsets": user_offsets,
            "user_ids.order": byte_order(snap.user_ids),
            "item_ids.blob": item_blob,
            "item_ids.offsets": item_offsets,
            "item_ids.order": byte_order(snap.item_ids),
            "seen_indptr": snap.seen.indptr.astype(np.int64),
            "seen_indices": snap.seen.indices.astype(np.int32),
            "popular_items": popular_items,
            "popular_scores": popular_scores,
            "scoring_matrix": fold.scoring_matrix,
            "user_vectors": fold.base_vectors(self.user_factors, snap),
        }
        if assoc is not None:
            arrays = {
                **arrays,
                "assoc_indptr": assoc.indptr,
                "assoc_indices": assoc.indices,
                "assoc_counts": assoc.counts,
                "item_baskets": assoc.item_baskets,
            }
        return arrays

    def _fields(self, fold: FoldIn, assoc: Associations | None) -> dict:
        snap = self.snapshot
        return {
            "window_size": snap.n_events,
            "n_users": snap.n_users,
            "n_items": snap.n_items,
            "nnz": int(snap.matrix.nnz),
            "last_event_ts": snap.last_ts,
            "params": asdict(self.params),
            "trainer": self.trainer,
            "realtime": asdict(fold.params),
            "n_baskets": None if assoc is None else assoc.n_baskets,
            "training_seconds": round(self.training_seconds, 4),
            # Servers hide users erased at or after this position (data/erasures.py).
            "erasures_applied": snap.erasures_applied,
        }


def popularity(snapshot: WindowSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """Items of the window ranked by how many distinct users touched them.

    Ties are broken by summed weight, then by column, so the ranking is deterministic.

    Returns
    -------
    (order, counts)
        Column indices best first, and the distinct-user count of each, in that order.
    """
    matrix = snapshot.matrix
    users = np.asarray(matrix.getnnz(axis=0), dtype=np.int64)
    weights = np.asarray(matrix.sum(axis=0)).ravel()
    order = np.lexsort((np.arange(len(users)), -weights, -users))
    return order.astype(np.int64), users[order].astype(np.float32)
