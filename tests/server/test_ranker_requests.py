"""The rank stage through the API: the ranker a request or an experiment variant asks for,
and what ``/model/info`` says of the served version's ranker."""

from __future__ import annotations

import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.experiments.variants import RuleError, load_rules_file

from ..conftest import SMALL_ALS
from ..streams import ranked_series_model
from .test_rules_and_experiments import make_app

EXPERIMENT = """
[experiment]
name = "rankers"
salt = "s"
[[experiment.variants]]
name = "sum"
share = 1
ranker = "sum"
[[experiment.variants]]
name = "learned"
share = 1
ranker = "learned"
"""


@pytest.fixture(scope="module")
def ranked_dir(tmp_path_factory):
    _, model, fold, succ, stage = ranked_series_model(4, SMALL_ALS, trees=30)
    root = tmp_path_factory.mktemp("ranked")
    ModelStore(root).publish(model, fold, successors=succ, rank_stage=stage)
    return root, [f"user-{u:05d}" for u in range(200)]


def test_a_request_picks_its_ranker_and_bad_names_are_refused(ranked_dir, tmp_path):
    root, users = ranked_dir
    client = make_app(root, tmp_path, rules="[rules]\n").test_client()
    served = client.get(f"/recommend?user={users[0]}&n=10").get_json()
    learned = client.get(f"/recommend?user={users[0]}&n=10&ranker=learned").get_json()
    summed = client.get(f"/recommend?user={users[0]}&n=10&ranker=sum").get_json()
    assert served["items"] == learned["items"] != summed["items"]
    body = client.post("/recommend", json={"user_id": users[0], "ranker": "sum"}).get_json()
    assert [r["item_id"] for r in body["recommendations"]] == summed["items"]
    bad = client.get(f"/recommend?user={users[0]}&ranker=best")
    assert bad.status_code == 400
    assert "'ranker' must be one of auto, sum, learned, linear, trees" in bad.get_json()["message"]
    assert client.post("/recommend", json={"user_id": users[0], "ranker": 3}).status_code == 400


def test_model_info_says_which_ranker_serves_and_why(ranked_dir, tmp_path):
    root, _ = ranked_dir
    client = make_app(root, tmp_path, rules="[rules]\n").test_client()
    info = client.get("/model/info").get_json()["ranker"]
    assert info["serving"] == info["chosen"] in ("linear", "trees")
    assert info["validation"][info["chosen"]]["ndcg"] > info["validation"]["sum"]["ndcg"]
    assert "beats the sum" in info["reason"] and "features" not in info


def test_experiment_variants_compare_rankers_live(ranked_dir, tmp_path):
    root, users = ranked_dir
    client = make_app(root, tmp_path, rules="[rules]\n" + EXPERIMENT).test_client()
    by_variant: dict[str, list[str]] = {}
    for user in users[:40]:
        body = client.get(f"/recommend?user={user}&n=10").get_json()
        asked = "sum" if body["variant"] == "sum" else "learned"
        alone = client.get(f"/recommend?user={user}&n=10&ranker={asked}").get_json()
        assert body["items"] == alone["items"]
        by_variant.setdefault(body["variant"], []).append(user)
    assert set(by_variant) == {"sum", "learned"}
    variants = client.get("/experiments").get_json()["experiment"]["variants"]
    assert {v["name"]: v["ranker"] for v in variants} == {"sum": "sum", "learned": "learned"}


def test_a_variant_with_an_unknown_ranker_is_refused(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text("[rules]\n" + EXPERIMENT.replace('ranker = "learned"', 'ranker = "best"'))
    with pytest.raises(RuleError, match="ranker must be one of"):
        load_rules_file(path)
