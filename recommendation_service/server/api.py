"""HTTP endpoints: recommendations, health, the served model's manifest, and metrics."""

from __future__ import annotations

import time
from importlib import resources

from flask import Blueprint, Response, abort, current_app, g, jsonify, request

from ..config.server import ServerConfig
from ..data.events import check_id
from ..errors import MalformedEvent
from ..recommend.served_model import ServedModel
from ..rules.item_rules import NO_RULES, ItemRules
from .experiments_api import impression
from .model_watcher import ModelWatcher
from .request_rules import (
    Plan,
    finite_number,
    named_rules,
    promote_spec,
    ranker_of,
    sequence_of,
    shape_of,
    with_variant,
)

bp = Blueprint("api", __name__)


def watcher() -> ModelWatcher:
    return current_app.extensions["recsvc_watcher"]


def server_config() -> ServerConfig:
    return current_app.config["RECSVC"]


def model_or_503() -> ServedModel:
    # Read the reference once: the whole response then comes from one model version.
    model = watcher().current()
    if model is None:
        abort(503, description="no model has been published yet; the builder is still training")
    return model


class QueryArgs(dict):
    """The query string read once: each parameter's first value, and :meth:`getlist` for all.

    Werkzeug's ``request.args.get`` raises and catches an exception for every absent
    parameter, and a ``/recommend`` asks about a dozen that are usually absent.
    """

    def __init__(self, lists: dict[str, list[str]]) -> None:
        super().__init__((name, values[0]) for name, values in lists.items() if values)
        self.lists = lists

    def getlist(self, name: str) -> list[str]:
        return self.lists.get(name, [])


def query_args() -> QueryArgs:
    """This request's :class:`QueryArgs` (parsed on first use)."""
    args = g.get("recsvc_args")
    if args is None:
        args = g.recsvc_args = QueryArgs(request.args.to_dict(flat=False))
    return args


def checked_id(value: object, name: str) -> str:
    """An id from a request, or a JSON 400 saying what an id must be (the events' rule)."""
    try:
        return check_id(value, name, server_config().max_id_length)
    except MalformedEvent as exc:
        abort(400, description=exc.detail or f"{name} must be a non-empty string or integer id")


def id_param(name: str, what: str) -> str:
    """Query parameter ``name``: a checked ``what`` id, or a JSON 400 saying it is required."""
    raw = query_args().get(name)
    if raw is None or not raw.strip():
        abort(400, description=f"query parameter '{name}' is required: a non-empty {what} id")
    return checked_id(raw, f"query parameter '{name}'")


def user_param() -> str:
    return id_param("user", "user")


def n_param() -> int:
    raw = query_args().get("n")
    max_n = server_config().max_n
    if raw is None:
        return min(10, max_n)
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= max_n or not raw.strip().lstrip("+").isdigit():
        abort(400, description=f"query parameter 'n' must be an integer from 1 to {max_n}")
    return n


def _id_list(name: str) -> list[str]:
    """A comma-separated (or repeated) query parameter of ids or names."""
    values = [v.strip() for raw in query_args().getlist(name) for v in raw.split(",")]
    return [checked_id(v, f"query parameter '{name}'") for v in values if v]


def rules_param() -> ItemRules:
    """The request's item rules: exclude, category, tags, exclude_tags, max_price,
    include_unavailable and named rules (see rules/item_rules.py, rules/expressions.py)."""
    args = query_args()
    max_price = finite_number(args.get("max_price"), "query parameter 'max_price'")
    flag = args.get("include_unavailable", "false").lower()
    if flag not in ("true", "false", "1", "0"):
        abort(400, description="query parameter 'include_unavailable' must be true or false")
    category = args.get("category")
    return ItemRules(
        exclude=frozenset(_id_list("exclude")),
        category=checked_id(category, "query parameter 'category'") if category else None,
        tags=tuple(_id_list("tags")),
        exclude_tags=tuple(_id_list("exclude_tags")),
        max_price=max_price,
        include_unavailable=flag in ("true", "1"),
        named=named_rules(_id_list("rule"), args, "query parameter 'rule'"),
    )


#: The query parameters of a plain request: nothing but the user and the list's length.
PLAIN_PARAMETERS = frozenset({"user", "n"})
#: What a plain request's parameters make of a plan (tests/server check that the full parse
#: of such a query gives the same): most requests are plain, and the parse costs ~20 µs.
PLAIN_PLAN = Plan(NO_RULES)


def plan_param(user: str) -> Plan:
    """Rules, diversity, promotion and the experiment variant of a GET request."""
    args = query_args()
    if args.keys() <= PLAIN_PARAMETERS:
        return with_variant(PLAIN_PLAN, user)
    return with_variant(_parsed_plan(args), user)


def _parsed_plan(args: QueryArgs) -> Plan:
    """The plan the query parameters ask for, before any experiment variant."""
    promote = args.get("promote")
    spec = promote_spec(promote, args, "query parameter 'promote'") if promote else None
    shape = shape_of(args.get("diversify"), args.get("max_per"), spec)
    weight, depth = sequence_of(
        args.get("sequence_weight"), args.get("sequence_depth"), "query parameter"
    )
    return Plan(
        rules_param(), shape, sequence_weight=weight, sequence_depth=depth,
        ranker=ranker_of(args.get("ranker"), "query parameter"),
    )  # fmt: skip


@bp.get("/recommend")
def recommend():
    """Top-N items for a user, best first, excluding items the user already has and items the
    request's rules (or the catalog's availability) rule out."""
    user = user_param()
    n = n_param()
    plan = plan_param(user)
    model = model_or_503()
    explore = plan.explore or server_config().explore
    result = model.recommend(
        user, n, plan.rules, watcher().catalog, plan.shape, explore, plan.sequence(model.sequence),
        plan.ranker,
    )  # fmt: skip
    current_app.extensions["recsvc_metrics"].recommendations.labels(result.source).inc()
    return jsonify(
        user=user,
        items=result.items,
        scores=result.scores,
        source=result.source,
        reasons=result.reasons,
        model_version=model.version,
        as_of=result.as_of,
        **impression(plan, user, result.items),
    )


#: A builder status older than this means the builder is not running (it writes every second).
BUILDER_STALE_SECONDS = 15.0


def _builder_health(holder: ModelWatcher) -> dict:
    """The builder's state as its status file tells: ok, kafka_unreachable, kafka_stalled (behind
    the partition end, nothing arriving), publish_failing (writes to the model directory fail),
    stale (no status for a while) or unknown."""
    from ..artifacts.control_files import ControlFiles

    control = ControlFiles(holder.store)
    try:
        waiting = control.standbys(BUILDER_STALE_SECONDS)
    except OSError:
        waiting = []
    standbys = [s.get("builder_id") for s in waiting]
    hosts = sorted({str(s.get("host")) for s in waiting if s.get("host")})
    status = control.read_status()
    if status is None:
        return {"state": "unknown", "standbys": standbys, "standby_hosts": hosts}
    age = round(time.time() - float(status.get("updated_at", 0)), 3)
    if age > BUILDER_STALE_SECONDS:
        state = "stale"
    elif status.get("kafka") in ("unreachable", "stalled"):
        state = f"kafka_{status['kafka']}"
    elif _failing(status.get("publish")) or _failing(status.get("update_files")):
        state = "publish_failing"
    else:
        state = "ok"
    body = {
        "state": state,
        "status_age_seconds": age,
        "active": status.get("builder_id"),
        "phase": status.get("phase"),
        "standbys": standbys,
        "standby_hosts": hosts,
    }
    lease = status.get("lease")
    if isinstance(lease, dict):  # which lease, and with the Kafka lease its generation
        body.update(host=lease.get("host"), lease=lease.get("kind"),
                    generation=lease.get("generation"))  # fmt: skip
    if state == "publish_failing":
        failing = status["publish"] if _failing(status.get("publish")) else status["update_files"]
        body["publish_error"] = failing.get("last_error")
    return body


def _failing(writes) -> bool:
    return isinstance(writes, dict) and writes.get("state") == "failing"


@bp.get("/health")
def health():
    """Liveness and readiness: 200 once a model is served, 503 before."""
    holder = watcher()
    model = holder.current()
    builder = _builder_health(holder)
    store = _store_health(holder) if server_config().model_store is not None else None
    feed = holder.feed.status() if holder.feed is not None else None
    # A refused version means the newest model on disk is not the one served.
    healthy = (
        builder["state"] in ("ok", "unknown")
        and holder.failed_version is None
        and (store is None or store["state"] == "ok")
        and (feed is None or feed["state"] != "unreachable")
    )
    body = {
        "status": ("ok" if healthy else "degraded") if model is not None else "no_model",
        "model_version": model.version if model else None,
        "model_age_seconds": (
            round(time.time() - model.manifest["created_ts"], 3) if model else None
        ),
        "last_error": holder.last_error,
        "refused_version": holder.failed_version,
        "builder": builder,
    }
    if store is not None:
        body["model_store"] = store
    if feed is not None:
        body["updates_topic"] = feed
    if holder.erasure_feed is not None:
        body["erasures"] = {**holder.erasure_feed.status(), "users": len(holder.erasures)}
    return jsonify(body), (200 if model is not None else 503)


def _store_health(holder: ModelWatcher) -> dict:
    """This host's copy of the object store: ok, unreachable (serving the local copy), or
    unknown (no download has run yet)."""
    from ..artifacts.control_files import ControlFiles
    from ..artifacts.store_sync import SYNC_STATUS_FILE

    state = ControlFiles(holder.store).read_json(SYNC_STATUS_FILE)
    if state is None:
        return {"state": "unknown"}
    keys = ("store", "state", "since", "last_ok", "last_error", "version")
    return {k: state.get(k) for k in keys}


@bp.get("/livez")
def livez():
    """Liveness: the process answers (no model, file or broker is read). For an orchestrator's
    liveness probe -- ``/health`` is the readiness probe -- and as the floor a request on
    this server stack costs (tests/benchmarks/live_serving.py compares /recommend to it)."""
    return jsonify(status="alive")


@bp.get("/model")
def model_manifest():
    """The manifest of the model this process serves (version, times, parameters, offsets)."""
    model = model_or_503()
    return jsonify({**model.manifest, "updates_applied": model.applied_update})


@bp.get("/metrics")
def metrics():
    """Prometheus text format, aggregated over every worker process."""
    body, content_type = current_app.extensions["recsvc_metrics"].exposition(
        current_app.extensions["recsvc_tracker_collector"]
    )
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 description of every endpoint (kept in the repository)."""
    spec = resources.files(__package__).joinpath("openapi.json").read_text("utf-8")
    return Response(spec, content_type="application/json")
