"""The Flask (WSGI) app served through Granian's RSGI interface, with bounded request bodies.

Why RSGI and not Granian's own WSGI interface: Granian has no body timeout (upstream declined
one, emmett-framework/granian#728), and its WSGI input stream blocks a Python thread with no
way to give up. Worse, a WSGI app that stops waiting for a stalled body (on a helper thread)
and answers wedges the worker: every later request hangs (measured on Granian 2.8.9). Under
RSGI the body arrives through an awaitable, so waiting for it can be abandoned: the client
gets a JSON 408 and the connection is closed, and nothing else waits meanwhile.

The bridge itself is small: build a PEP 3333 environ from the RSGI scope and the whole body,
call the app, and hand its status, headers and body to Granian. Requests are CPU-bound
Python, so the app runs on the worker's event loop, one request at a time; headers and
bodies are read, and responses written, by Granian's Rust threads meanwhile.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Callable

logger = logging.getLogger(__name__)


class RsgiBridge:
    """An RSGI application that runs a WSGI ``app`` on each request's whole body.

    Parameters
    ----------
    app
        The WSGI application.
    max_body_bytes
        Bodies larger than this are not read; the app refuses them (413).
    client_timeout
        Seconds the whole body may take to arrive.
    on_stop
        Called once when the worker stops (``__rsgi_del__``), after its last request.
    """

    def __init__(
        self,
        app: Callable,
        max_body_bytes: int,
        client_timeout: float,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.client_timeout = client_timeout
        self.on_stop = on_stop

    def __rsgi_del__(self, loop) -> None:
        if self.on_stop is not None:
            self.on_stop()

    async def __rsgi__(self, scope, protocol) -> None:
        headers = scope.headers
        body = None
        if _wants_body(headers, self.max_body_bytes):
            try:
                body = await asyncio.wait_for(
                    _read_body(protocol, self.max_body_bytes + 1), self.client_timeout
                )
            except asyncio.TimeoutError:
                self._too_slow(scope, protocol)
                return
        status, response_headers, content = self._call(wsgi_environ(scope, headers, body))
        protocol.response_bytes(status, response_headers, content)

    def _call(self, environ: dict) -> tuple[int, list[tuple[str, str]], bytes]:
        started: list = []

        def start_response(status: str, headers: list, exc_info=None) -> Callable:
            started[:] = [status, headers]
            return _no_write

        result = self.app(environ, start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return int(started[0].split(" ", 1)[0]), started[1], content

    def _too_slow(self, scope, protocol) -> None:
        logger.warning(
            "%s %s from %s: body not received within %g s; closing the connection",
            scope.method,
            scope.path,
            _host(scope.client),
            self.client_timeout,
        )
        message = f"the request body did not arrive within {self.client_timeout:g} s"
        body = json.dumps({"error": "Request Timeout", "message": message, "status": 408})
        # The rest of the body cannot be drained in time either: the connection must close.
        protocol.response_bytes(
            408,
            [("content-type", "application/json"), ("connection", "close")],
            body.encode(),
        )


def _no_write(data: bytes) -> None:
    raise NotImplementedError("the write() callable of WSGI is not supported; return the body")


def _wants_body(headers, max_body_bytes: int) -> bool:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return True
    try:
        length = int(headers.get("content-length") or 0)
    except ValueError:
        return False  # the app answers 400
    # Nothing to read, or too large: the app answers 413 without reading it.
    return 0 < length <= max_body_bytes


async def _read_body(protocol, most: int) -> bytes:
    """Up to ``most`` bytes of the body: fewer when the client stopped early (the app then
    sees a short body and answers 400), one more than allowed when it is too large (413)."""
    parts, got = [], 0
    try:
        async for chunk in protocol:
            parts.append(chunk)
            got += len(chunk)
            if got >= most:
                break
    except Exception:  # the client went away mid-body (Granian's ProtocolClosed)
        pass
    return b"".join(parts)[:most]


def wsgi_environ(scope, headers, body: bytes | None) -> dict:
    """A PEP 3333 environ for an RSGI HTTP scope; ``body`` is the whole body when read."""
    server_host, _, server_port = scope.server.rpartition(":")
    environ = {
        "REQUEST_METHOD": scope.method,
        "SCRIPT_NAME": "",
        # WSGI strings are bytes as latin-1: Granian gives the path percent-decoded as UTF-8.
        "PATH_INFO": scope.path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.query_string,
        "SERVER_NAME": server_host.strip("[]"),
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": "HTTP/" + scope.http_version,
        "REMOTE_ADDR": _host(scope.client),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.scheme,
        "wsgi.input": io.BytesIO(body or b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in headers.items():
        if name == "content-type":
            environ["CONTENT_TYPE"] = value
        elif name == "content-length":
            environ["CONTENT_LENGTH"] = value
        elif name != "transfer-encoding" or body is None:
            key = "HTTP_" + name.upper().replace("-", "_")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
    if body is not None:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def _host(address: str) -> str:
    """``"127.0.0.1:51234"`` or ``"[::1]:51234"`` without its port."""
    return address.rpartition(":")[0].strip("[]") or address
