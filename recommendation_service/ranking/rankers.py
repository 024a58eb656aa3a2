"""Rankers: the score that orders the rank stage's candidates, one class per kind.

* :class:`SumRanker` -- the sum of the score terms (the feature ``sum``), what earlier
  releases ranked by; every version has it;
* :class:`LinearRanker` -- a learned weight per feature (a listwise softmax fit);
* :class:`TreeRanker` -- gradient-boosted trees (LightGBM's LambdaRank), evaluated over the
  trees' arrays without LightGBM: every tree is padded to a complete binary tree of the
  ensemble's depth, so one request's candidates walk all trees together in ``depth`` numpy
  steps (a Python call per tree or per row would cost more than the trees themselves).

A learned ranker is stored as plain arrays in the version (``ranker_<kind>_*``), so servers
need neither LightGBM nor pickle to load it.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelLoadError
from .channels import ChannelHits, RankArrays, Search, UserContext, gather
from .features import FEATURE_NAMES, SUM, assemble, candidates


class Ranker:
    """Base class: scores the rows of a feature matrix (higher is better)."""

    kind = "base"

    def scores(self, features: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        """The ranker's arrays as a version stores them (by file stem)."""
        return {}


class SumRanker(Ranker):
    """The sum of the score terms."""

    kind = "sum"

    def scores(self, features: np.ndarray) -> np.ndarray:
        return features[:, SUM]


class LinearRanker(Ranker):
    """A weight per feature; ``weights`` has one entry per :data:`FEATURE_NAMES`."""

    kind = "linear"

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)
        if self.weights.shape != (len(FEATURE_NAMES),) or not np.isfinite(self.weights).all():
            raise ModelLoadError("linear ranker: one finite weight per feature expected")

    def scores(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weights

    def arrays(self) -> dict[str, np.ndarray]:
        return {"ranker_linear_weights": self.weights}


class TreeRanker(Ranker):
    """Boosted trees as complete binary trees of one depth.

    Parameters
    ----------
    feature, threshold
        (trees, 2**depth - 1): each inner node's feature column and threshold, in
        breadth-first order (children of node ``i`` at ``2i + 1`` and ``2i + 2``); a row goes
        left when its value is <= the threshold. Padding nodes have threshold +inf.
    leaf
        (trees, 2**depth): the value of each leaf, left to right.
    """

    kind = "trees"

    def __init__(self, feature: np.ndarray, threshold: np.ndarray, leaf: np.ndarray) -> None:
        self.feature = np.asarray(feature, dtype=np.int64)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.leaf = np.asarray(leaf, dtype=np.float64)
        trees, inner = self.feature.shape
        depth = int(np.log2(inner + 1))
        if (
            self.threshold.shape != (trees, inner)
            or self.leaf.shape != (trees, inner + 1)
            or 2**depth - 1 != inner
            or (inner and (self.feature.min() < 0 or self.feature.max() >= len(FEATURE_NAMES)))
            or not np.isfinite(self.leaf).all()
        ):
            raise ModelLoadError("tree ranker: arrays do not describe complete trees")
        self.depth = depth
        # Flat, tree-major layouts: each level is a few np.take calls over (trees x rows)
        # int32 arrays (np.take is several times faster than fancy indexing at this size).
        # A node is addressed by its flat index t * inner + i; its children are at
        # 2 * flat + 1 - t * inner (+ 1 for the right one).
        self._feature = self.feature.astype(np.int32).ravel()
        self._threshold = self.threshold.ravel()
        self._leaf = self.leaf.ravel()
        starts = np.arange(trees, dtype=np.int32) * inner
        self._roots = starts[:, None]
        self._child_shift = (1 - starts)[:, None]
        # Leaf k of tree t is node inner + k (flat t * inner + inner + k): its value is at
        # t * (inner + 1) + k.
        self._leaf_shift = (np.arange(trees, dtype=np.int32) - inner)[:, None]

    def scores(self, features: np.ndarray) -> np.ndarray:
        n = len(features)
        by_feature = np.ascontiguousarray(features.T, dtype=np.float64).ravel()
        rows = np.arange(n, dtype=np.int32)[None, :]
        # Where each node's feature starts in ``by_feature``.
        feature_at = self._feature * np.int32(n)
        if not self.depth:
            return np.take(self._leaf, np.repeat(self._roots, n, axis=1) + self._leaf_shift).sum(0)
        # Every row starts at its tree's root: the first level needs no per-row gather of nodes.
        roots = self._roots[:, 0]
        first = np.take(by_feature, feature_at[roots][:, None] + rows)
        right = first > self._threshold[roots][:, None]
        node = (2 * self._roots + self._child_shift) + right
        for _ in range(self.depth - 1):
            value = np.take(by_feature, np.take(feature_at, node) + rows)
            right = value > np.take(self._threshold, node)
            node += node
            node += self._child_shift
            node += right
        return np.take(self._leaf, node + self._leaf_shift).sum(axis=0)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "ranker_trees_feature": self.feature.astype(np.int16),
            "ranker_trees_threshold": self.threshold,
            "ranker_trees_leaf": self.leaf,
        }

    @classmethod
    def from_lightgbm(cls, dump: dict, depth: int) -> TreeRanker:
        """The trees of a LightGBM model dump (``Booster.dump_model()``), none deeper than
        ``depth``, with numeric ``<=`` splits only."""
        trees = dump["tree_info"]
        inner = 2**depth - 1
        feature = np.zeros((len(trees), inner), dtype=np.int64)
        threshold = np.full((len(trees), inner), np.inf)
        leaf = np.zeros((len(trees), inner + 1))
        for t, tree in enumerate(trees):
            _place(tree["tree_structure"], 0, 0, depth, feature[t], threshold[t], leaf[t])
        return cls(feature, threshold, leaf)


def _place(node: dict, at: int, level: int, depth: int, feature, threshold, leaf) -> None:
    if "leaf_value" in node:
        # A leaf above the last level: its padding nodes all go left (threshold +inf), so
        # fill every leaf below it with its value.
        first = at
        for _ in range(depth - level):
            first = 2 * first + 1
        span = 2 ** (depth - level)
        start = first - (2**depth - 1)
        leaf[start : start + span] = node["leaf_value"]
        return
    if level >= depth:
        raise ValueError(f"a tree is deeper than {depth}")
    if node.get("decision_type") != "<=":
        raise ValueError(f"unsupported split {node.get('decision_type')!r}")
    feature[at] = node["split_feature"]
    threshold[at] = node["threshold"]
    _place(node["left_child"], 2 * at + 1, level + 1, depth, feature, threshold, leaf)
    _place(node["right_child"], 2 * at + 2, level + 1, depth, feature, threshold, leaf)


def top_lists(
    arrays: RankArrays, user: UserContext, search: Search, rankers: dict[str, Ranker], k: int
) -> tuple[list[ChannelHits], dict[str, np.ndarray]]:
    """The channels' candidates for ``user``, gathered and featurized once, and each of
    ``rankers``' top ``k`` of them (columns, best first; ties keep column order)."""
    hits = gather(arrays, user, search)
    cols = candidates(hits)
    features = assemble(arrays, user, hits, cols)
    lists = {}
    for name, ranker in rankers.items():
        lists[name] = cols[np.argsort(-ranker.scores(features), kind="stable")[:k]]
    return hits, lists


def best_learned(rankers: dict[str, Ranker], validation: dict) -> str | None:
    """Of the learned ``rankers``, the one with the best validation NDCG (``validation``:
    per kind, its figures), chosen or not; None when there is none."""
    learned = [k for k in ("trees", "linear") if k in rankers]
    return max(learned, key=lambda k: (validation.get(k) or {}).get("ndcg", 0.0), default=None)


def load_rankers(arrays: dict[str, np.ndarray], manifest: dict) -> dict[str, Ranker]:
    """The rankers a version carries: always ``sum``; the learned ones when their arrays are
    there and were trained on this release's feature table (else they are left out, and the
    version ranks by the sum)."""
    out: dict[str, Ranker] = {"sum": SumRanker()}
    info = manifest.get("ranker") or {}
    if tuple(info.get("features") or ()) != FEATURE_NAMES:
        return out
    if "ranker_linear_weights" in arrays:
        out["linear"] = LinearRanker(arrays["ranker_linear_weights"])
    if "ranker_trees_feature" in arrays:
        out["trees"] = TreeRanker(
            arrays["ranker_trees_feature"],
            arrays["ranker_trees_threshold"],
            arrays["ranker_trees_leaf"],
        )
    return out
