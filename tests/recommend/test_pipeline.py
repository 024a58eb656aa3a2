"""The request path as stages: what each stage owns, and what the pipeline guarantees."""

from __future__ import annotations

import time
import weakref

import numpy as np
import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.data.catalog import (
    CATALOG_FILE,
    CatalogEntry,
    CatalogSnapshot,
    write_catalog,
)
from recommendation_service.recommend import explain, promotion, queries, terms
from recommendation_service.recommend.request import (
    ExploreParams,
    ListShape,
    Query,
    RecommendRequest,
)
from recommendation_service.recommend.result import Recommendation
from recommendation_service.recommend.served_model import ServedModel
from recommendation_service.rules.expressions import compile_rule
from recommendation_service.rules.item_rules import ItemRules

from ..conftest import category

ON_SALE = compile_rule("on_sale", "'sale' in tags")


def load(model_dir) -> ServedModel:
    store = ModelStore(model_dir)
    manifest, arrays = store.read_version(store.current_name())
    return ServedModel(manifest, arrays)


@pytest.fixture
def served(model_dir) -> ServedModel:
    return load(model_dir)


def first_user(model: ServedModel) -> str:
    return model.user_ids[0]


@pytest.fixture
def catalog(served, tmp_path) -> CatalogSnapshot:
    now = time.time()
    entries = {
        item: CatalogEntry(
            category=category(item),
            price=float(k % 100),
            tags=("sale",) if k % 5 == 0 else (),
            attributes={"brand": f"b{k % 7}"},
        )
        for k, item in enumerate(served.item_ids)
    }
    entries.update({f"fresh-{k}": CatalogEntry(created_at=now - 60 * k) for k in range(20)})
    write_catalog(tmp_path, entries, {})
    return CatalogSnapshot.read(tmp_path / CATALOG_FILE)


def every_kind_of_request(model: ServedModel, catalog: CatalogSnapshot) -> None:
    users = [*list(model.user_ids)[:20], "nobody"]
    shapes = [
        ListShape(),
        ListShape("category", 1),
        ListShape("brand", 2, promote=(ON_SALE, ()), promote_slots=2),
    ]
    for user in users:
        for shape in shapes:
            model.recommend(user, 10, ItemRules(max_price=70), catalog, shape,
                            ExploreParams(share=1.0))  # fmt: skip
        model.recommend(user, 5, ItemRules(exclude=frozenset(list(model.item_ids)[:3])))
        queries.predict(model, user, list(model.item_ids)[:5])
        queries.rank_candidates(model, user, list(model.item_ids)[:30], 10)
    queries.similar_items(model, model.item_ids[0], 10, ItemRules(category="c1"), catalog)


def test_requests_set_no_attribute_on_the_model_from_outside(served, catalog):
    before = set(vars(served))
    every_kind_of_request(served, catalog)
    # Only the version's own lazily derived arrays may appear (cached properties).
    assert set(vars(served)) - before <= {"popularity_by_column", "item_norms"}


def test_a_version_is_freed_when_dropped_without_waiting_for_the_garbage_collector(
    model_dir, catalog
):
    # The pipeline and its caches hold no reference back to the version's arrays: a server
    # swapping versions releases the old one's memory maps at once.
    model = load(model_dir)
    every_kind_of_request(model, catalog)
    gone = weakref.ref(model)
    del model
    assert gone() is None


def test_caches_belong_to_the_version_s_pipeline(model_dir, catalog):
    store = ModelStore(model_dir)
    manifest, arrays = store.read_version(store.current_name())
    a, b = ServedModel(manifest, arrays), ServedModel(manifest, arrays)
    a.recommend(first_user(a), 10, catalog=catalog)
    assert a.pipeline.masks.catalog_rows(catalog) is a.pipeline.masks.catalog_rows(catalog)
    assert b.pipeline is not a.pipeline and b.pipeline.masks._catalog_rows is None


def test_a_score_is_the_sum_of_its_terms_and_its_reason_the_largest(served):
    user = first_user(served)
    query = Query(RecommendRequest(user, 10), served.user_state(user), served.sequence)
    candidates = terms.Candidates.of(served, np.arange(50))
    total, parts = terms.score(candidates, query)
    als, similar = terms.als(candidates, query), terms.similarity(candidates, query)
    follows = terms.sequence(candidates, query)
    assert np.array_equal(parts, np.stack([als, similar, follows]))
    assert np.allclose(total, als + similar + follows)
    # The first two terms are the dot product retrieval ranks the catalog by.
    assert np.allclose(als + similar, candidates.rows @ query.state.vector, rtol=1e-5, atol=1e-6)
    names = [name for name, _ in terms.TERMS]
    assert explain.reasons(parts) == [names[k] for k in np.argmax(parts, axis=0)]
    nothing, empty = terms.score(terms.Candidates.of(served, np.arange(0)), query)
    assert len(nothing) == 0 and explain.reasons(empty) == []


def test_promoted_items_go_in_before_the_first_lower_score_without_reordering_the_rest():
    rest = Recommendation(["a", "b", "c"], [3.0, 1.0, 2.0], "model", reasons=["model"] * 3)
    promoted = Recommendation(["p", "q"], [2.5, 0.5], "model", reasons=["model"] * 2)
    merged = promotion.merge(rest, promoted)
    assert merged.items == ["a", "p", "b", "c", "q"]
    assert merged.reasons == ["model", "promoted", "model", "model", "promoted"]
    assert promotion.merge(rest, None) is rest


def test_shaping_stages_get_more_candidates_from_the_pipeline_not_the_model(served, catalog):
    asked = []
    pipeline = served.pipeline
    ranked = pipeline.ranked

    def spy(model, query, k, **kwargs):
        asked.append(sorted(kwargs))
        return ranked(model, query, k, **kwargs)

    pipeline.ranked = spy
    shape = ListShape("category", 1, promote=(ON_SALE, ()), promote_slots=2)
    rec = served.recommend(first_user(served), 10, catalog=catalog, shape=shape)
    assert rec.reasons.count("promoted") == 2
    # One promotion query, the main list, and diversity's refills that avoid full values.
    assert asked[0] == ["extra_rule"] and asked[1] == []
    assert all(a == ["avoid"] for a in asked[2:])
