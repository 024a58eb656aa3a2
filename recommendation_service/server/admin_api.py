"""Model and training endpoints: info, versions, rollback, training status and refit requests.

Write endpoints need ``Authorization: Bearer <token>`` with the server's ``--admin-token``;
without a configured token they are refused (403). Rollback and refit requests are small files
in the model directory, so they reach every server process and the builder alike.
"""

from __future__ import annotations

import json
import uuid

from flask import Blueprint, abort, jsonify, request

from ..artifacts.control_files import ControlFiles
from ..errors import ModelLoadError, NoModelError
from .access import require_admin_token
from .api import model_or_503, server_config, watcher

bp = Blueprint("admin", __name__)


def _require_token() -> None:
    require_admin_token(server_config())


@bp.get("/model/info")
def model_info():
    """What is served: version, times, parameters, sizes, training seconds, evaluation."""
    model = model_or_503()
    m = model.manifest
    store = watcher().store
    control = ControlFiles(store)
    pin = control.pin()
    status = control.read_status() or {}
    return jsonify(
        version=m["version"],
        trained_at=m["created_at"],
        window_size=m["window_size"],
        n_users=m["n_users"],
        n_items=m["n_items"],
        training_seconds=m["training_seconds"],
        params=m["params"],
        realtime=m.get("realtime"),
        ann=m.get("ann"),
        evaluation=m.get("evaluation"),
        tuning=m.get("tuning"),
        ranker=_ranker(model),
        live_quality=status.get("live_quality"),
        updates_applied=model.applied_update,
        pinned=pin is not None,
    )


def _ranker(model) -> dict:
    """The ranker the version ranks by, and what its refit measured (versions made without the
    rank stage: the sum, and why)."""
    info = dict(model.manifest.get("ranker") or {"reason": "the version has no rank stage"})
    info.pop("features", None)
    info["serving"] = model.rank_stage.chosen
    return info


@bp.get("/model/versions")
def model_versions():
    """The versions on disk, newest first."""
    store = watcher().store
    current, served = store.current_name(), store.served_name()
    out = []
    for version in reversed(store.versions()):
        name = f"v{version:08d}"
        try:
            m = json.loads((store.versions_dir / name / "manifest.json").read_text())
        except (OSError, ValueError):
            out.append({"version": version, "readable": False})
            continue
        out.append(
            {
                "version": version,
                "created_at": m.get("created_at"),
                "window_size": m.get("window_size"),
                "current": name == current,
                "served": name == served,
                "readable": True,
            }
        )
    return jsonify(versions=out)


@bp.post("/model/rollback")
def rollback():
    """Serve an older version until the next publish; {"version": "latest"} rolls forward."""
    _require_token()
    body = request.get_json(silent=True)
    version = body.get("version") if isinstance(body, dict) else None
    store = watcher().store
    if version == "latest":
        ControlFiles(store).set_pin(None)
        return jsonify(serving=store.served_name(), pinned=False)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        abort(400, description="'version' must be a version number on disk, or \"latest\"")
    try:
        ControlFiles(store).set_pin(f"v{version:08d}")
    except (NoModelError, ModelLoadError) as exc:
        abort(404, description=str(exc))
    return jsonify(
        serving=store.served_name(),
        pinned=True,
        until='the next published version, or {"version": "latest"}',
    )


@bp.get("/online/training/status")
def training_status():
    """The builder's state: training or not, events since the last refit, jobs."""
    status = ControlFiles(watcher().store).read_status()
    if status is None:
        abort(503, description="no builder status yet: is the builder running on this model dir?")
    job = request.args.get("job")
    if job is not None:
        state = status.get("jobs", {}).get(job)
        if state is None:
            abort(404, description=f"no refit job {job!r}: the builder keeps its last 100 jobs")
        return jsonify(job=job, **state)
    return jsonify(status)


@bp.post("/online/training/start")
def training_start():
    """Ask the builder to refit now; returns a job id to follow in the status."""
    _require_token()
    job = uuid.uuid4().hex
    ControlFiles(watcher().store).request_training(job)
    return jsonify(job=job, state="requested", status=f"/online/training/status?job={job}"), 202
