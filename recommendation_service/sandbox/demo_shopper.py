"""The demo's shoppers: they ask the server for lists and click (sometimes buy) what they
like, sending the list's ``recommendation_id`` with each event, so the demo's experiment has
results to report.

A shopper clicks a list item in their favourite category with probability ``CLICK`` (higher
near the top of the list) and buys a clicked item with probability ``BUY``. Nothing here
knows the variants: any difference ``recsvc experiment report`` shows comes from what each
variant put in the lists.
"""

from __future__ import annotations

import json
import logging
import random
import urllib.error
import urllib.request

logger = logging.getLogger(__name__)

CLICK = 0.25
BUY = 0.2


def _call(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def shop(url: str, favourite: dict[str, str], stop, rate: float = 5.0) -> None:
    """Until ``stop`` (a StopFlag) is set: ``rate`` lists per second, each for a random user
    of ``favourite``."""
    rng = random.Random(7)
    users = sorted(favourite)
    while not stop.wait(1.0 / rate):
        user = rng.choice(users)
        try:
            body = _call(f"{url}/recommend?user={user}&n=10")
            rid = body.get("recommendation_id")
            if rid is None:
                continue
            samples = []
            for position, item in enumerate(body["items"]):
                liked = item.startswith(favourite[user] + "-")
                if liked and rng.random() < CLICK / (1 + position / 5):
                    samples.append({"user_id": user, "item_id": item, "action_type": "click",
                                    "recommendation_id": rid})  # fmt: skip
                    if rng.random() < BUY:
                        samples.append({**samples[-1], "action_type": "purchase"})
                    break
            if samples:
                _call(f"{url}/online/data/add", {"samples": samples})
        except (urllib.error.URLError, OSError, ValueError) as exc:
            logger.debug("demo shopper: %s", exc)  # the server may be restarting; go on
