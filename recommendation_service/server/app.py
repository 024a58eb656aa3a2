"""The Flask application factory of the recommendation server."""

from __future__ import annotations

import logging
import time

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from ..artifacts.store import ModelStore
from ..config.server import ServerConfig
from ..data.erasures import ErasureLedger
from ..erasure.feed import ErasureFeed
from ..rules.expressions import RuleError
from .admin_api import bp as admin_bp
from .api import bp
from .dashboard import bp as dashboard_bp
from .experiments_api import ImpressionPublisher, TrackerCollector
from .experiments_api import bp as experiments_bp
from .ingest import EventPublisher
from .json_provider import OrjsonProvider
from .metrics import ServerMetrics
from .model_watcher import ModelWatcher
from .online_api import bp as online_bp
from .update_feed import UpdateFeed
from .users_api import bp as users_bp

logger = logging.getLogger(__name__)


def create_app(config: ServerConfig, watcher: ModelWatcher | None = None) -> Flask:
    """Build the WSGI app serving models from ``config.model_dir``.

    Parameters
    ----------
    config
        Server settings.
    watcher
        The model holder to use; by default one is created and its polling thread started.
    """
    app = Flask(__name__)
    app.config["RECSVC"] = config
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    metrics = ServerMetrics.create()
    if watcher is None:
        watcher = ModelWatcher(
            ModelStore(config.model_dir), config.reload_interval, ef=config.ann_ef
        )
        watcher.on_refresh = lambda model: metrics.set_model(
            model.version, model.manifest["created_ts"]
        )
        if config.ingest is not None:
            _follow_erasures(watcher, config)
        watcher.start()
        if config.updates_topic is not None:
            watcher.feed = UpdateFeed(config.ingest, config.updates_topic, watcher).start()
    app.extensions["recsvc_watcher"] = watcher
    app.extensions["recsvc_metrics"] = metrics
    app.json = OrjsonProvider(app)
    app.register_blueprint(bp)
    app.register_blueprint(online_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(experiments_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(users_bp)
    app.extensions["recsvc_tracker_collector"] = TrackerCollector(config.model_dir)
    if config.ingest is not None:
        app.extensions["recsvc_publisher"] = EventPublisher(config.ingest)
        app.extensions["recsvc_impressions"] = ImpressionPublisher(
            config.ingest, config.impressions_topic
        )

    @app.before_request
    def start_timer() -> None:
        g.recsvc_start = time.perf_counter()

    @app.after_request
    def record(response):
        # The route pattern, not the path: unknown paths must not create new label values.
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        start = g.get("recsvc_start")
        if start is not None:
            metrics.observe(endpoint, response.status_code, time.perf_counter() - start)
        return response

    @app.errorhandler(HTTPException)
    def json_http_error(exc: HTTPException):
        response = jsonify(error=exc.name, message=_message(app, exc), status=exc.code)
        response.status_code = exc.code or 500
        # Keep protocol headers such as Allow (405) that the exception carries.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(RuleError)
    def rule_error(exc: RuleError):
        # A named rule met a request parameter it cannot use (e.g. text where a number goes).
        response = jsonify(error="Bad Request", message=str(exc), status=400)
        response.status_code = 400
        return response

    @app.errorhandler(Exception)
    def json_internal_error(exc: Exception):
        logger.exception("unhandled error")
        response = jsonify(error="Internal Server Error", message="internal error", status=500)
        response.status_code = 500
        return response

    return app


#: How long a starting worker waits to have read every erasure before it serves anyway.
ERASURES_WAIT = 5.0


def _follow_erasures(watcher: ModelWatcher, config: ServerConfig) -> None:
    """Read the erasures before the first version is served, so a worker that starts never
    answers an erased user from an older version (a broker that does not answer within
    ``ERASURES_WAIT`` is logged; the feed keeps trying)."""
    watcher.honour_erasures(ErasureLedger())
    feed = ErasureFeed(config.ingest, config.erasures_topic, watcher.erasures.record)
    watcher.erasure_feed = feed.start()
    if not feed.caught_up.wait(ERASURES_WAIT):
        logger.warning(
            "serving before the erasures topic %s was read (%s); erased users may show until "
            "it is", config.erasures_topic, feed.state,
        )  # fmt: skip


def _message(app: Flask, exc: HTTPException) -> str:
    """The error's own description, or -- for Werkzeug's generic ones -- what was expected."""
    if exc.description != type(exc).description:
        return exc.description
    if isinstance(exc, RequestEntityTooLarge):
        limit = app.config["MAX_CONTENT_LENGTH"]
        return f"the request body is over the limit of {limit} bytes; send smaller batches"
    if isinstance(exc, NotFound) and request.url_rule is None:
        paths = sorted({r.rule for r in app.url_map.iter_rules() if r.endpoint != "static"})
        return f"no such path {request.path!r}; the API's paths (see /openapi.json): " + ", ".join(
            paths
        )
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        return f"{request.method} is not allowed here; use " + " or ".join(exc.valid_methods)
    return exc.description
