"""Small JSON files beside the model versions that coordinate processes through the model dir.

* ``PINNED`` -- a rollback: every server serves that version until a newer one is published.
* ``builder_status.json`` -- the builder's state, written every second, read by any server.
* ``builder_history.json`` -- its counters over the last hour and its recent refits (dashboard).
* ``control/train-<job>.json`` -- refit requests left by servers, taken by the builder.
* ``control/standby-<id>.json`` -- a standby builder waiting for the active one to go.

Each is written atomically (temp file, fsync, rename), so several processes can share them.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Protocol

from ..common.files import VERSION_NAME, VERSIONS_DIR, write_atomic
from ..errors import NoModelError

PINNED_FILE = "PINNED"
STATUS_FILE = "builder_status.json"
HISTORY_FILE = "builder_history.json"
#: Per-variant counts of the running experiment (builder/observability/attribution_tracker.py).
EXPERIMENTS_FILE = "experiments.json"
CONTROL_DIR = "control"


class ModelDirectory(Protocol):
    """What the control files need of a model directory: where it is, and which version its
    ``CURRENT`` names (a :class:`~recommendation_service.artifacts.store.ModelStore` is one)."""

    root: Path

    def current_name(self) -> str | None: ...


class ControlFiles:
    """The coordination files of one model directory."""

    def __init__(self, store: ModelDirectory) -> None:
        self.store = store

    def set_pin(self, name: str | None) -> None:
        """Serve ``name`` instead of CURRENT until the next publish; None removes the pin."""
        if name is None:
            (self.store.root / PINNED_FILE).unlink(missing_ok=True)
            return
        if not (self.store.root / VERSIONS_DIR / name / "manifest.json").is_file():
            raise NoModelError(f"no version {name} on disk")
        pin = {"version": name, "while_current": self.store.current_name(), "at": time.time()}
        write_atomic(self.store.root / PINNED_FILE, json.dumps(pin).encode())

    def pin(self) -> dict | None:
        """The active pin, or None (a pin ends when a newer version becomes CURRENT)."""
        try:
            pin = json.loads((self.store.root / PINNED_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(pin, dict) or pin.get("while_current") != self.store.current_name():
            return None
        if not VERSION_NAME.match(str(pin.get("version"))):
            return None
        return pin

    def served_name(self) -> str | None:
        """What servers should serve: the pinned version while its pin holds, else CURRENT."""
        pin = self.pin()
        return pin["version"] if pin else self.store.current_name()

    def write_status(self, status: dict) -> None:
        write_atomic(self.store.root / STATUS_FILE, json.dumps(status).encode())

    def write_history(self, history: dict) -> None:
        """The builder's recent counters and refits (builder/observability/history.py), for
        the dashboard."""
        write_atomic(self.store.root / HISTORY_FILE, json.dumps(history).encode())

    def read_history(self) -> dict | None:
        return self.read_json(HISTORY_FILE)

    def read_status(self) -> dict | None:
        return self.read_json(STATUS_FILE)

    def read_experiments(self) -> dict | None:
        return self.read_json(EXPERIMENTS_FILE)

    def read_json(self, name: str) -> dict | None:
        """A JSON object file of the model directory, or None when absent or unreadable."""
        try:
            data = json.loads((self.store.root / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_standby(self, builder_id: str, status: dict) -> None:
        """Announce a standby builder (it rewrites this every second while it waits)."""
        (self.store.root / CONTROL_DIR).mkdir(parents=True, exist_ok=True)
        write_atomic(self._standby_path(builder_id), json.dumps(status).encode())

    def remove_standby(self, builder_id: str) -> None:
        self._standby_path(builder_id).unlink(missing_ok=True)

    def standbys(self, max_age: float) -> list[dict]:
        """Standby builders that announced themselves within ``max_age`` seconds."""
        found = []
        now = time.time()
        for path in sorted((self.store.root / CONTROL_DIR).glob("standby-*.json")):
            try:
                status = json.loads(path.read_text(encoding="utf-8"))
                if now - float(status["updated_at"]) <= max_age:
                    found.append(status)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a standby that just went, or a file being replaced
        return found

    def _standby_path(self, builder_id: str):
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", builder_id)
        return self.store.root / CONTROL_DIR / f"standby-{safe}.json"

    def request_training(self, job_id: str) -> None:
        """Leave a refit request for the builder (any server process may call this)."""
        (self.store.root / CONTROL_DIR).mkdir(parents=True, exist_ok=True)
        write_atomic(self.store.root / CONTROL_DIR / f"train-{job_id}.json", b"{}")

    def take_training_requests(self) -> list[str]:
        """Job ids of pending refit requests, removing them (the builder calls this)."""
        try:
            names = os.listdir(self.store.root / CONTROL_DIR)
        except FileNotFoundError:
            return []
        jobs = []
        for name in names:
            m = re.match(r"^train-([0-9a-f]{32})\.json$", name)
            if m:
                (self.store.root / CONTROL_DIR / name).unlink(missing_ok=True)
                jobs.append(m.group(1))
        return jobs
