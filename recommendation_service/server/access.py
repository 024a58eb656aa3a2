"""Who may call what: tokens for the endpoints that reveal one user's data or write events.

Three kinds of endpoint:

* **open** -- ``GET /recommend``, ``/similar``, ``/popular``, ``/health``, ``/livez``,
  ``/model``, ``/metrics``, ...: anyone who reaches the server.
* **app** -- ``POST /online/data/add`` (writes events), ``POST /predict`` and ``POST
  /recommend`` with ``candidate_items`` (score items the caller names for a user): the app
  token (``--app-token``) or the admin token.
* **admin** -- the dashboard's API (a user's window items among them), rollback and
  training: the admin token (``--admin-token``).

A configured app token is required on the app endpoints, and a configured admin token on
the dashboard's, on any address. Without them, those endpoints stay open on a loopback bind
(``127.0.0.1``, the default: only this host reaches them); on any other bind they answer 403
naming the option that opens them (app endpoints take the admin token when only that one is
set). Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from flask import abort, request

from ..config.server import ServerConfig

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether a bind address is reachable from this host only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it resolves beyond this host


def _presented(tokens: list[str]) -> bool:
    given = request.headers.get("Authorization", "").encode()
    return any(hmac.compare_digest(given, f"Bearer {t}".encode()) for t in tokens)


def require_app(config: ServerConfig) -> None:
    """Abort unless the request may write events or score a user's named items: the app
    token when one is configured (the admin token also works); on a non-loopback bind
    without one, the admin token; on loopback without one, anyone."""
    if config.app_token is not None:
        if not _presented([config.app_token, *filter(None, [config.admin_token])]):
            abort(401, description="send 'Authorization: Bearer <app token>'")
    elif not is_loopback(config.host):
        if config.admin_token is None:
            where = f"{request.path} is closed on {config.host}"
            abort(403, description=f"{where}: start the server with --app-token and send it "
                                   "as a Bearer token")  # fmt: skip
        if not _presented([config.admin_token]):
            abort(401, description="send 'Authorization: Bearer <app token>' (start the server "
                                   "with --app-token; the admin token also works)")  # fmt: skip


def require_admin(config: ServerConfig, what: str) -> None:
    """Abort unless the request carries the admin token (or, with none configured, the
    server listens on loopback and ``what`` is open there)."""
    if config.admin_token is not None:
        if not _presented([config.admin_token]):
            abort(401, description="send 'Authorization: Bearer <admin token>'")
    elif not is_loopback(config.host):
        abort(403, description=f"{what} is closed on {config.host}: start the server with "
                               "--admin-token and send it as a Bearer token")  # fmt: skip


def require_admin_token(config: ServerConfig) -> None:
    """Abort unless the request carries the admin token; with none configured the endpoint
    is off on every bind (rollback, training)."""
    if config.admin_token is None:
        abort(403, description="admin endpoints are off: start the server with --admin-token")
    if not _presented([config.admin_token]):
        abort(401, description="send 'Authorization: Bearer <admin token>'")


def warn_if_open(config: ServerConfig) -> None:
    """One warning at start when a non-loopback bind leaves token-guarded endpoints closed
    (or, for the app endpoints, open to admin-token holders only)."""
    if is_loopback(config.host):
        return
    closed = []
    if config.admin_token is None:
        closed.append("the dashboard's API (--admin-token)")
    if config.app_token is None:
        closed.append("POST /online/data/add, /predict and candidate ranking (--app-token)")
    if closed:
        logger.warning(
            "listening on %s: without its token, %s refuse requests (403, or 401 without the "
            "admin token)", config.host, " and ".join(closed),
        )  # fmt: skip
