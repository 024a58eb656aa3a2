"""Keeps a server process on the newest published model, without restarting it.

A daemon thread polls the store's ``CURRENT`` pointer; when it names a new version the watcher
loads and verifies it off the request path, then swaps one reference. On the same poll it
applies the version's new update files (fresh vectors of users with new events) and reloads
the item catalog when the builder replaced it. A request
reads that reference once, so every response comes from exactly one version. A version that
fails to load is logged, remembered, and skipped while the previous model keeps serving.

A process that serves nothing yet while a version exists (the first model arriving, or a
worker started beside one that already serves) loads it on the request that asks, rather
than answering 503 until its next poll: "ready" on one worker then means ready on all.
"""

from __future__ import annotations

import logging
import threading
import time

from ..artifacts.store import CURRENT_FILE, ModelStore, version_name
from ..common.threads import lower_thread_priority
from ..data.catalog import CATALOG_FILE, CatalogSnapshot
from ..data.erasures import ErasureLedger
from ..errors import ModelLoadError, NoModelError
from ..recommend.served_model import ServedModel
from ..vectors.ann import load_index

logger = logging.getLogger(__name__)

#: Search breadth for versions that carry no probed one (published before the probe).
DEFAULT_EF = 128


class ModelWatcher:
    """Holds the served model of one process and refreshes it in the background.

    Parameters
    ----------
    store
        The model store to follow.
    interval
        Seconds between checks of ``CURRENT`` and of the version's update files.
    ef
        Candidate list size of a search when a version carries an approximate index
        (HNSW's ``efSearch``): larger finds more of the exact top-N, slower. None: the
        breadth the builder chose for the version (its recall probe), else ``DEFAULT_EF``.
    """

    def __init__(self, store: ModelStore, interval: float = 0.1, ef: int | None = None) -> None:
        self.store = store
        self.interval = interval
        self.ef = ef
        #: Called (on the watcher thread) after every poll with the served model.
        self.on_refresh = None
        self.model: ServedModel | None = None
        self.last_error: str | None = None
        self.failed_version: str | None = None
        self.loaded_at: float | None = None
        #: The item catalog the builder publishes (None until it has written one).
        self.catalog: CatalogSnapshot | None = None
        self._catalog_stamp: tuple | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Held while a poll runs (loading a new version included).
        self._lock = threading.Lock()
        #: The updates-topic reader (update_feed.py), when the server has one.
        self.feed = None
        #: The erasures this process has read (data/erasures.py), and their reader; None
        #: without Kafka. Every loaded version consults the ledger for each user it answers.
        self.erasures: ErasureLedger | None = None
        self.erasure_feed = None

    def honour_erasures(self, ledger: ErasureLedger) -> None:
        """Versions loaded from now on answer the users ``ledger`` erased as unknown."""
        self.erasures = ledger

    def refresh(self) -> bool:
        """Load the current version if it is new, then apply its new update files.

        Returns True when the served version changed.
        """
        with self._lock:
            self._refresh_catalog()
            changed = self._refresh_version()
            if self.model is not None:
                if self.catalog is not None:
                    # Map the version's items to catalog rows here, not on a request.
                    self.model.pipeline.masks.catalog_rows(self.catalog)
                self._apply_updates(self.model)
                if self.on_refresh is not None:
                    self.on_refresh(self.model)
            return changed

    def current(self) -> ServedModel | None:
        """The served model; with none yet but a version published, load it now (waiting for
        a poll that is already loading it) so no request is refused while it exists."""
        model = self.model
        if model is not None:
            return model
        try:
            published = self.store.served_name() is not None
        except ModelLoadError:
            published = False  # a damaged CURRENT: the poll reports it; nothing to load here
        if published and self._thread is not None:
            try:
                self.refresh()
            except Exception:  # the caller answers 503 as before; the poll logs and retries
                logger.exception("loading the published model on a request failed")
        return self.model

    def _refresh_catalog(self) -> None:
        """Reload the catalog file when the builder replaced it (damaged: keep the last)."""
        path = self.store.root / CATALOG_FILE
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        except OSError as exc:
            logger.warning("cannot stat the catalog: %s", exc)
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._catalog_stamp:
            return
        try:
            self.catalog = CatalogSnapshot.read(path)
        except (OSError, ValueError) as exc:
            logger.error("keeping the previous catalog: %s is unreadable: %s", path, exc)
        self._catalog_stamp = stamp

    def _refresh_version(self) -> bool:
        try:
            name = self.store.served_name()
        except ModelLoadError as exc:
            self._fail(CURRENT_FILE, exc)
            return self._fall_back(None)
        if name is None:
            return False
        if self.model is not None and self.model.name == name:
            # CURRENT points at what is served again (repaired by hand, or a rollback pin).
            self._clear_failure()
            return False
        if name == self.failed_version:
            return False
        try:
            model = self._load(name)
        except NoModelError:
            return False
        except ModelLoadError as exc:
            self._fail(name, exc)
            return self._fall_back(name)
        self.last_error = None
        self.failed_version = None
        self._swap(model)
        return True

    def _load(self, name: str) -> ServedModel:
        manifest, arrays = self.store.read_version(name)
        self._check_generation(name, manifest)
        found = self.store.index_file(manifest)
        index = None
        if found is not None:
            try:
                index = load_index(*found)
            except (RuntimeError, ValueError) as exc:  # FAISS: RuntimeError; unknown kind
                raise ModelLoadError(f"{name}: cannot read its approximate index: {exc}") from exc
        ef = self.ef
        if ef is None:
            ef = int((manifest.get("ann") or {}).get("ef") or DEFAULT_EF)
        return ServedModel(manifest, arrays, index=index, ef=ef, erasures=self.erasures)

    def _check_generation(self, name: str, manifest: dict) -> None:
        """Refuse a newer version from an older builder-lease generation than the served one:
        it comes from a builder that lost the lease (a rollback's pin is the exception)."""
        served = None if self.model is None else self.model.manifest.get("lease_generation")
        theirs = manifest.get("lease_generation")
        if served is None or theirs is None or theirs >= served:
            return
        if name == self.store.current_name():
            raise ModelLoadError(
                f"{name} is from builder-lease generation {theirs}, older than the served "
                f"version's {served}: a builder that lost the lease wrote it"
            )

    def _swap(self, model: ServedModel) -> None:
        # Catch up on its updates before the swap, so no request sees it staler than the old.
        self._apply_updates(model)
        if self.feed is None:
            self.model = model
        else:
            with self.feed.lock:  # no record can land on the old model after this
                self.feed.apply_to(model)
                self.model = model
        self.loaded_at = time.time()
        logger.info(
            "serving model %s (%d users, %d items)", model.name, model.n_users, model.n_items
        )

    def _fall_back(self, refused: str | None) -> bool:
        """With nothing served yet (a process starting while the current version is bad),
        serve the newest older version that loads rather than nothing."""
        if self.model is not None:
            return False
        for number in reversed(self.store.versions()):
            name = version_name(number)
            if name == refused:
                continue
            try:
                model = self._load(name)
            except (ModelLoadError, NoModelError) as exc:
                logger.error("cannot fall back to %s either: %s", name, exc)
                continue
            logger.warning("falling back to model %s while %s is refused", name, refused)
            self._swap(model)
            return True
        return False

    def _apply_updates(self, model: ServedModel) -> None:
        for seq in self.store.update_numbers(model.name, after=model.applied_update):
            try:
                model.apply_update(seq, self.store.read_update(model.name, seq))
            except ModelLoadError as exc:
                model.skip_update(seq)
                self.last_error = str(exc)
                logger.error("skipping %s", exc)

    def _fail(self, name: str, exc: Exception) -> None:
        if name == self.failed_version and self.last_error == str(exc):
            return  # logged when it first failed; polls must not flood the log
        self.failed_version = name
        self.last_error = str(exc)
        serving = self.model.name if self.model else "none"
        logger.error("refusing model %s: %s (still serving %s)", name, exc, serving)

    def _clear_failure(self) -> None:
        if self.failed_version is not None:
            logger.info("no longer refusing %s", self.failed_version)
            self.failed_version = None
            self.last_error = None

    def start(self) -> ModelWatcher:
        """Load what is there now and start polling in a daemon thread."""
        self.refresh()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        lower_thread_priority()
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # the watcher must outlive any surprise; the old model keeps serving
                logger.exception("model refresh failed unexpectedly")
