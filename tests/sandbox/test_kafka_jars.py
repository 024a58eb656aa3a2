"""Apache Kafka's jars without Maven: the pinned list, and fetches from a real HTTP repository
on a local socket -- verified, resumed after an interruption, restarted where the server cannot
resume, refused on a wrong hash, and one clear line when the repository is out of reach."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from recommendation_service.errors import BrokerError
from recommendation_service.sandbox.kafka_classpath_update import render
from recommendation_service.sandbox.kafka_jars import (
    CLASSPATH_FILE,
    KAFKA_VERSION,
    PinnedJar,
    classpath_file,
    ensure_kafka_jars,
    missing_jars,
    parse_classpath,
    pinned_classpath,
)

from ..conftest import free_port


def test_the_pinned_list_is_kafkas_classpath_at_the_version_the_broker_runs():
    jars = pinned_classpath()
    names = [j.filename for j in jars]
    assert len(names) == len(set(names)) > 20
    assert any(j.coordinates == f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}" for j in jars)
    assert any(j.artifact == "kafka-clients" and j.version == KAFKA_VERSION for j in jars)
    # Kafka logs through SLF4J 2: without a binding on the classpath it says nothing.
    assert {"slf4j-api", "slf4j-simple"} <= {j.artifact for j in jars}
    assert all(j.size > 0 for j in jars)


def test_the_pinned_list_is_exactly_what_the_generator_writes():
    """Edited by hand, the list would drift from the generator's format (or order)."""
    text = classpath_file().read_text()
    assert text == render(parse_classpath(text), KAFKA_VERSION)


@pytest.mark.parametrize(
    "line",
    [
        "org.apache.kafka:kafka_2.13 " + "a" * 64 + " 10",  # no version
        "org.apache.kafka:kafka_2.13:4.1.1 abc 10",  # short hash
        "org.apache.kafka:kafka_2.13:4.1.1 " + "a" * 64 + " ten",
        "org.apache.kafka:kafka_2.13:4.1.1 " + "a" * 64,
    ],
)
def test_a_malformed_line_is_refused_with_its_number(line):
    with pytest.raises(BrokerError, match=rf"{CLASSPATH_FILE} line 2: expected"):
        parse_classpath(f"# header\n{line}\n")


class Repository:
    """A Maven-layout HTTP repository on a local port, serving ``files`` ({url path: bytes}).

    ``cut_after`` closes the connection after that many bytes of the next response (an
    interrupted download); ``ranges`` False makes it ignore Range headers, as some servers do.
    """

    def __init__(self, files: dict[str, bytes]):
        self.files, self.cut_after, self.ranges, self.requests = files, None, True, []
        repo = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.removeprefix("/maven2/")
                repo.requests.append((path, self.headers.get("Range")))
                if path not in repo.files:
                    self.send_error(404)
                    return
                body, status = repo.files[path], 200
                wanted = self.headers.get("Range")
                if wanted and repo.ranges:
                    start = int(wanted.removeprefix("bytes=").rstrip("-"))
                    body, status = body[start:], 206
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if repo.cut_after is not None:
                    body, repo.cut_after = body[: repo.cut_after], None
                    self.wfile.write(body)
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/maven2"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _jar(artifact: str, body: bytes, sha256: str | None = None) -> PinnedJar:
    return PinnedJar(
        "org.example", artifact, "1.0", sha256 or hashlib.sha256(body).hexdigest(), len(body)
    )


@pytest.fixture
def repo():
    bodies = {"alpha": b"A" * 300_000, "beta": b"B" * 50_000}
    jars = [_jar(name, body) for name, body in bodies.items()]
    served = Repository(
        {f"org/example/{j.artifact}/1.0/{j.filename}": bodies[j.artifact] for j in jars}
    )
    served.jars, served.bodies = jars, bodies
    yield served
    served.close()


def test_a_fetch_fills_the_cache_with_verified_files_and_a_second_one_fetches_nothing(
    repo, tmp_path
):
    libs = tmp_path / "libs"
    assert ensure_kafka_jars(libs, repo.url, repo.jars) == libs
    assert (libs / "alpha-1.0.jar").read_bytes() == repo.bodies["alpha"]
    assert missing_jars(libs, repo.jars) == []
    fetched = len(repo.requests)
    ensure_kafka_jars(libs, repo.url, repo.jars)
    assert len(repo.requests) == fetched == 2
    assert sorted(p.name for p in libs.iterdir()) == [
        ".fetch.lock",
        "alpha-1.0.jar",
        "beta-1.0.jar",
    ]


def test_an_interrupted_download_is_resumed_where_it_stopped(repo, tmp_path):
    libs = tmp_path / "libs"
    repo.cut_after = 120_000
    with pytest.raises(BrokerError, match=r"cannot fetch alpha-1\.0\.jar"):
        ensure_kafka_jars(libs, repo.url, repo.jars)
    assert (libs / "alpha-1.0.jar.part").stat().st_size == 120_000
    assert not (libs / "alpha-1.0.jar").exists()  # never a file that was not verified
    ensure_kafka_jars(libs, repo.url, repo.jars)
    assert ("org/example/alpha/1.0/alpha-1.0.jar", "bytes=120000-") in repo.requests
    assert (libs / "alpha-1.0.jar").read_bytes() == repo.bodies["alpha"]
    assert not (libs / "alpha-1.0.jar.part").exists()


def test_a_server_that_cannot_resume_gets_the_whole_file_again(repo, tmp_path):
    libs = tmp_path / "libs"
    repo.cut_after, repo.ranges = 120_000, False
    with pytest.raises(BrokerError):
        ensure_kafka_jars(libs, repo.url, repo.jars)
    ensure_kafka_jars(libs, repo.url, repo.jars)
    assert (libs / "alpha-1.0.jar").read_bytes() == repo.bodies["alpha"]


def test_a_file_whose_hash_differs_from_the_list_is_refused_and_removed(repo, tmp_path):
    libs = tmp_path / "libs"
    wrong = _jar("alpha", repo.bodies["alpha"], sha256="0" * 64)
    with pytest.raises(BrokerError, match="pins 0000"):
        ensure_kafka_jars(libs, repo.url, [wrong])
    assert list(libs.glob("alpha*")) == []


def test_a_cached_file_changed_on_disk_is_fetched_again(repo, tmp_path):
    libs = tmp_path / "libs"
    ensure_kafka_jars(libs, repo.url, repo.jars)
    (libs / "beta-1.0.jar").write_bytes(b"B" * 49_999 + b"X")
    assert [j.artifact for j in missing_jars(libs, repo.jars)] == ["beta"]
    ensure_kafka_jars(libs, repo.url, repo.jars)
    assert (libs / "beta-1.0.jar").read_bytes() == repo.bodies["beta"]


def test_offline_with_an_empty_cache_says_in_one_line_what_to_fill(tmp_path):
    libs = tmp_path / "libs"
    unreachable = f"http://127.0.0.1:{free_port()}/maven2"  # nothing listens there
    with pytest.raises(BrokerError) as caught:
        ensure_kafka_jars(libs, unreachable)
    message = str(caught.value)
    assert "\n" not in message
    first = pinned_classpath()[0]
    assert f"cannot fetch {first.filename} (and {len(pinned_classpath()) - 1} more jars)" in message
    assert str(libs) in message and str(classpath_file()) in message
    assert "--fetch-only" in message


def test_a_missing_file_in_the_repository_is_named(repo, tmp_path):
    gone = _jar("gamma", b"G" * 10)
    with pytest.raises(BrokerError, match=r"cannot fetch gamma-1.0.jar .*Not Found"):
        ensure_kafka_jars(tmp_path / "libs", repo.url, [gone])
