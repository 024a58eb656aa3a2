"""Small JSON files beside the model versions that coordinate processes through the model dir.

* ``PINNED`` -- a rollback: every server serves that version until a newer one is published.
* ``builder_status.json`` -- the builder's state, written every second, read by any server.
* ``control/train-<job>.json`` -- refit requests left by servers, taken by the builder.

Each is written atomically (temp file, fsync, rename), so several processes can share them.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import TYPE_CHECKING

from .errors import NoModelError
from .model_store import _VERSION_NAME, write_atomic

if TYPE_CHECKING:
    from .model_store import ModelStore

PINNED_FILE = "PINNED"
STATUS_FILE = "builder_status.json"
CONTROL_DIR = "control"


class ControlFiles:
    """The coordination files of one model directory."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store

    def set_pin(self, name: str | None) -> None:
        """Serve ``name`` instead of CURRENT until the next publish; None removes the pin."""
        if name is None:
            (self.store.root / PINNED_FILE).unlink(missing_ok=True)
            return
        if not (self.store.versions_dir / name / "manifest.json").is_file():
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
        if not _VERSION_NAME.match(str(pin.get("version"))):
            return None
        return pin

    def served_name(self) -> str | None:
        """What servers should serve: the pinned version while its pin holds, else CURRENT."""
        pin = self.pin()
        return pin["version"] if pin else self.store.current_name()

    def write_status(self, status: dict) -> None:
        write_atomic(self.store.root / STATUS_FILE, json.dumps(status).encode())

    def read_status(self) -> dict | None:
        try:
            status = json.loads((self.store.root / STATUS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return status if isinstance(status, dict) else None

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
