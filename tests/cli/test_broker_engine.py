"""Which broker ``recsvc broker`` and ``recsvc demo`` start when not told: Apache Kafka
wherever it can run (it lasts under one-message batches; Tansu 0.6.0 stalls), Tansu otherwise.

The machine's own ``java`` and ``mvn`` are used; "absent" is a PATH without them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from recommendation_service.sandbox.brokers import TANSU_LIMIT, resolve_engine
from recommendation_service.sandbox.kafka_broker import default_libs_dir

from ..conftest import free_port, kafka_unavailable, require_engine


def _path_with(tmp_path, *tools: str) -> str:
    """A PATH holding only ``tools`` (links to the machine's)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"no {tool} on this machine")
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_an_explicit_engine_is_kept():
    assert resolve_engine("tansu")[0] == "tansu"
    assert resolve_engine("kafka")[0] == "kafka"


def test_auto_is_tansu_without_java_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _path_with(tmp_path))
    engine, why = resolve_engine("auto", tmp_path / "no-jars")
    assert engine == "tansu"
    assert "no java on PATH" in why


def test_auto_is_tansu_with_java_but_no_maven_and_no_cached_jars(tmp_path, monkeypatch):
    require_engine("kafka")  # needs a Java 17+
    monkeypatch.setenv("PATH", _path_with(tmp_path, "java"))
    engine, why = resolve_engine("auto", tmp_path / "no-jars")
    assert engine == "tansu"
    assert "not Maven" in why


def test_auto_is_apache_kafka_where_it_can_run(tmp_path, monkeypatch):
    require_engine("kafka")  # Java 17+, and the jars fetched into the default cache
    monkeypatch.setenv("PATH", _path_with(tmp_path, "java"))  # cached jars need no Maven
    engine, why = resolve_engine("auto", default_libs_dir())
    assert engine == "kafka", why


def _broker_start(port: int, *options: str) -> str:
    """What ``recsvc broker`` prints until it is ready (it is stopped then)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "recommendation_service", "broker", "--port", str(port), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "RECSVC_BROKER_ENGINE"},
        text=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "ready on" in line:
                break
        return "".join(lines)
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


@pytest.mark.integration
def test_recsvc_broker_with_no_flags_starts_apache_kafka_here(tmp_path):
    require_engine("kafka")
    assert kafka_unavailable() is None
    port = free_port()
    text = _broker_start(port)
    assert "engine kafka:" in text, text
    assert f"ready on 127.0.0.1:{port}" in text, text
    assert TANSU_LIMIT not in text


@pytest.mark.integration
def test_tansu_states_its_limit_in_one_line_at_start():
    require_engine("tansu")
    port = free_port()
    text = _broker_start(port, "--engine", "tansu")
    assert f"ready on 127.0.0.1:{port}" in text, text
    assert text.splitlines()[1] == TANSU_LIMIT, text
