"""The sequence term through the API: per request and per experiment variant."""

from __future__ import annotations

import pytest

from recommendation_service.artifacts.store import ModelStore
from recommendation_service.experiments.variants import RuleError, load_rules_file
from recommendation_service.training.successors import SequenceParams, successors
from recommendation_service.vectors.sequences import SequenceWeights

from ..conftest import SMALL_ALS
from ..streams import series_model
from .test_rules_and_experiments import make_app

EXPERIMENT = """
[experiment]
name = "order"
salt = "s"
[[experiment.variants]]
name = "bag"
share = 1
sequence_weight = 0
[[experiment.variants]]
name = "order"
share = 1
sequence_weight = 64
sequence_depth = 1
"""


@pytest.fixture(scope="module")
def series_dir(tmp_path_factory):
    _, model, fold = series_model(2, SMALL_ALS)
    snap = model.snapshot
    root = tmp_path_factory.mktemp("series")
    # Published with the term off: requests and variants turn it on.
    params = SequenceParams(weights=SequenceWeights(weight=0.0))
    ModelStore(root).publish(model, fold, successors=successors(snap, params))
    return root, [f"user-{u:05d}" for u in range(200)]


def reasons(client, user: str, query: str = "") -> list[str]:
    response = client.get(f"/recommend?user={user}&n=10{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["reasons"]


def test_a_request_may_turn_the_term_on(series_dir, tmp_path):
    root, users = series_dir
    client = make_app(root, tmp_path, rules="[rules]\n").test_client()
    off = sum("follows_recent" in reasons(client, u) for u in users[:40])
    on = sum("follows_recent" in reasons(client, u, "&sequence_weight=64") for u in users[:40])
    assert off == 0 and on >= 30
    body = client.post("/recommend", json={"user_id": users[0], "sequence_weight": 64}).get_json()
    assert "follows_recent" in [r["reason"] for r in body["recommendations"]]


def test_experiment_variants_compare_sequence_weights_live(series_dir, tmp_path):
    root, users = series_dir
    client = make_app(root, tmp_path, rules="[rules]\n" + EXPERIMENT).test_client()
    by_variant: dict[str, list[bool]] = {"bag": [], "order": []}
    for user in users[:60]:
        body = client.get(f"/recommend?user={user}&n=10").get_json()
        by_variant[body["variant"]].append("follows_recent" in body["reasons"])
    assert len(by_variant["bag"]) >= 10 and not any(by_variant["bag"])
    assert sum(by_variant["order"]) >= 0.8 * len(by_variant["order"])
    described = client.get("/experiments").get_json()["experiment"]["variants"]
    assert {"name": "order", "share": 1.0, "sequence_weight": 64.0, "sequence_depth": 1} in [
        {k: v for k, v in d.items() if k in ("name", "share", "sequence_weight", "sequence_depth")}
        for d in described
    ]


@pytest.mark.parametrize("field", ["sequence_weight = -1", "sequence_depth = 11",
                                   "sequence_weight = 'high'"])  # fmt: skip
def test_bad_variant_sequence_settings_are_refused_at_start(tmp_path, field):
    path = tmp_path / "rules.toml"
    path.write_text("[rules]\n" + EXPERIMENT.replace("sequence_depth = 1", field))
    with pytest.raises(RuleError, match="sequence_"):
        load_rules_file(path)
