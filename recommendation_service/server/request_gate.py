"""Slow clients wait on their own connection thread; the app runs one request at a time.

Requests are CPU-bound Python: two of them running at once in one process only take turns on
the GIL. So however many connection threads a worker has (``--threads``), this WSGI
middleware lets only one of them run the app at a time, and only once it has the whole
request body. Slow clients are bounded:

- a body must arrive within ``client_timeout`` seconds in total, else the client gets a JSON
  408 and the connection is closed;
- every blocking socket read or write of a connection thread gives up after ``client_timeout``
  (``SO_RCVTIMEO``/``SO_SNDTIMEO`` on the listening sockets, which accepted sockets inherit),
  so headers that stop arriving free the thread too.

With one connection thread (the default, fastest when a buffering proxy or load balancer
stands in front) a half-sent request holds the process up to ``client_timeout``; with
``--threads 8`` it holds one thread and the others keep serving. A client that sends a byte
every few seconds can hold a thread for longer: expose the server to untrusted clients only
behind a buffering proxy (nginx, Envoy, a cloud load balancer).
"""

from __future__ import annotations

import io
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024


class ClientTooSlow(Exception):
    """The request body did not arrive in time."""


class RequestGate:
    """WSGI middleware: read the body first (bounded in size and time), then run ``app`` alone.

    Parameters
    ----------
    app
        The WSGI application.
    max_body_bytes
        Bodies larger than this are not read here; the app refuses them (413).
    client_timeout
        Seconds the whole body may take to arrive.
    """

    def __init__(self, app: Callable, max_body_bytes: int, client_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.client_timeout = client_timeout
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            self._buffer_body(environ)
        except ClientTooSlow:
            return self._too_slow(environ, start_response)
        with self._lock:
            response = self.app(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                close = getattr(response, "close", None)
                if close is not None:
                    close()

    def _buffer_body(self, environ: dict) -> None:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return  # the app answers 400
        if not chunked and not 0 < length <= self.max_body_bytes:
            return  # nothing to read, or too large: the app answers 413 without reading it
        wanted = self.max_body_bytes + 1 if chunked else length
        stream = environ["wsgi.input"]
        deadline = time.monotonic() + self.client_timeout
        parts, got = [], 0
        try:
            while got < wanted:
                if time.monotonic() > deadline:
                    raise ClientTooSlow
                part = stream.read(min(_CHUNK, wanted - got))
                if not part:
                    break  # the client stopped early: the app sees a short body (400)
                parts.append(part)
                got += len(part)
        except (BlockingIOError, TimeoutError) as exc:  # SO_RCVTIMEO expired on a read
            raise ClientTooSlow from exc
        body = b"".join(parts)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)

    def _too_slow(self, environ: dict, start_response: Callable) -> list[bytes]:
        logger.warning(
            "%s %s from %s: body not received within %g s; closing the connection",
            environ.get("REQUEST_METHOD"),
            environ.get("PATH_INFO"),
            environ.get("REMOTE_ADDR"),
            self.client_timeout,
        )
        message = f"the request body did not arrive within {self.client_timeout:g} s"
        body = json.dumps({"error": "Request Timeout", "message": message, "status": 408}).encode()
        # gunicorn closes the connection: it cannot drain the rest of the body in time either.
        start_response(
            "408 Request Timeout",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]


def limit_socket_waits(sockets: Iterable, seconds: float) -> None:
    """Bound every blocking read and write on connections accepted from ``sockets``."""
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    for sock in sockets:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


class SlowClientLogFilter(logging.Filter):
    """Turns gunicorn's traceback for a read that timed out into one warning line."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (BlockingIOError, TimeoutError)):
            record.msg = "client sent no complete request within %g s; connection closed"
            record.args = (self.seconds,)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True
