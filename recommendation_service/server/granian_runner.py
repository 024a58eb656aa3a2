"""Running the Flask app under Granian, the production HTTP server behind ``recsvc serve``.

Granian parses HTTP and writes responses on Rust threads, off the GIL, and hands each
request's scope and body to Python only to run the app (through its RSGI interface, see
``rsgi_bridge``). ``tests.benchmarks.wsgi_servers`` measures it against gunicorn, the
server before it. What gunicorn's settings and hooks did, and where it happens now:

- worker processes are forked from this process and each builds its own app (model watcher
  threads do not survive a fork); a worker that dies is started again;
- ``--threads`` sets each worker's Rust I/O threads, which read requests and write responses;
- headers must arrive within ``--client-timeout`` (Granian's header read timeout), a body
  within the same (the bridge answers 408 and closes the connection);
- one JSON access-log line per request (:class:`JsonAccessFormatter`);
- Prometheus samples of every worker in one multi-process directory, a dead worker's live
  gauges dropped when it is replaced;
- the model store's download thread runs here, in the main process, before workers start;
- SIGTERM/SIGINT stop the workers gracefully; each flushes its impressions producer last.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from ..config.checks import PROMETHEUS_MULTIPROC_ENV
from ..config.server import ServerConfig
from .access import warn_if_open

logger = logging.getLogger(__name__)

#: Seconds a stopping worker may take to finish its requests before it is killed.
GRACEFUL_STOP_SECONDS = 10
#: Bytes of request line and headers a connection may buffer (gunicorn's limits were a
#: request line of 8,190 bytes and 100 header fields).
MAX_HEADER_BYTES = 64 * 1024


class JsonAccessFormatter(logging.Formatter):
    """One JSON object per request, so log pipelines parse access logs without regexes.

    Granian's access logger passes the request's fields as the record's arguments;
    ``json.dumps`` escapes quotes, backslashes and CR/LF, so a percent-decoded path cannot
    break the line or forge another one.
    """

    def format(self, record: logging.LogRecord) -> str:
        fields = record.args if isinstance(record.args, dict) else {}
        return json.dumps(
            {
                "time": fields.get("time"),
                "remote": fields.get("addr"),
                "method": fields.get("method"),
                "path": fields.get("path"),
                "query": fields.get("query_string"),
                "status": fields.get("status"),
                "duration_us": round(fields.get("dt_ms", 0.0) * 1000),
                "pid": os.getpid(),
            }
        )


def logging_config() -> dict:
    """Granian's logging: its own messages as plain lines, access lines as JSON, on stdout."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "generic": {
                "()": "logging.Formatter",
                "fmt": "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
            },
            "access": {"()": JsonAccessFormatter},
        },
        "handlers": {
            "console": {
                "formatter": "generic",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "formatter": "access",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def prepare_worker() -> None:
    """Settings of a serving process, before its app is built."""
    from threadpoolctl import threadpool_limits

    # Each request is one small matrix-vector product; BLAS threads on top of the request
    # threads only contend (p99 at 4 connections went from ~3 ms to ~46 ms with them).
    threadpool_limits(1, "blas")
    # The model watcher thread loads new versions in the background; a short GIL switch
    # interval keeps it from holding up a request for the default 5 ms at a time.
    sys.setswitchinterval(0.0005)


def load_app(config: ServerConfig):
    """In each worker, after the fork: the Flask app behind the RSGI bridge."""
    from .app import create_app
    from .experiments_api import flush_impressions
    from .rsgi_bridge import RsgiBridge

    prepare_worker()
    # Lists of an experiment still queued in this worker's producer are sent before it exits.
    return RsgiBridge(
        create_app(config), config.max_body_bytes, config.client_timeout, flush_impressions
    )


def _granian_server(config: ServerConfig):
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.server import MPServer

    class RecommendationServer(MPServer):
        """Granian's process manager, dropping a replaced worker's live metric gauges.

        It extends a private method, the one place a replaced worker's pid is known; the
        requirement pins Granian below 2.9 so that it stays where it is.
        """

        def _respawn_workers(self, workers, *args, **kwargs):
            dead = [self.wrks[idx].inner.pid for idx in workers]
            super()._respawn_workers(workers, *args, **kwargs)
            from .metrics import mark_worker_dead

            for pid in dead:
                mark_worker_dead(pid)

    return RecommendationServer(
        "recsvc",  # the app comes from load_app, not an import string
        address=config.host,
        port=config.port,
        interface=Interfaces.RSGI,
        workers=config.workers,
        runtime_threads=config.threads,
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, int(config.client_timeout * 1000)),
            keep_alive=True,
            max_buffer_size=MAX_HEADER_BYTES,
        ),
        log_enabled=True,
        log_dictconfig=logging_config(),
        log_access=config.access_log,
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_STOP_SECONDS,
    )


def serve(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM (workers finish their requests, then stop)."""
    logger.info(
        "serving models from %s on http://%s:%d with %d worker(s)",
        config.model_dir,
        config.host,
        config.port,
        config.workers,
    )
    warn_if_open(config)
    # Workers are forked, as gunicorn's were, so they start from this process's memory: the
    # frozen config reaches them without being pickled.
    multiprocessing.set_start_method("fork", force=True)
    # prometheus_client picks multi-process mode from the environment when it is imported, so
    # this must happen before any worker exists; a fresh directory holds no stale samples.
    owned = config.metrics_dir is None
    metrics_dir = Path(tempfile.mkdtemp(prefix="recsvc-metrics-")) if owned else config.metrics_dir
    metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ[PROMETHEUS_MULTIPROC_ENV] = str(metrics_dir)
    server = _granian_server(config)
    sync = None
    if config.model_store is not None:
        from ..artifacts.object_store import ObjectStore
        from ..artifacts.store_sync import StoreSync

        # One download thread per host fills the local model directory for every worker.
        sync = StoreSync(config.model_dir, ObjectStore(config.model_store), upload=False)
        sync.run_once()  # before the workers look, when the store answers
        sync = sync.start()
    started = time.monotonic()
    try:
        server.serve(target_loader=partial(load_app, config), wrap_loader=False)
    finally:
        if sync is not None:
            sync.stop()
        if owned:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        logger.info("stopped after %.0f s", time.monotonic() - started)
