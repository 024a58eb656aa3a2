"""The model store: versioned model directories published atomically, without pickle.

Layout of a model directory::

    CURRENT                    name of the served version, replaced atomically
    versions/v00000007/        one complete, immutable version
        manifest.json          version, times, window size, offsets, parameters, checksums
        user_ids.*.npy         UTF-8 blob + offsets of the user ids (row order), and the rows
                               in byte order of their ids, for lookups (see id_table.py)
        item_ids.*.npy         the same for the item ids, column order
        seen_indptr.npy        CSR rows of each user's items in the window
        seen_indices.npy
        popular_items.npy      item columns best first, and their scores
        popular_scores.npy
        scoring_matrix.npy     float32 (n_items, 2*factors): [Y, beta * Y normalised], Y being
                               the ALS item factors
        user_vectors.npy       float32 (n_users, 2*factors): [x, q] per user, x being the ALS
                               user factors and q the similarity term
        ann_index.faiss        large catalogs only: the index over the scoring rows of the kind
                               the probe chose (vectors/ann.py; its kind in the manifest)
        assoc_*.npy            items bought together: top partners per item (CSR) with
        item_baskets.npy       co-occurrence counts, and baskets per item
    updates/v00000007/         fresh user vectors written between refits, for that version
        00000001.npz ...       user ids, vectors, seen items, last event time; scoring rows
                               of items the version does not know yet (no pickle)

A version is written into a temporary directory, every file fsynced, then renamed into
``versions/``; only then is ``CURRENT`` replaced (temp file, fsync, rename). A reader that
follows ``CURRENT`` therefore only ever sees a complete version, and checks each file's SHA-256
and shape against the manifest before using it. Update files are written to a temporary name,
fsynced and renamed, and are numbered so readers apply them in order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import numpy as np

from ..common.files import VERSION_NAME, VERSIONS_DIR, fsync_dir, version_name, write_atomic
from ..errors import LeaseLost, ModelLoadError, NoModelError
from ..vectors.ann import INDEX_FILE, write_index
from .control_files import ControlFiles
from .update_files import check_update

#: Manifest ``ann.type`` values with an index file: "hnsw" (the augmented graph; versions of
#: earlier releases have no ``kind``) and "faiss" (any kind, named by ``ann.kind``).
INDEX_TYPES = ("hnsw", "faiss")
logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CURRENT_FILE = "CURRENT"
UPDATES_DIR = "updates"
_UPDATE_NAME = re.compile(r"^(\d{8,})\.npz$")


class _Writer:
    """Makes ``np.save`` write through ``write()``, whose errors carry the errno (ENOSPC,
    EFBIG, EROFS); on a real file it uses ``ndarray.tofile``, whose error only says how many
    bytes were written."""

    def __init__(self, fh) -> None:
        self.write = fh.write


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Publishable(Protocol):
    """What the store can publish: a trained model that gives its arrays by file stem and the
    manifest fields describing it (``TrainedModel`` in training/trained_model.py)."""

    def version_content(
        self, fold, assoc, successors, rank_stage
    ) -> tuple[dict[str, np.ndarray], dict]: ...


class ModelStore:
    """Publishes, lists, prunes and opens model versions under ``root``.

    Parameters
    ----------
    root
        The model directory shared by the builder (writer) and the servers (readers).
    keep
        Number of newest versions kept when pruning.
    writer
        Id of the builder that publishes through this store, recorded in each manifest.

    Attributes
    ----------
    lease_generation
        The writer's builder-lease generation (builder/lease/kafka_lease.py), recorded in each
        manifest; None with the directory lease.
    floor
        Versions are numbered above it (the newest in the object store when the lease was
        taken), so numbers keep increasing across builders on different directories.
    guard
        Called before a version or update becomes visible; False means the lease is not
        confirmed, and the write is refused with :class:`LeaseLost`.
    """

    def __init__(self, root: Path | str, keep: int = 3, writer: str | None = None) -> None:
        self.root = Path(root)
        self.keep = keep
        self.writer = writer
        self.versions_dir = self.root / VERSIONS_DIR
        self.lease_generation: int | None = None
        self.floor = 0
        self.guard: Callable[[], bool] | None = None

    def _check_lease(self, what: str) -> None:
        if self.guard is not None and not self.guard():
            raise LeaseLost(f"the builder lease is not confirmed; {what} not written")

    # -- writer side -------------------------------------------------------------------
    def versions(self) -> list[int]:
        """Version numbers on disk, ascending."""
        if not self.versions_dir.is_dir():
            return []
        found = (VERSION_NAME.match(p.name) for p in self.versions_dir.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def publish(
        self,
        model: Publishable,
        fold=None,
        offsets: Mapping[str, Mapping[int, int]] | None = None,
        index=None,
        assoc=None,
        tuning: dict | None = None,
        successors=None,
        ann_probe: dict | None = None,
        rank_stage=None,
    ) -> dict:
        """Write ``model`` as the next version, make it current, prune old ones.

        Parameters
        ----------
        model
            The trained model and the snapshot it came from (training/trained_model.py).
        fold
            Fold-in state for ``model`` (scoring matrix, users' vectors); by default one with
            the default realtime settings.
        offsets
            ``{topic: {partition: next offset}}`` of the events the snapshot contains.
        index
            An approximate index over the scoring matrix (see vectors/ann.py), for large
            catalogs.
        assoc
            Items bought together in the window's baskets.
        tuning
            What the refit's settings search tried and chose (see tuning.py), if it ran.
        successors
            The window's sequential rules and users' recent items (training/successors.py).
        ann_probe
            Which index kind and breadth search the version best, and what each kind found
            (vectors/ann_probe.py); servers search ``index`` at its ``ef``. Kept when the
            probe chose exact search and no index is published.
        rank_stage
            The rank stage's arrays and rankers (training/ranker_refit.py); without it the
            version ranks by the sum of its score terms.

        Returns
        -------
        dict
            The manifest that was written.
        """
        self._check_lease("version")
        arrays, fields = model.version_content(fold, assoc, successors, rank_stage)
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        existing = self.versions()
        version = max(existing[-1] if existing else 0, self.floor) + 1
        tmp_dir = self.versions_dir / f".tmp-{uuid.uuid4().hex}"
        tmp_dir.mkdir()
        try:
            files = {}
            for stem, array in arrays.items():
                path = tmp_dir / f"{stem}.npy"
                with open(path, "wb") as fh:
                    np.save(_Writer(fh), np.ascontiguousarray(array), allow_pickle=False)
                    fh.flush()
                    os.fsync(fh.fileno())
                files[stem] = {
                    "sha256": _sha256(path),
                    "shape": list(array.shape),
                    "dtype": str(array.dtype),
                }
            ann = None
            if index is not None:
                path = tmp_dir / INDEX_FILE
                write_index(index, path)
                with open(path, "rb+") as fh:
                    os.fsync(fh.fileno())
                ann = {
                    # Servers of earlier releases read "hnsw" as the augmented graph, the one
                    # kind they know, and search any other kind's version exactly.
                    "type": "hnsw" if index.kind == "hnsw_l2aug" else "faiss",
                    **index.describe(),
                    "file": INDEX_FILE,
                    "bytes": path.stat().st_size,
                    "sha256": _sha256(path),
                }
                if ann_probe is not None:
                    ann["ef"] = int(ann_probe["ef"])
            now = time.time()
            manifest = {
                "format": FORMAT_VERSION,
                "version": version,
                "name": version_name(version),
                "created_at": datetime.fromtimestamp(now, timezone.utc).isoformat(),
                "created_ts": now,
                "offsets": {
                    t: {str(p): o for p, o in parts.items()} for t, parts in (offsets or {}).items()
                },
                "ann": ann,
                "ann_probe": ann_probe,
                "tuning": tuning,
                **fields,
                "builder_id": self.writer,
                "builder_host": socket.gethostname(),
                "lease_generation": self.lease_generation,
                "files": files,
            }
            write_atomic(tmp_dir / "manifest.json", json.dumps(manifest, indent=2).encode())
            fsync_dir(tmp_dir)
            self._check_lease(version_name(version))
            final = self.versions_dir / version_name(version)
            os.rename(tmp_dir, final)
            fsync_dir(self.versions_dir)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        # Training took seconds to minutes: the lease may have gone meanwhile.
        self._check_lease(f"CURRENT (naming {version_name(version)})")
        write_atomic(self.root / CURRENT_FILE, (version_name(version) + "\n").encode())
        self.prune()
        return manifest

    def prune(self) -> None:
        """Delete all but the ``keep`` newest versions, and leftovers of failed publishes."""
        keep = {self.current_name(), (ControlFiles(self).pin() or {}).get("version")}
        for version in self.versions()[: -self.keep]:
            name = version_name(version)
            if name in keep:
                continue
            # Rename first so no reader can open a half-deleted version by its name.
            doomed = self.versions_dir / f".trash-{name}-{uuid.uuid4().hex}"
            os.rename(self.versions_dir / name, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
            shutil.rmtree(self.root / UPDATES_DIR / name, ignore_errors=True)
        for leftover in self.versions_dir.glob(".t*-*"):
            if leftover.is_dir() and time.time() - leftover.stat().st_mtime > 3600:
                shutil.rmtree(leftover, ignore_errors=True)

    def write_update(self, name: str, seq: int, arrays: dict[str, np.ndarray]) -> Path:
        """Write update number ``seq`` for version ``name`` atomically."""
        self._check_lease("update")
        directory = self.root / UPDATES_DIR / name
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"{seq:08d}.npz"
        tmp = directory / f".{seq:08d}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return final

    # -- reader side -------------------------------------------------------------------
    def served_name(self) -> str | None:
        """What servers should serve: a rollback's pinned version while it holds, else CURRENT."""
        return ControlFiles(self).served_name()

    def update_numbers(self, name: str, after: int = 0) -> list[int]:
        """Numbers of the update files of version ``name`` greater than ``after``, ascending."""
        try:
            entries = os.listdir(self.root / UPDATES_DIR / name)
        except FileNotFoundError:
            return []
        found = (_UPDATE_NAME.match(e) for e in entries)
        return sorted(n for n in (int(m.group(1)) for m in found if m) if n > after)

    def read_update(self, name: str, seq: int) -> dict[str, np.ndarray]:
        """Load one update file (no pickle).

        Raises
        ------
        ModelLoadError
            If it is unreadable or its arrays do not fit together.
        """
        path = self.root / UPDATES_DIR / name / f"{seq:08d}.npz"
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
            check_update(arrays)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise ModelLoadError(f"bad update {name}/{seq:08d}.npz: {exc}") from exc
        return arrays

    def current_name(self) -> str | None:
        """Name of the current version, or None before the first publish."""
        try:
            name = (self.root / CURRENT_FILE).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"cannot read {self.root / CURRENT_FILE}: {exc}") from exc
        if not VERSION_NAME.match(name):
            raise ModelLoadError(f"{CURRENT_FILE} names an invalid version {name!r}")
        return name

    def read_version(self, name: str | None = None) -> tuple[dict, dict[str, np.ndarray]]:
        """Load and verify one version (the current one by default).

        Returns
        -------
        (manifest, arrays)
            Arrays are memory-mapped read-only, so processes share their pages.

        Raises
        ------
        NoModelError
            If nothing has been published yet.
        ModelLoadError
            If the version is missing, corrupt or inconsistent with its manifest.
        """
        name = name or self.current_name()
        if name is None:
            raise NoModelError(f"no model has been published to {self.root} yet")
        directory = self.versions_dir / name
        try:
            manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read manifest of {name}: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
            raise ModelLoadError(f"{name}: unsupported manifest format")
        arrays = {}
        try:
            for stem, meta in manifest["files"].items():
                path = directory / f"{stem}.npy"
                if _sha256(path) != meta["sha256"]:
                    raise ModelLoadError(f"{name}/{stem}.npy: checksum mismatch")
                # A plain ndarray view of the mapping: np.memmap slicing costs ~1 us per call.
                array = np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))
                if list(array.shape) != meta["shape"] or str(array.dtype) != meta["dtype"]:
                    raise ModelLoadError(f"{name}/{stem}.npy: shape or dtype differs from manifest")
                arrays[stem] = array
            ann = manifest.get("ann") or {}
            if ann.get("type") in INDEX_TYPES and _sha256(directory / INDEX_FILE) != ann["sha256"]:
                raise ModelLoadError(f"{name}/{INDEX_FILE}: checksum mismatch")
        except ModelLoadError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"cannot load {name}: {exc}") from exc
        return manifest, arrays

    def index_file(self, manifest: dict) -> tuple[Path, str] | None:
        """The approximate index file of a version read by :meth:`read_version` and its kind
        (vectors/ann.py), if it has one.

        Versions published before the HNSW index (``"type": "ivf"``) have none: their items
        are searched exactly. An ``hnsw`` index without a kind is the augmented graph.
        """
        ann = manifest.get("ann") or {}
        if ann.get("type") not in INDEX_TYPES:
            return None
        kind = str(ann.get("kind") or "hnsw_l2aug")
        return self.versions_dir / manifest["name"] / INDEX_FILE, kind
