"""The builder's recent past, for the dashboard: its counters every few seconds for the last
hour, and one line per published model.

Kept in memory and written (atomically, ``ControlFiles.write_history``) to
``builder_history.json`` in the model directory after each sample, where servers read it for
``GET /dashboard/api/stream`` and ``/dashboard/api/models``. Counters are cumulative (events
consumed, malformed messages); readers take differences for rates, so a missed sample loses
no events.
"""

from __future__ import annotations

import time
from collections import deque


class BuilderHistory:
    """Counter samples every ``every`` seconds (``keep`` of them) and the last refits.

    Parameters
    ----------
    every
        Seconds between samples.
    keep
        Samples kept (720 at 5 s: one hour).
    keep_refits
        Published models kept.
    """

    def __init__(self, every: float = 5.0, keep: int = 720, keep_refits: int = 200) -> None:
        self.every = every
        self.points: deque[dict] = deque(maxlen=keep)
        self.refits: deque[dict] = deque(maxlen=keep_refits)
        self._next = 0.0
        self._last_version: int | None = None

    def due(self, now: float) -> bool:
        return now >= self._next

    def record(self, now: float, point: dict, manifest: dict | None, quality: dict) -> None:
        """Add a sample (and the refit of ``manifest`` when it is new)."""
        self._next = now + self.every
        self.points.append({"t": round(time.time(), 3), **point})
        if manifest is not None and manifest["version"] != self._last_version:
            self._last_version = manifest["version"]
            service = quality.get("service") or {}
            popularity = quality.get("popularity") or {}
            rules = quality.get("sequential rules") or {}
            tuning = manifest.get("tuning") or {}
            self.refits.append(
                {
                    "version": manifest["version"],
                    "trained_at": manifest["created_ts"],
                    "training_seconds": manifest["training_seconds"],
                    "n_users": manifest.get("n_users"),
                    "n_items": manifest.get("n_items"),
                    "window_size": manifest.get("window_size"),
                    "tuned": bool(tuning.get("winner")),
                    "live_hit_rate": service.get("hit_rate"),
                    "popularity_hit_rate": popularity.get("hit_rate"),
                    "rules_hit_rate": rules.get("hit_rate"),
                    "sequence": manifest.get("sequence"),
                }
            )

    def to_dict(self) -> dict:
        return {"interval": self.every, "points": list(self.points), "refits": list(self.refits)}
