"""Hostile requests over a real socket to ``recsvc serve``: what a test client cannot send.

Header injection through reflected ids, path traversal, malformed and oversized request lines,
and a client that connects and says nothing. After each, the server must still answer.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from recommendation_service.artifacts.store import ModelStore

from ..conftest import free_port, planted_events, train_window
from ..processes import recsvc, stop, wait_healthy

pytestmark = pytest.mark.integration


CLIENT_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server_log(tmp_path_factory):
    return tmp_path_factory.mktemp("raw-http-log") / "server.log"


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_log):
    """One worker with 8 connection threads, as the README advises for direct exposure."""
    root = tmp_path_factory.mktemp("raw-http")
    ModelStore(root).publish(train_window(planted_events(1000)))
    port = free_port()
    proc = recsvc(
        "serve", "--model-dir", str(root), "--port", str(port),
        "--threads", "8", "--client-timeout", str(CLIENT_TIMEOUT), log_path=server_log,
    )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}", timeout=60)
        yield port
    finally:
        stop(proc)
    assert "Traceback" not in server_log.read_text()


def raw(port: int, request: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; return status, headers (lower-case names) and body, once the
    connection closes or the body is as long as the response's Content-Length says."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while not _complete(data) and (chunk := sock.recv(65536)):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def _complete(data: bytes) -> bool:
    head, found, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:] if found else ():
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def get(port: int, target: str, extra: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    return raw(port, b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra
               + b"Connection: close\r\n\r\n")  # fmt: skip


def still_serving(port: int, within: float = 5.0) -> None:
    start = time.monotonic()
    status, _, body = get(port, "/recommend?user=u1&n=3")
    assert status == 200 and len(json.loads(body)["items"]) == 3
    assert time.monotonic() - start < within, "the server was held up by another client"


def test_ids_with_crlf_never_become_headers_or_log_lines(server, server_log):
    for target in (
        "/recommend?user=a%0d%0aX-Injected:%201&n=3",
        "/items/a%0d%0aX-Injected:%201/associations",
        "/similar?item=a%0d%0aSet-Cookie:%20x=1",
    ):
        status, headers, body = get(server, target)
        assert status in (200, 400, 404), (target, status)
        assert "x-injected" not in headers and "set-cookie" not in headers
        assert headers["content-type"] == "application/json"
        json.loads(body)
    still_serving(server)
    # The access log stays one JSON object per line: ids cannot forge log lines either.
    lines = server_log.read_text().splitlines()
    access = [json.loads(line) for line in lines if line.startswith('{"time"')]
    assert any("X-Injected: 1" in entry["query"] + entry["path"] for entry in access)
    assert not [line for line in lines if "X-Injected" in line and not line.startswith("{")]


@pytest.mark.parametrize(
    "target",
    [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/items/..%2F..%2F..%2Fetc%2Fpasswd/associations",
        "/openapi.json/../../../etc/passwd",
        "//etc/passwd",
    ],
)
def test_path_traversal_reads_no_files(server, target):
    status, headers, body = get(server, target)
    assert status in (400, 404), status
    assert b"root:" not in body
    if headers.get("content-type") == "application/json":
        assert json.loads(body)["status"] == status


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /recommend?user=a\rb HTTP/1.1\r\nHost: x\r\n\r\n",  # bare CR in the request line
        b"GET /recommend?user=a HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # request line over the limit
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % k for k in range(200)) + b"\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS ClientHello
        b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    ],
    ids=["bare-cr", "bad-header", "long-line", "many-headers", "tls", "negative-length"],
)
def test_malformed_requests_are_refused_and_the_server_carries_on(server, request_bytes):
    try:
        status, _, _ = raw(server, request_bytes)
    except (ConnectionResetError, IndexError, ValueError):
        status = None  # closing the connection on garbage is fine too
    assert status is None or 400 <= status < 500, status
    still_serving(server)


HALF_SENT = [
    b"",  # connects and says nothing
    b"GET /recommend?user=u1 HTTP/1.1\r\n",  # headers that stop arriving
    b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n{",  # a body that stops arriving
]


def test_clients_that_stop_half_way_do_not_hold_up_others(server):
    stuck = []
    try:
        for request in HALF_SENT * 2:
            sock = socket.create_connection(("127.0.0.1", server))
            sock.sendall(request)
            stuck.append(sock)
        time.sleep(0.2)
        for _ in range(5):
            still_serving(server, within=0.5)
    finally:
        for sock in stuck:
            sock.close()


def test_a_body_that_stops_arriving_gets_a_json_408(server, server_log):
    start = time.monotonic()
    status, headers, body = raw(server, HALF_SENT[2], timeout=10)
    assert status == 408 and json.loads(body)["status"] == 408
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert CLIENT_TIMEOUT <= time.monotonic() - start < CLIENT_TIMEOUT + 3
    still_serving(server)


def test_many_stalled_bodies_leave_posts_and_gets_served(server):
    """Twenty stalled bodies on one worker: each is answered 408 and closed after the client
    timeout, and whole requests, with bodies or without, are served meanwhile and after."""
    stuck = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", server))
            sock.sendall(HALF_SENT[2])
            stuck.append(sock)
        body = b'{"user_id": "u1", "top_k": 3}'
        for round in range(3):
            if round == 1:
                time.sleep(CLIENT_TIMEOUT + 0.5)  # every stalled one has been answered 408
            start = time.monotonic()
            status, _, answer = raw(
                server,
                b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body),
            )
            assert status == 200 and len(json.loads(answer)["recommendations"]) == 3
            assert time.monotonic() - start < 0.5
            still_serving(server, within=0.5)
        for sock in stuck:
            sock.settimeout(1)
            answer = b""
            while chunk := sock.recv(65536):  # until the server closes the connection
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in stuck:
            sock.close()


def test_headers_that_stop_arriving_free_the_thread(server, server_log):
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(HALF_SENT[1])
        start = time.monotonic()
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        # The server closes the connection (it may first answer 400 or 408).
        assert time.monotonic() - start < CLIENT_TIMEOUT + 6
        assert data == b"" or data.split(b" ")[1] in (b"400", b"408")
    still_serving(server)


def test_with_one_thread_a_half_sent_request_holds_the_process_only_briefly(tmp_path):
    ModelStore(tmp_path).publish(train_window(planted_events(500)))
    port = free_port()
    proc = recsvc(
        "serve", "--model-dir", str(tmp_path), "--port", str(port),
        "--client-timeout", str(CLIENT_TIMEOUT), quiet=True,
    )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}", timeout=60)
        for request in HALF_SENT[1:]:
            with socket.create_connection(("127.0.0.1", port)) as stuck:
                stuck.sendall(request)
                time.sleep(0.1)
                still_serving(port, within=CLIENT_TIMEOUT + 2)
    finally:
        stop(proc)
