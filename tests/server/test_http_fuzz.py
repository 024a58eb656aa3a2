"""Hostile HTTP input: whatever arrives, the API answers a documented JSON status, never a 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_online_api import TOKEN, model_root, online  # noqa: F401  (fixtures)

DOCUMENTED = {200, 202, 400, 401, 403, 404, 405, 413, 503}
texts = st.text(max_size=300)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(texts, children, max_size=5),
    max_leaves=20,
)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def check(response) -> None:
    assert response.status_code in DOCUMENTED, response.status_code
    if response.status_code != 200 or response.mimetype == "application/json":
        body = response.get_json()
        assert isinstance(body, dict)
        if response.status_code >= 400:
            assert body["status"] == response.status_code and body["message"]


@FUZZ
@given(
    path=st.sampled_from(["/recommend", "/similar", "/popular", "/items/x/associations"]),
    params=st.dictionaries(st.sampled_from(["user", "item", "n", "x"]), texts, max_size=3),
)
def test_query_parameters(online, path, params):  # noqa: F811
    client, _ = online
    check(client.get(path, query_string=params))


@FUZZ
@given(
    path=st.sampled_from(
        ["/recommend", "/predict", "/online/data/add", "/model/rollback", "/online/training/start"]
    ),
    body=json_values,
)
def test_json_bodies(online, path, body):  # noqa: F811
    client, _ = online
    response = client.post(
        path,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    check(response)
    client.post(
        "/model/rollback", json={"version": "latest"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_raw_bodies(online, raw):  # noqa: F811
    client, _ = online
    for path in ("/recommend", "/predict", "/online/data/add"):
        check(client.post(path, data=raw, content_type="application/json"))


@FUZZ
@given(item=st.text(min_size=1, max_size=400).filter(lambda s: "/" not in s and s.strip()))
def test_path_ids(online, item):  # noqa: F811
    client, _ = online
    check(client.get(f"/items/{item}/associations"))


@pytest.mark.parametrize("size", [2 << 20])
def test_oversized_body_is_413(online, size):  # noqa: F811
    client, _ = online
    response = client.post(
        "/recommend", data=b"{" + b" " * size + b"}", content_type="application/json"
    )
    assert response.status_code == 413 and response.get_json()["status"] == 413
