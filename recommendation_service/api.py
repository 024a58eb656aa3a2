"""HTTP endpoints: recommendations, health, the served model's manifest, and metrics."""

from __future__ import annotations

import time

from flask import Blueprint, Response, abort, current_app, jsonify, request

from .config import ServerConfig
from .model_watcher import ModelWatcher
from .recommender import ServedModel

bp = Blueprint("api", __name__)


def _watcher() -> ModelWatcher:
    return current_app.extensions["recsvc_watcher"]


def _config() -> ServerConfig:
    return current_app.config["RECSVC"]


def _model_or_503() -> ServedModel:
    # Read the reference once: the whole response then comes from one model version.
    model = _watcher().model
    if model is None:
        abort(503, description="no model has been published yet; the builder is still training")
    return model


def _user_param() -> str:
    user = request.args.get("user")
    max_length = _config().max_id_length
    if user is None or not user.strip():
        abort(400, description="query parameter 'user' is required: a non-empty user id")
    if len(user) > max_length:
        abort(400, description=f"query parameter 'user' must be at most {max_length} characters")
    return user


def _n_param() -> int:
    raw = request.args.get("n")
    max_n = _config().max_n
    if raw is None:
        return min(10, max_n)
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= max_n or not raw.strip().lstrip("+").isdigit():
        abort(400, description=f"query parameter 'n' must be an integer from 1 to {max_n}")
    return n


@bp.get("/recommend")
def recommend():
    """Top-N items for a user, best first, excluding items the user already has."""
    user = _user_param()
    n = _n_param()
    model = _model_or_503()
    result = model.recommend(user, n)
    current_app.extensions["recsvc_metrics"].recommendations.labels(result.source).inc()
    return jsonify(
        user=user,
        items=result.items,
        scores=result.scores,
        source=result.source,
        model_version=model.version,
        as_of=result.as_of,
    )


@bp.get("/health")
def health():
    """Liveness and readiness: 200 once a model is served, 503 before."""
    watcher = _watcher()
    model = watcher.model
    body = {
        "status": "ok" if model is not None else "no_model",
        "model_version": model.version if model else None,
        "model_age_seconds": (
            round(time.time() - model.manifest["created_ts"], 3) if model else None
        ),
        "last_error": watcher.last_error,
    }
    return jsonify(body), (200 if model is not None else 503)


@bp.get("/model")
def model_manifest():
    """The manifest of the model this process serves (version, times, parameters, offsets)."""
    model = _model_or_503()
    return jsonify({**model.manifest, "updates_applied": model.applied_update})


@bp.get("/metrics")
def metrics():
    """Prometheus text format, aggregated over every worker process."""
    body, content_type = current_app.extensions["recsvc_metrics"].exposition()
    return Response(body, content_type=content_type)
