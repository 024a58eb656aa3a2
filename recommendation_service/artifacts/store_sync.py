"""Mirroring a model directory to and from object storage (object_store.py).

The builder publishes into its local model directory as always, and an **uploader** copies
each new version there (files, then the manifest), then ``CURRENT``, then the side files.
Each server host keeps a local model directory too -- ``--model-dir`` becomes a cache -- and a
**downloader** copies the version ``CURRENT`` (and ``PINNED``) names into it: files into a
temporary directory, each checked against the manifest's SHA-256, renamed into ``versions/``,
then the local ``CURRENT`` replaced. The server workers keep reading the local directory, so
loading, verification, rollback and hot reload are unchanged; when the store is unreachable
they keep serving what the cache holds, and ``store_sync.json`` (read by ``/health``) says so.

With the Kafka builder lease the uploader writes through a :class:`~.store_lease.StoreFence`
(store_lease.py): nothing while the lease is unconfirmed, manifests only where none exists,
``CURRENT`` only on the ETag it last wrote. Downloaders also mirror the standbys' announcements.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path

from ..common.files import VERSION_NAME, fsync_dir, write_atomic
from ..common.threads import BackgroundLoop
from ..errors import LeaseLost
from .control_files import CONTROL_DIR
from .object_store import SIDE_FILES, ObjectStore, StoreConflict, StoreUnreachable
from .store_lease import CURRENT_KEY, STANDBYS_PREFIX, StoreFence, current_text, parse_current

logger = logging.getLogger(__name__)

SYNC_STATUS_FILE = "store_sync.json"


def version_files(manifest: dict) -> list[tuple[str, str]]:
    """(file name, sha256) of every file a manifest names, besides itself."""
    out = [(f"{stem}.npy", meta["sha256"]) for stem, meta in manifest["files"].items()]
    if manifest.get("ann"):
        out.append((manifest["ann"]["file"], manifest["ann"]["sha256"]))
    return out


class StoreSync(BackgroundLoop):
    """One direction of the mirror, run by :meth:`start` on a daemon thread.

    Parameters
    ----------
    root
        The local model directory.
    store
        The object store.
    upload
        True on the builder (local -> store), False on a server host (store -> local).
    interval
        Seconds between two passes.
    keep
        Versions kept in the local cache (downloads only).
    fence
        The builder's claim on the store under the Kafka lease (uploads only; None with the
        directory lease).
    """

    def __init__(
        self, root: Path, store: ObjectStore, upload: bool, interval: float = 0.5, keep: int = 3,
        fence: StoreFence | None = None,
    ) -> None:  # fmt: skip
        self.root, self.store, self.upload = Path(root), store, upload
        self.interval, self.keep, self.fence = interval, keep, fence
        self._passes = 0
        self._mirrored: set[str] = set()  # standby files copied from the store
        self.state = {"store": str(store.location), "direction": "up" if upload else "down",
                      "state": "starting", "since": time.time(), "last_ok": None,
                      "last_error": None, "version": None}  # fmt: skip
        self._sent: dict[str, tuple] = {}  # side file -> (mtime_ns, size) uploaded
        self._seen: dict[str, str | None] = {}  # side file -> etag downloaded
        self._done: set[str] = set()  # versions already mirrored
        self._fetched: dict[str, str | None] = {}  # version -> manifest ETag downloaded
        self._kicked = threading.Event()
        super().__init__("store-sync")

    def stop(self, timeout: float | None = None) -> None:
        self._kicked.set()  # out of the wait between passes
        super().stop(timeout)

    def kick(self) -> None:
        """Start the next pass now (the builder just published: hosts wait for the upload)."""
        self._kicked.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._kicked.wait(self.interval)
            self._kicked.clear()

    def run_once(self) -> bool:
        """One pass; True when the store answered. Never raises for store trouble."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            version = self._push() if self.upload else self._pull()
        except LeaseLost as exc:
            why = "not uploading to the model store: %s"
            return self._failed(exc, "withheld", logging.WARNING, why)
        except StoreUnreachable as exc:
            why = "model store unreachable (%s); serving from the local copy"
            return self._failed(exc, "unreachable", logging.ERROR, why)
        except (OSError, ValueError, KeyError) as exc:
            # A half-written local file or a damaged manifest: try again next pass.
            return self._failed(exc, None, logging.WARNING, "model store sync: %s")
        if self.state["state"] != "ok":
            logger.info("model store %s reachable", self.store.location)
            self.state.update(state="ok", since=time.time())
        self.state.update(last_ok=time.time(), version=version)
        self._write_state()
        return True

    def _failed(self, exc: Exception, state: str | None, level: int, message: str) -> bool:
        """Record a failed pass. A ``state`` is logged once, when entered; None keeps the
        state and logs every pass."""
        if state is None:
            logger.log(level, message, exc)
        elif self.state["state"] != state:
            logger.log(level, message, exc)
            self.state.update(state=state, since=time.time())
        self.state["last_error"] = str(exc)
        self._write_state()
        return False

    def _write_state(self) -> None:
        try:
            write_atomic(self.root / SYNC_STATUS_FILE, json.dumps(self.state).encode())
        except OSError as exc:
            logger.warning("cannot write %s: %s", SYNC_STATUS_FILE, exc)

    # --- builder: local -> store ---------------------------------------------------------
    def _push(self) -> str | None:
        fence = self.fence
        if fence is not None:
            fence.check()
            # Before anything of this pass: a CURRENT this builder did not write means another
            # builder claimed the store.
            if fence.etag is not None and self.store.etag(CURRENT_KEY) != fence.etag:
                raise fence.fenced("CURRENT in the store was replaced by another builder")
        floor = fence.floor if fence is not None else 0
        versions = self.root / "versions"
        names = sorted(p.name for p in versions.iterdir() if VERSION_NAME.match(p.name)) if (
            versions.is_dir()) else []  # fmt: skip
        # Under a fence, this builder's versions from before its claim are not the store's.
        names = [n for n in names if int(n[1:]) > floor]
        for name in names:
            if name in self._done:
                continue
            manifest_path = versions / name / "manifest.json"
            if self._needs_upload(name):
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
                for file, _ in version_files(manifest):
                    if fence is not None:
                        fence.check()
                    self.store.put(f"versions/{name}/{file}", (versions / name / file).read_bytes())
                self._put_manifest(name, manifest_path.read_bytes())
            self._done.add(name)
        current = _read_text(self.root / "CURRENT")
        if current and int(current[1:]) > floor and self._sent.get("CURRENT") != (current,):
            self._put_current(current)
            self._sent["CURRENT"] = (current,)
        for side in SIDE_FILES:
            path = self.root / side
            try:
                stat = path.stat()
            except FileNotFoundError:
                if self._sent.pop(side, None) is not None:
                    self.store.delete([side])
                continue
            if self._sent.get(side) != (stat.st_mtime_ns, stat.st_size):
                self.store.put(side, path.read_bytes())
                self._sent[side] = (stat.st_mtime_ns, stat.st_size)
        gone = [n for n in self._done if n not in names]
        if gone:  # pruned locally: prune the store too
            self.store.delete([k for n in gone for k in self.store.list(f"versions/{n}/")])
            self._done -= set(gone)
        return current

    def _needs_upload(self, name: str) -> bool:
        """Whether version ``name`` is missing from the store -- or, under a fence, is there
        from another lease generation (a fenced builder's leftover: replaced)."""
        key = f"versions/{name}/manifest.json"
        if self.fence is None:
            return self.store.etag(key) is None
        theirs = self.store.get(key)
        return theirs is None or json.loads(theirs).get("lease_generation") != (
            self.fence.generation
        )

    def _put_manifest(self, name: str, raw: bytes) -> None:
        key = f"versions/{name}/manifest.json"
        fence = self.fence
        if fence is None:
            self.store.put(key, raw)
            return
        fence.check()
        try:
            self.store.put(key, raw, if_absent=True)
        except StoreConflict:
            # Another builder wrote this version: an old one's leftover is replaced, a newer
            # generation's means this builder was fenced.
            theirs, etag = self.store.get_with_etag(key)
            generation = json.loads(theirs or b"{}").get("lease_generation")
            if generation is not None and generation >= fence.generation:
                raise fence.fenced(
                    f"{name} in the store is from lease generation {generation}"
                ) from None
            self.store.put(key, raw, if_match=etag)

    def _put_current(self, name: str) -> None:
        fence = self.fence
        if fence is None:
            self.store.put(CURRENT_KEY, (name + "\n").encode())
            return
        fence.check()
        try:
            text = current_text(name, fence.generation, fence.builder_id)
            fence.etag = self.store.put(CURRENT_KEY, text, if_match=fence.etag)
        except StoreConflict:
            raise fence.fenced("CURRENT in the store was replaced by another builder") from None

    # --- server host: store -> local -------------------------------------------------------
    def _pull(self) -> str | None:
        current, _ = parse_current(self.store.get(CURRENT_KEY))
        pin = None
        pinned = self.store.get("PINNED")
        if pinned is not None:
            pin = json.loads(pinned).get("version")
        for name in (current, pin):
            if name and VERSION_NAME.match(name):
                # Its manifest's ETag, every pass: under the Kafka lease a version a fenced
                # builder uploaded may be replaced by the active builder's, of the same number.
                etag = self.store.etag(f"versions/{name}/manifest.json")
                if name not in self._done or self._fetched.get(name) != etag:
                    self._fetch_version(name)
                    self._done.add(name)
                    self._fetched[name] = etag
        for side in SIDE_FILES:
            etag = self.store.etag(side)
            if etag == self._seen.get(side, "unset"):
                continue
            data = None if etag is None else self.store.get(side)
            if data is None:
                (self.root / side).unlink(missing_ok=True)
            else:
                write_atomic(self.root / side, data)
            self._seen[side] = etag
        if current and _read_text(self.root / "CURRENT") != current:
            write_atomic(self.root / "CURRENT", (current + "\n").encode())
        self._prune_local({current, pin})
        if self._passes % 4 == 0:
            self._mirror_standbys()
        self._passes += 1
        return current

    def _mirror_standbys(self) -> None:
        """Standbys announced in the store (Kafka lease), as local ``control/standby-*.json``."""
        control = self.root / CONTROL_DIR
        announced = {k[len(STANDBYS_PREFIX) :] for k in self.store.list(STANDBYS_PREFIX)}
        for name in announced:
            data = self.store.get(STANDBYS_PREFIX + name)
            if data is not None:
                control.mkdir(parents=True, exist_ok=True)
                write_atomic(control / name, data)
        for name in self._mirrored - announced:  # withdrawn (only files this pass wrote)
            (control / name).unlink(missing_ok=True)
        self._mirrored = announced

    def _fetch_version(self, name: str) -> None:
        final = self.root / "versions" / name
        raw = self.store.get(f"versions/{name}/manifest.json")
        if raw is None:
            raise ValueError(f"CURRENT names {name}, whose manifest is not in the store")
        if _read_bytes(final / "manifest.json") == raw:
            return
        manifest = json.loads(raw)
        (self.root / "versions").mkdir(parents=True, exist_ok=True)
        tmp = self.root / "versions" / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            for file, sha in version_files(manifest):
                data = self.store.get(f"versions/{name}/{file}")
                if data is None or hashlib.sha256(data).hexdigest() != sha:
                    raise ValueError(f"{name}/{file} in the store does not match its manifest")
                with open(tmp / file, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            write_atomic(tmp / "manifest.json", raw)
            fsync_dir(tmp)
            if final.exists():  # replaced in the store: a fenced builder's, or a damaged copy
                doomed = self.root / "versions" / f".trash-{name}-{uuid.uuid4().hex}"
                os.rename(final, doomed)
                shutil.rmtree(doomed, ignore_errors=True)
            os.rename(tmp, final)
            fsync_dir(final.parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("downloaded model %s from %s", name, self.store.location)

    def _prune_local(self, keep: set) -> None:
        versions = sorted(p.name for p in (self.root / "versions").glob("v*") if p.is_dir())
        for name in versions[: -self.keep]:
            if name not in keep:
                doomed = self.root / "versions" / f".trash-{name}-{uuid.uuid4().hex}"
                os.rename(self.root / "versions" / name, doomed)
                shutil.rmtree(doomed, ignore_errors=True)
                self._done.discard(name)


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
