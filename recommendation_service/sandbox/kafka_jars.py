"""Apache Kafka's jars: a pinned list, fetched once over HTTPS into a cache, each file verified.

The broker's runtime classpath is pinned in ``kafka_classpath.txt`` beside this module: one
line per jar, its Maven coordinates, SHA-256 and size. :func:`ensure_kafka_jars` downloads what
the cache lacks from a Maven repository (Maven Central by default) with the standard library
alone -- no Maven, no Java needed to fetch -- and checks every file against the list before the
broker uses it. A download goes to ``<name>.part`` and is resumed with an HTTP range request
after an interruption (restarted when the server cannot resume); only a file whose hash matches
is renamed into place, so a cache never holds a jar that was not verified.

The list is regenerated, never edited by hand, by
``python -m recommendation_service.sandbox.kafka_classpath_update`` (it asks Maven to resolve
the classpath; docs/development.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..common.files import fsync_dir
from ..errors import BrokerError

logger = logging.getLogger(__name__)

#: The Apache Kafka release the broker runs; the pinned list is of its classpath.
KAFKA_VERSION = "4.1.1"
#: The Maven repository jars are fetched from unless ``--maven-repository`` says otherwise.
DEFAULT_REPOSITORY = "https://repo.maven.apache.org/maven2"
#: The pinned list, package data beside this module.
CLASSPATH_FILE = "kafka_classpath.txt"

_CHUNK = 1 << 20
_TIMEOUT = 30.0


@dataclass(frozen=True)
class PinnedJar:
    """One jar of the classpath: Maven coordinates, SHA-256 (hex) and size in bytes."""

    group: str
    artifact: str
    version: str
    sha256: str
    size: int

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def filename(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    def url(self, repository: str) -> str:
        path = f"{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.filename}"
        return f"{repository.rstrip('/')}/{path}"

    def line(self) -> str:
        return f"{self.coordinates} {self.sha256} {self.size}"


def parse_classpath(text: str) -> list[PinnedJar]:
    """The jars of a pinned list (``#`` comments and blank lines skipped).

    Raises
    ------
    BrokerError
        On a line that is not ``group:artifact:version sha256 bytes``.
    """
    jars = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        coordinates = fields[0].split(":") if fields else []
        if (
            len(fields) != 3
            or len(coordinates) != 3
            or len(fields[1]) != 64
            or not fields[2].isdigit()
        ):
            raise BrokerError(
                f"{CLASSPATH_FILE} line {number}: expected 'group:artifact:version sha256 "
                f"bytes', got {raw!r}"
            )
        jars.append(PinnedJar(*coordinates, sha256=fields[1].lower(), size=int(fields[2])))
    return jars


def pinned_classpath() -> list[PinnedJar]:
    """The classpath pinned in the package (:data:`CLASSPATH_FILE`)."""
    return parse_classpath(classpath_file().read_text())


def classpath_file() -> Path:
    return Path(str(resources.files(__package__).joinpath(CLASSPATH_FILE)))


def default_libs_dir() -> Path:
    """Where the jars are cached unless told otherwise: ``~/.cache/recsvc/kafka-<version>``."""
    return Path.home() / ".cache" / "recsvc" / f"kafka-{KAFKA_VERSION}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(path: Path, jar: PinnedJar) -> bool:
    try:
        return path.stat().st_size == jar.size and sha256_of(path) == jar.sha256
    except FileNotFoundError:
        return False


def missing_jars(libs_dir: Path, jars: list[PinnedJar] | None = None) -> list[PinnedJar]:
    """The pinned jars that ``libs_dir`` lacks or holds with other content."""
    return [j for j in (jars or pinned_classpath()) if not _verified(libs_dir / j.filename, j)]


@contextlib.contextmanager
def _fetch_lock(libs_dir: Path):
    # Two processes (a demo and a test run) may fetch into one cache at once: one fetches,
    # the other waits and then finds the files there.
    with open(libs_dir / ".fetch.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _download(jar: PinnedJar, repository: str, libs_dir: Path) -> None:
    """Fetch ``jar`` into ``libs_dir``, resuming a ``.part`` left by an interrupted fetch."""
    part = libs_dir / f"{jar.filename}.part"
    have = part.stat().st_size if part.exists() else 0
    if have >= jar.size:  # complete but unverified, or longer than the real file: start over
        part.unlink()
        have = 0
    request = urllib.request.Request(jar.url(repository))
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
        resumed = have > 0 and response.status == 206
        with open(part, "ab" if resumed else "wb") as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    size = part.stat().st_size
    if size < jar.size:  # the connection closed early: keep the part to resume from
        raise ConnectionError(f"the connection closed after {size} of {jar.size} bytes")
    got = sha256_of(part)
    if got != jar.sha256:
        part.unlink()
        raise BrokerError(
            f"{jar.url(repository)} has SHA-256 {got}, {CLASSPATH_FILE} pins {jar.sha256}: "
            "the file was removed; fetch again, and if it persists the repository serves "
            "another file under that name"
        )
    os.replace(part, libs_dir / jar.filename)


def ensure_kafka_jars(
    libs_dir: Path | None = None,
    repository: str = DEFAULT_REPOSITORY,
    jars: list[PinnedJar] | None = None,
) -> Path:
    """Fill ``libs_dir`` with the pinned jars (or ``jars``) unless it holds them all; returns
    ``libs_dir``.

    Every jar is checked against its pinned SHA-256 and size, those already cached included.

    Raises
    ------
    BrokerError
        If a jar cannot be fetched (one line: how many, from where, the cache to fill by hand)
        or a fetched file does not match the list.
    """
    libs_dir = Path(libs_dir or default_libs_dir())
    jars = jars or pinned_classpath()
    if not missing_jars(libs_dir, jars):
        return libs_dir
    libs_dir.mkdir(parents=True, exist_ok=True)
    with _fetch_lock(libs_dir):
        missing = missing_jars(libs_dir, jars)  # another process may have fetched them
        if missing:
            logger.info(
                "fetching %d of Apache Kafka %s's %d jars (%.0f MB) from %s into %s (once)",
                len(missing), KAFKA_VERSION, len(jars),
                sum(j.size for j in missing) / 1e6, repository, libs_dir,
            )  # fmt: skip
        for done, jar in enumerate(missing, 1):
            try:
                _download(jar, repository, libs_dir)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise BrokerError(
                    f"cannot fetch {jar.filename} (and {len(missing) - done} more jars) from "
                    f"{repository}: {reason}; offline, fill {libs_dir} with the files "
                    f"{classpath_file()} lists (recsvc broker --fetch-only --kafka-libs DIR "
                    "where the repository is reachable, then copy DIR)"
                ) from exc
        fsync_dir(libs_dir)
    return libs_dir
