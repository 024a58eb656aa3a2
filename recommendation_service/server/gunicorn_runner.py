"""Running the Flask app under gunicorn, the production WSGI server behind ``recsvc serve``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger, SafeAtoms

from ..config.checks import PROMETHEUS_MULTIPROC_ENV
from ..config.server import ServerConfig
from .access import warn_if_open
from .request_gate import RequestGate, SlowClientLogFilter, limit_socket_waits

logger = logging.getLogger(__name__)

#: One JSON object per request, so log pipelines parse access logs without regexes.
ACCESS_LOG_FORMAT = (
    '{"time": "%(t)s", "remote": "%(h)s", "method": "%(m)s", "path": "%(U)s", '
    '"query": "%(q)s", "status": %(s)s, "bytes": "%(B)s", "duration_us": %(D)s, "pid": "%(p)s"}'
)


class _JsonAtoms(SafeAtoms):
    """Access-log values escaped for a JSON string: a path with a quote, backslash or CR/LF
    (percent-decoded from the URL) must not break the line or forge another one."""

    def __init__(self, atoms: dict) -> None:
        dict.__init__(self)
        for key, value in atoms.items():
            self[key] = json.dumps(value)[1:-1] if isinstance(value, str) else value


class JsonAccessLogger(Logger):
    atoms_wrapper_class = _JsonAtoms


class RecommendationServer(BaseApplication):
    """A gunicorn application whose workers each build the app (and start a model watcher).

    The app is not preloaded: threads do not survive ``fork``, so every worker must start its
    own watcher thread after it is forked.
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config_obj = config
        super().__init__()

    def load_config(self) -> None:
        c = self.config_obj
        settings = {
            "bind": f"{c.host}:{c.port}",
            "workers": c.workers,
            "worker_class": "gthread",
            "threads": c.threads,
            "preload_app": False,
            "accesslog": "-" if c.access_log else None,
            "access_log_format": ACCESS_LOG_FORMAT,
            "logger_class": JsonAccessLogger,
            "errorlog": "-",
            "loglevel": "info",
            "graceful_timeout": 10,
            "timeout": 30,
            "keepalive": 5,
            # Bound request-line and header sizes; ids are short.
            "limit_request_line": 8190,
            "limit_request_fields": 100,
            "child_exit": _child_exit,
            "when_ready": self._start_store_sync,
            "on_exit": self._stop_store_sync,
            "worker_exit": _worker_exit,
            "post_worker_init": self._guard_sockets,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        from threadpoolctl import threadpool_limits

        from .app import create_app

        # Each request is one small matrix-vector product; BLAS threads on top of the request
        # threads only contend (p99 at 4 connections went from ~3 ms to ~46 ms with them).
        threadpool_limits(1, "blas")
        # The model watcher thread loads new versions in the background; a short GIL switch
        # interval keeps it from holding up a request for the default 5 ms at a time.
        sys.setswitchinterval(0.0005)
        c = self.config_obj
        return RequestGate(create_app(c), c.max_body_bytes, c.client_timeout)

    def _start_store_sync(self, server) -> None:
        """In the master: one download thread per host fills the local model directory."""
        c = self.config_obj
        if c.model_store is not None:
            from ..artifacts.object_store import ObjectStore
            from ..artifacts.store_sync import StoreSync

            sync = StoreSync(c.model_dir, ObjectStore(c.model_store), upload=False)
            sync.run_once()  # before the workers look, when the store answers
            self._store_sync = sync.start()

    def _stop_store_sync(self, server) -> None:
        sync = getattr(self, "_store_sync", None)
        if sync is not None:
            sync.stop()

    def _guard_sockets(self, worker) -> None:
        """In each worker: bound socket waits of connection threads, and log them briefly."""
        seconds = self.config_obj.client_timeout
        limit_socket_waits(worker.sockets, seconds)
        logging.getLogger("gunicorn.error").addFilter(SlowClientLogFilter(seconds))


def _worker_exit(server, worker) -> None:
    from .experiments_api import flush_impressions

    flush_impressions()  # lists of an experiment still queued in this worker's producer


def _child_exit(server, worker) -> None:
    from .metrics import mark_worker_dead

    mark_worker_dead(worker.pid)


def serve(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM (gunicorn stops workers gracefully)."""
    logger.info(
        "serving models from %s on http://%s:%d with %d worker(s)",
        config.model_dir,
        config.host,
        config.port,
        config.workers,
    )
    warn_if_open(config)
    # prometheus_client picks multi-process mode from the environment when it is imported, so
    # this must happen before any worker exists; a fresh directory holds no stale samples.
    owned = config.metrics_dir is None
    metrics_dir = Path(tempfile.mkdtemp(prefix="recsvc-metrics-")) if owned else config.metrics_dir
    metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ[PROMETHEUS_MULTIPROC_ENV] = str(metrics_dir)
    try:
        RecommendationServer(config).run()
    finally:
        if owned:
            shutil.rmtree(metrics_dir, ignore_errors=True)
