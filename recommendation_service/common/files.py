"""Atomic writes and version names: what the model store and the control files both rely on.

A reader must see either the old or the new content of a file, never a mix: everything is
written to a temporary file, fsynced, renamed over the target, and the directory fsynced.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

#: The subdirectory of a model directory that holds the published versions.
VERSIONS_DIR = "versions"
VERSION_NAME = re.compile(r"^v(\d{8,})$")


def version_name(version: int) -> str:
    return f"v{version:08d}"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new content only."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
