"""Channels and features on a small hand-made version: what each channel brings, and the
features of the candidates (sentinels for absent channels, the sum as the request path
scores it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recommendation_service.ranking.channels import (
    CHANNELS,
    ITEM_STATS,
    RankArrays,
    UserContext,
    exact_search,
    gather,
    ranked_columns,
)
from recommendation_service.ranking.features import (
    ABSENT_RANK,
    FEATURE_NAMES,
    assemble,
    candidates,
    feature_table,
    item_block,
)
from recommendation_service.training.item_stats import item_stats
from recommendation_service.training.neighbours import item_neighbours
from recommendation_service.vectors.sequences import SequenceWeights

COL = {name: k for k, name in enumerate(FEATURE_NAMES)}


def csr(rows: dict[int, dict[int, float]], n: int) -> tuple:
    m = sp.dok_matrix((n, n), dtype=np.float32)
    for a, row in rows.items():
        for b, w in row.items():
            m[a, b] = w
    m = m.tocsr()
    m.sort_indices()
    return m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data


def small_version(weight: float = 2.0) -> RankArrays:
    n = 8
    rng = np.random.default_rng(1)
    y = rng.normal(size=(n, 3)).astype(np.float32)
    unit = y / np.linalg.norm(y, axis=1, keepdims=True)
    stats = np.zeros((n, len(ITEM_STATS)), dtype=np.float32)
    stats[:, 0] = [9, 7, 5, 3, 1, 0, 2, 4]  # window counts
    stats[:, 1] = [0, 1, 0, 0, 1, 0, 2, 3]  # recent counts
    stats[:, 4] = np.linalg.norm(y, axis=1)
    return RankArrays(
        scoring_matrix=np.hstack([y, 0.5 * unit]),
        rules=csr({0: {1: 3.0, 2: 1.0}, 3: {4: 2.0}}, n),
        neighbours=csr({0: {5: 0.9, 6: 0.4}, 3: {7: 0.8}}, n),
        item_stats=stats,
        popular=ranked_columns(stats[:, 0], stats[:, 1], 100),
        trending=ranked_columns(stats[:, 1], stats[:, 0], 100),
        sequence=SequenceWeights(weight=weight, depth=2, decay=0.5),
        item_block=item_block(stats),
    )


def user(arrays: RankArrays) -> UserContext:
    vector = np.array([0.3, -0.2, 0.5, 1.0, 0.0, 0.5], dtype=np.float32)
    return UserContext(vector, np.array([0, 3]), np.array([0, 3]), gap=60.0)


def test_each_channel_brings_its_own_unseen_best():
    arrays = small_version()
    hits = gather(arrays, user(arrays), exact_search(arrays.scoring_matrix))
    assert [h.name for h in hits] == list(CHANNELS)
    by = {h.name: h for h in hits}
    assert by["follows"].cols.tolist() == [1, 2, 4]  # 3.0; then 1.0 and 2.0 x 0.5: lower first
    assert by["neighbours"].cols.tolist() == [5, 6, 7]  # 0.9; 0.4 and 0.8 x 0.5
    assert by["popular"].cols.tolist()[:3] == [1, 2, 7]  # 0 and 3 are seen
    assert by["trending"].cols.tolist()[:2] == [7, 6]
    assert len(by["als"].cols) == 6 and not set(by["als"].cols.tolist()) & {0, 3}
    best = by["als"].cols[0]
    assert np.isclose(by["als"].scores[0], arrays.scoring_matrix[best] @ user(arrays).vector)


def test_features_of_the_candidates():
    arrays = small_version()
    u = user(arrays)
    hits = gather(arrays, u, exact_search(arrays.scoring_matrix), {c: 2 for c in CHANNELS})
    cols = candidates(hits)
    x = assemble(arrays, u, hits, cols)
    assert x.shape == (len(cols), len(FEATURE_NAMES)) and np.isfinite(x).all()
    row = {c: x[k] for k, c in enumerate(cols.tolist())}
    # Item 1 follows item 0 (3.0); the sum's sequence term scales by the best follower (3.0).
    one = row[1]
    rows = arrays.scoring_matrix[1]
    expected_sum = rows[:3] @ u.vector[:3] + rows[3:] @ u.vector[3:] + 2.0 * 3.0 / 3.0
    assert np.isclose(one[COL["sum"]], expected_sum, atol=1e-6)
    assert one[COL["follows"]] == 3.0 and one[COL["follows_last1"]] == 3.0
    # Item 5 is only a neighbour of item 0: absent from the follows channel.
    five = row[5]
    assert five[COL["follows"]] == 0.0
    assert five[COL["rank_follows"]] == np.log1p(ABSENT_RANK)
    assert five[COL["rank_neighbours"]] == np.log1p(0)
    assert five[COL["neighbours_last1"]] == np.float32(0.9)
    assert x[:, COL["channels"]].min() >= 1
    assert (x[:, COL["user_gap"]] == np.log1p(60.0)).all()
    assert np.isclose(one[COL["window_count"]], np.log1p(7))


def test_a_channel_deeper_than_the_absent_rank_counts_its_tail_as_its_last_rank():
    # A request for more than ABSENT_RANK items searches the ALS channel that deep.
    n = ABSENT_RANK + 200
    rng = np.random.default_rng(2)
    y = rng.normal(size=(n, 3)).astype(np.float32)
    stats = np.ones((n, len(ITEM_STATS)), dtype=np.float32)
    arrays = small_version()._replace(
        scoring_matrix=np.hstack([y, 0.5 * y / np.linalg.norm(y, axis=1, keepdims=True)]),
        rules=None, neighbours=None, item_stats=stats, item_block=item_block(stats),
    )  # fmt: skip
    u = user(arrays)
    hits = gather(arrays, u, exact_search(arrays.scoring_matrix), {**{c: 2 for c in CHANNELS},
                                                                   "als": n})  # fmt: skip
    cols = candidates(hits)
    x = assemble(arrays, u, hits, cols)
    assert len(cols) == n - 2  # all but the two seen items
    ranks = np.expm1(x[:, COL["rank_als"]]).round()
    assert sorted(ranks.tolist())[:3] == [0, 1, 2] and ranks.max() == ABSENT_RANK - 1


def test_the_sum_has_no_sequence_term_at_weight_zero():
    arrays = small_version(weight=0.0)
    u = user(arrays)
    hits = gather(arrays, u, exact_search(arrays.scoring_matrix))
    cols = candidates(hits)
    x = assemble(arrays, u, hits, cols)
    expected = arrays.scoring_matrix[cols] @ u.vector
    np.testing.assert_allclose(x[:, COL["sum"]], expected, atol=1e-6)


def test_item_stats_and_neighbours_of_a_window():
    cols = np.array([0, 1, 0, 2, 1, 0])
    weights = np.array([1, 1, 1, 1, -1, 1], dtype=float)
    stats = item_stats(cols, weights, np.ones((4, 2)), recent=3)
    np.testing.assert_array_equal(stats[:, 0], [3, 1, 1, 0])  # the negative event not counted
    np.testing.assert_array_equal(stats[:, 1], [1, 0, 1, 0])  # among the last 3 events
    np.testing.assert_array_equal(stats[:, 2], [0, 1, 2, 6])  # events after the newest one
    np.testing.assert_array_equal(stats[:, 3], [5, 4, 2, 6])  # events after the oldest one
    seen = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float))
    knn = item_neighbours(seen).toarray()
    assert knn[0, 1] > 0 and knn[0, 2] == 0 and knn[2].sum() == 0
    assert np.diag(knn).sum() == 0
    assert np.isclose(knn[0, 1], 2 / np.sqrt(3 * 2))


def test_the_docs_feature_table_is_the_code_s():
    page = (Path(__file__).parents[2] / "docs" / "ranking.md").read_text(encoding="utf-8")
    assert feature_table() in page, "docs/ranking.md's feature table is stale"
