"""``DELETE /users/{user}``: erase a user (admin token).

The erasure is recorded on the erasures topic (erasure/requests.py) before the answer: from
then on the builder drops the user's events -- now, and from every window it rebuilds after a
restart or takeover -- and its next version has no row for them. This process forgets the
user at once; every other server process within a poll of its erasures feed (tens of
milliseconds): the user is answered as unknown (popular items, no fresh vector, no seen
list). Events of the user produced after the erasure make them a new user.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, jsonify

from ..erasure.requests import request_erasure
from ..errors import ErasureError
from .access import require_admin_token
from .api import checked_id, server_config, watcher

logger = logging.getLogger(__name__)

bp = Blueprint("users", __name__)


@bp.delete("/users/<path:user>")
def erase_user(user: str):
    """Forget ``user`` everywhere the service keeps them (see docs/security.md)."""
    config = server_config()
    require_admin_token(config)
    user = checked_id(user, "the user id in the path")
    if config.ingest is None:
        abort(503, description="erasing a user needs Kafka: start the server with "
                               "--bootstrap-servers (the erasure is recorded there)")  # fmt: skip
    try:
        position, erasure = request_erasure(config.ingest, config.erasures_topic, user)
    except ErasureError as exc:
        logger.error("an erasure was not recorded: %s", exc)
        abort(503, description=f"the erasure was not recorded, try again: {exc}")
    ledger = watcher().erasures
    if ledger is not None:
        ledger.record(position, erasure)  # this process need not wait for its feed
    return jsonify(
        user=user,
        erased=True,
        erased_at=erasure.erased_at,
        position=position,
        events_before={str(p): o for p, o in sorted(erasure.before.items())},
        topic=config.erasures_topic,
    )
