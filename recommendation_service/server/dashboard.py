"""``GET /dashboard``: a live operations page, and the JSON endpoints it reads.

The page and its assets (uPlot, vendored with its licence) ship in ``dashboard_static/``:
no CDN, no build step. It polls:

* ``/dashboard/api/stream`` -- the builder's counters over the last hour (events, malformed,
  lag, window size and time span), lag per partition and broker state;
* ``/dashboard/api/models`` -- recent refits (training seconds, users, items, live HR@10), the
  versions on disk, what is served and pinned, a refused version and why, tuning and live
  quality of the served version;
* ``/dashboard/api/serving`` -- cumulative request counts and latency buckets per endpoint,
  answers by status and source, over every worker (the page takes differences);
* ``/dashboard/api/user`` and ``/dashboard/api/item`` -- "try a user": the user's items in the
  window and recommendations with catalog metadata; an item's similar items and partners;
* ``/health`` for the banner.

With ``--admin-token`` the ``/dashboard/api/*`` endpoints need ``Authorization: Bearer``, like
the admin endpoints; the page asks for the token once and keeps it in memory (never in a URL).
"""

from __future__ import annotations

import math
from importlib import resources

from flask import Blueprint, Response, abort, current_app, jsonify, request

from ..artifacts.control_files import ControlFiles
from ..data.catalog import CatalogSnapshot
from ..recommend.queries import bought_together, similar_items
from .access import require_admin
from .api import id_param, model_or_503, n_param, server_config, user_param, watcher
from .experiments_api import impression, read_counts, with_rates

bp = Blueprint("dashboard", __name__)

STATIC = "dashboard_static"
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}


def _asset(name: str) -> Response:
    base = resources.files(__package__).joinpath(STATIC)
    path = base.joinpath(*name.split("/"))
    if ".." in name.split("/") or not path.is_file():
        abort(404, description=f"no dashboard asset {name!r}")
    suffix = "." + name.rsplit(".", 1)[-1]
    response = Response(path.read_bytes(), content_type=_TYPES.get(suffix, "text/plain"))
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/dashboard")
def page():
    """The dashboard page (works offline: every asset is served from the package)."""
    return _asset("index.html")


@bp.get("/dashboard/static/<path:name>")
def asset(name: str):
    """The page's scripts, styles and the vendored chart library (with its LICENSE)."""
    return _asset(name)


@bp.before_request
def _require_token() -> None:
    if request.path.startswith("/dashboard/api/"):
        require_admin(server_config(), "the dashboard's API")


def _control() -> ControlFiles:
    return ControlFiles(watcher().store)


@bp.get("/dashboard/api/stream")
def stream():
    """The builder's counters over the last hour, and its current lag and window."""
    control = _control()
    history = control.read_history() or {"interval": None, "points": [], "refits": []}
    status = control.read_status() or {}
    keys = ("updated_at", "phase", "kafka", "kafka_unreachable_since", "events_consumed",
            "malformed", "window_events", "window_span", "lag", "catalog", "role")  # fmt: skip
    return jsonify(
        interval=history.get("interval"),
        points=history.get("points", []),
        status={k: status.get(k) for k in keys},
    )


@bp.get("/dashboard/api/models")
def models():
    """Recent refits, versions on disk, served / pinned / refused versions."""
    holder = watcher()
    control = _control()
    model = holder.current()
    status = control.read_status() or {}
    history = control.read_history() or {}
    pin = control.pin()
    return jsonify(
        refits=history.get("refits", []),
        served=None if model is None else model.version,
        pinned=None if pin is None else int(str(pin["version"]).lstrip("v")),
        refused={"version": holder.failed_version, "reason": holder.last_error}
        if holder.failed_version is not None
        else None,
        tuning=None if model is None else model.manifest.get("tuning"),
        ranker=None if model is None else model.manifest.get("ranker"),
        live_quality=status.get("live_quality"),
        publish=status.get("publish"),
        attribution=_attribution(),
    )


def _attribution() -> dict | None:
    """What users did with the lists (the builder's tracker), None when it does not run."""
    data = read_counts(server_config().model_dir)
    if data is None:
        return None
    endpoints = data.get("endpoints") or {}
    return {
        "updated_at": data.get("updated_at"),
        "service": with_rates(data.get("service") or {}),
        "endpoints": {name: with_rates(endpoints[name]) for name in sorted(endpoints)},
    }


@bp.get("/dashboard/api/serving")
def serving():
    """Cumulative counts per endpoint (take differences between two reads for rates)."""
    return jsonify(current_app.extensions["recsvc_metrics"].snapshot())


def _metadata(catalog: CatalogSnapshot | None, item: str) -> dict:
    """What the catalog says about an item (empty when unlisted)."""
    row = -1 if catalog is None else catalog.row.get(item, -1)
    if row < 0:
        return {}
    out: dict = {"available": bool(catalog.available[row])}
    code = int(catalog.category[row])
    if code >= 0:
        out["category"] = catalog.categories[code]
    price = float(catalog.price[row])
    if not math.isnan(price):
        out["price"] = price
    a, b = int(catalog.tags_indptr[row]), int(catalog.tags_indptr[row + 1])
    if b > a:
        out["tags"] = [catalog.tags[t] for t in catalog.tags_indices[a:b].tolist()]
    return out


@bp.get("/dashboard/api/user")
def user():
    """A user's items in the window and recommendations, with catalog metadata."""
    uid = user_param()
    n = n_param()
    model = model_or_503()
    catalog = watcher().catalog
    state = model.user_state(uid)
    seen = [] if state is None else [model.item_ids[c] for c in state.seen.tolist()]
    seen += sorted(state.seen_new) if state else []
    rec = model.recommend(uid, n, catalog=catalog)
    return jsonify(
        user=uid,
        known=state is not None,
        window_items=[{"item": i, **_metadata(catalog, i)} for i in seen[:200]],
        window_item_count=len(seen),
        recommendations=[
            {"item": i, "score": s, "reason": r, **_metadata(catalog, i)}
            for i, s, r in zip(rec.items, rec.scores, rec.reasons)
        ],
        source=rec.source,
        model_version=model.version,
        **impression(None, uid, rec.items, "dashboard_user"),
    )


@bp.get("/dashboard/api/item")
def item():
    """An item's catalog entry, similar items and bought-together partners."""
    iid = id_param("item", "item")
    model = model_or_503()
    catalog = watcher().catalog
    similar = similar_items(model, iid, 10, catalog=catalog)
    together = bought_together(model, iid, 10)
    return jsonify(
        item=iid,
        known=similar is not None,
        metadata=_metadata(catalog, iid),
        similar=similar or [],
        bought_together=(together or {}).get("associations", []),
        model_version=model.version,
        **impression(None, None, [e["item_id"] for e in similar or []], "dashboard_item"),
    )
