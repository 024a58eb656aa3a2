"""The online API beyond GET /recommend: ingest, candidate ranking, scoring, similar items,
bought-together and popular items. JSON in and out; errors are JSON 4xx saying what was expected.
"""

from __future__ import annotations

import math

from flask import Blueprint, abort, current_app, jsonify, request

from ..errors import MalformedEvent
from ..recommend.queries import bought_together, predict, rank_candidates, similar_items
from ..recommend.retrieval import popular as popular_items
from ..rules.item_rules import ItemRules
from .access import require_app
from .api import checked_id, id_param, model_or_503, n_param, rules_param, server_config, watcher
from .experiments_api import impression
from .ingest import sample_to_event
from .request_rules import (
    Plan,
    named_rules,
    promote_spec,
    ranker_of,
    sequence_of,
    shape_of,
    with_variant,
)

bp = Blueprint("online", __name__)


def _json_object() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="the body must be a JSON object (Content-Type: application/json)")
    return body


def _id(value: object, name: str) -> str:
    return checked_id(value, f"'{name}'")


def _id_list(value: object, name: str) -> list[str]:
    limit = server_config().max_n
    if not isinstance(value, list) or len(value) > limit:
        abort(400, description=f"'{name}' must be a list of at most {limit} ids")
    return [_id(v, f"{name}[{k}]") for k, v in enumerate(value)]


def _rules(body: dict) -> ItemRules:
    """Item rules from JSON fields (the query parameters of GET /recommend, as JSON)."""
    lists = {
        key: _id_list(body[key], key) if key in body else []
        for key in ("exclude", "tags", "exclude_tags")
    }
    category = body.get("category")
    max_price = body.get("max_price")
    if max_price is not None and (
        isinstance(max_price, bool)
        or not isinstance(max_price, (int, float))
        or not math.isfinite(max_price)
    ):
        abort(400, description="'max_price' must be a finite number")
    include = body.get("include_unavailable", False)
    if not isinstance(include, bool):
        abort(400, description="'include_unavailable' must be true or false")
    rule = body.get("rule", [])
    names = _id_list([rule] if isinstance(rule, str) else rule, "rule")
    return ItemRules(
        exclude=frozenset(lists["exclude"]),
        category=None if category is None else _id(category, "category"),
        tags=tuple(lists["tags"]),
        exclude_tags=tuple(lists["exclude_tags"]),
        max_price=None if max_price is None else float(max_price),
        include_unavailable=include,
        named=named_rules(names, _params(body), "'rule'"),
    )


def _params(body: dict) -> dict:
    params = body.get("params", {})
    if not isinstance(params, dict):
        abort(400, description="'params' must be an object of the named rules' $parameters")
    return params


def _plan(body: dict, user: str) -> Plan:
    """Rules, diversity, promotion and the experiment variant from JSON fields."""
    promote = body.get("promote")
    if promote is not None and not isinstance(promote, str):
        abort(400, description="'promote' must be '<rule>:<slots>'")
    spec = promote_spec(promote, _params(body), "'promote'") if promote else None
    diversify = body.get("diversify")
    if diversify is not None and not isinstance(diversify, str):
        abort(400, description="'diversify' must be 'category' or a catalog attribute name")
    weight, depth = sequence_of(body.get("sequence_weight"), body.get("sequence_depth"), "field")
    shape = shape_of(diversify, body.get("max_per"), spec)
    ranker = ranker_of(body.get("ranker"), "field")
    return with_variant(Plan(_rules(body), shape, sequence_weight=weight, sequence_depth=depth,
                             ranker=ranker), user)  # fmt: skip


def _top_k(body: dict) -> int:
    k = body.get("top_k", 10)
    max_n = server_config().max_n
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max_n:
        abort(400, description=f"'top_k' must be an integer from 1 to {max_n}")
    return k


@bp.post("/online/data/add")
def add_data():
    """Validate samples and publish the valid ones to the interactions topic."""
    config = server_config()
    require_app(config)
    publisher = current_app.extensions.get("recsvc_publisher")
    if publisher is None:
        abort(503, description="ingest is off: start the server with --bootstrap-servers")
    samples = _json_object().get("samples")
    if not isinstance(samples, list) or not samples:
        abort(400, description="'samples' must be a non-empty list")
    if len(samples) > config.max_batch:
        abort(413, description=f"at most {config.max_batch} samples per request")
    events, indexes, rejected = [], [], []
    for k, sample in enumerate(samples):
        try:
            events.append(sample_to_event(sample, config.actions, config.max_id_length))
            indexes.append(k)
        except (MalformedEvent, ValueError) as exc:
            rejected.append({"index": k, "reason": str(exc)})
    failures = publisher.publish(events) if events else []
    undelivered = [
        {"index": indexes[k], "reason": f"not delivered: {err}"}
        for k, err in enumerate(failures)
        if err is not None
    ]
    accepted = len(events) - len(undelivered)
    body = {"accepted": accepted, "rejected": rejected + undelivered}
    if not accepted:
        # Nothing taken: a client checking only the status must not read this as success.
        # 400 when every sample was invalid, 503 when valid ones could not be delivered.
        status = 503 if undelivered else 400
        body.update(error="Bad Request" if status == 400 else "Service Unavailable",
                    message="no sample was accepted; see 'rejected' for each reason",
                    status=status)  # fmt: skip
        return jsonify(body), status
    return jsonify(body), 200


@bp.post("/recommend")
def recommend_post():
    """Rank the given candidates for a user, or behave like GET /recommend without them."""
    body = _json_object()
    user = _id(body.get("user_id"), "user_id")
    k = _top_k(body)
    model = model_or_503()
    extra: dict = {}
    if "candidate_items" in body:
        require_app(server_config())
        exclude_seen = body.get("exclude_seen", False)
        if not isinstance(exclude_seen, bool):
            abort(400, description="'exclude_seen' must be true or false")
        result = rank_candidates(
            model, user, _id_list(body["candidate_items"], "candidate_items"), k, exclude_seen
        )
        recommendations, source = result["ranked"], result["source"]
        extra = impression(None, user, [r["item_id"] for r in recommendations], "candidates")
    else:
        plan = _plan(body, user)
        explore = plan.explore or server_config().explore
        rec = model.recommend(
            user, k, plan.rules, watcher().catalog, plan.shape, explore,
            plan.sequence(model.sequence), plan.ranker,
        )  # fmt: skip
        recommendations = [
            {"item_id": i, "score": s, "reason": r}
            for i, s, r in zip(rec.items, rec.scores, rec.reasons)
        ]
        source = rec.source
        extra = impression(plan, user, rec.items)
    current_app.extensions["recsvc_metrics"].recommendations.labels(source).inc()
    return jsonify(
        user_id=user,
        recommendations=recommendations,
        source=source,
        model_version=model.version,
        **extra,
    )


@bp.post("/predict")
def predict_scores():
    """Scores in [0, 1]: each item's percentile rank among all items for the user."""
    require_app(server_config())
    body = _json_object()
    model = model_or_503()
    if "pairs" in body:
        pairs = body["pairs"]
        if not isinstance(pairs, list) or not pairs or len(pairs) > server_config().max_n:
            abort(400, description="'pairs' must be a non-empty list of {user_id, item_id}")
        out = []
        for k, pair in enumerate(pairs):
            if not isinstance(pair, dict):
                abort(400, description=f"pairs[{k}] must be an object with user_id and item_id")
            user, item = _id(pair.get("user_id"), "user_id"), _id(pair.get("item_id"), "item_id")
            (score,), source = predict(model, user, [item])
            out.append({"user_id": user, "item_id": item, "score": score, "source": source})
        return jsonify(predictions=out, model_version=model.version)
    user = _id(body.get("user_id"), "user_id")
    items = _id_list(body.get("item_ids"), "item_ids")
    scores, source = predict(model, user, items)
    return jsonify(
        predictions=[
            {"user_id": user, "item_id": i, "score": s, "source": source}
            for i, s in zip(items, scores)
        ],
        model_version=model.version,
    )


@bp.get("/similar")
def similar():
    """Items most similar to an item (cosine of item factors)."""
    item = id_param("item", "item")
    n = n_param()
    rules = rules_param()
    model = model_or_503()
    items = similar_items(model, item, n, rules, watcher().catalog)
    if items is None:
        abort(404, description=f"item {item!r} is not in the served model")
    ids = [entry["item_id"] for entry in items]
    return jsonify(item=item, similar=items, model_version=model.version,
                   **impression(None, None, ids, "similar"))  # fmt: skip


@bp.get("/items/<path:item>/associations")
def associations(item: str):
    """Items bought together with this one in the window's baskets."""
    item = _id(item, "item")
    n = n_param()
    model = model_or_503()
    result = bought_together(model, item, n)
    if result is None:
        abort(404, description=f"item {item!r} is not in the served model")
    ids = [entry["item_id"] for entry in result["associations"]]
    return jsonify({**result, "model_version": model.version,
                    **impression(None, None, ids, "associations")})  # fmt: skip


@bp.get("/popular")
def popular():
    """The window's most popular items (distinct users)."""
    n = n_param()
    model = model_or_503()
    rec = popular_items(model, n)
    return jsonify(items=rec.items, scores=rec.scores, model_version=model.version,
                   **impression(None, None, rec.items, "popular"))  # fmt: skip
