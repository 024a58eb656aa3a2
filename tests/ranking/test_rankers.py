"""Rankers: the vectorised tree evaluator agrees with LightGBM, and versions load only the
rankers trained on this release's features."""

from __future__ import annotations

import lightgbm
import numpy as np
import pytest

from recommendation_service.errors import ModelLoadError
from recommendation_service.ranking.features import FEATURE_NAMES, SUM
from recommendation_service.ranking.rankers import (
    LinearRanker,
    SumRanker,
    TreeRanker,
    load_rankers,
)

F = len(FEATURE_NAMES)


def booster(depth: int, leaves: int, rounds: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, F))
    x[:, 3] = rng.integers(0, 4, size=3000)  # ties at thresholds: the "<=" side matters
    relevance = (x[:, 0] + 0.5 * x[:, 3] > 1).astype(float)
    params = {
        "objective": "lambdarank", "num_leaves": leaves, "max_depth": depth,
        "min_data_in_leaf": 5, "use_missing": False, "verbose": -1, "num_threads": 1,
    }  # fmt: skip
    data = lightgbm.Dataset(x, relevance, group=[30] * 100)
    return lightgbm.train(params, data, num_boost_round=rounds), x


@pytest.mark.parametrize(("depth", "leaves"), [(1, 2), (3, 8), (4, 5), (5, 32)])
def test_tree_ranker_scores_as_lightgbm_predicts(depth, leaves):
    model, x = booster(depth, leaves)
    ranker = TreeRanker.from_lightgbm(model.dump_model(), depth)
    np.testing.assert_allclose(ranker.scores(x), model.predict(x), rtol=1e-9, atol=1e-9)


def test_a_tree_deeper_than_the_padding_is_refused():
    model, _ = booster(4, 16)
    with pytest.raises(ValueError, match="deeper than 2"):
        TreeRanker.from_lightgbm(model.dump_model(), 2)


def test_tree_arrays_round_trip_and_bad_ones_are_refused():
    model, x = booster(3, 8)
    ranker = TreeRanker.from_lightgbm(model.dump_model(), 3)
    arrays = ranker.arrays()
    again = TreeRanker(*(arrays[f"ranker_trees_{k}"] for k in ("feature", "threshold", "leaf")))
    np.testing.assert_array_equal(again.scores(x), ranker.scores(x))
    with pytest.raises(ModelLoadError, match="complete trees"):
        TreeRanker(arrays["ranker_trees_feature"][:, :5], arrays["ranker_trees_threshold"][:, :5],
                   arrays["ranker_trees_leaf"])  # fmt: skip
    bad = arrays["ranker_trees_feature"].copy()
    bad[0, 0] = F
    with pytest.raises(ModelLoadError):
        TreeRanker(bad, arrays["ranker_trees_threshold"], arrays["ranker_trees_leaf"])


def test_linear_and_sum_rankers():
    x = np.arange(2 * F, dtype=float).reshape(2, F)
    np.testing.assert_array_equal(SumRanker().scores(x), x[:, SUM])
    w = np.zeros(F)
    w[0] = 2.0
    np.testing.assert_array_equal(LinearRanker(w).scores(x), 2 * x[:, 0])
    with pytest.raises(ModelLoadError):
        LinearRanker(np.ones(F - 1))
    with pytest.raises(ModelLoadError):
        LinearRanker(np.full(F, np.nan))


def test_versions_load_learned_rankers_only_for_this_feature_table():
    model, _ = booster(3, 8)
    arrays = {**TreeRanker.from_lightgbm(model.dump_model(), 3).arrays(),
              **LinearRanker(np.ones(F)).arrays()}  # fmt: skip
    same = {"ranker": {"features": list(FEATURE_NAMES)}}
    assert set(load_rankers(arrays, same)) == {"sum", "linear", "trees"}
    other = {"ranker": {"features": [*FEATURE_NAMES[:-1], "something_else"]}}
    assert set(load_rankers(arrays, other)) == {"sum"}
    assert set(load_rankers({}, {})) == {"sum"}
