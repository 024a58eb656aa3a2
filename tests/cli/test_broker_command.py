"""``recsvc broker``: Apache Kafka on whatever Java this machine has (the pip one at least),
its heap an option checked at parse time."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from recommendation_service.cli import main

from ..conftest import free_port, require_kafka


def _broker_start(port: int, *options: str) -> str:
    """What ``recsvc broker`` prints until it is ready (it is stopped then)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "recommendation_service", "broker", "--port", str(port), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("RECSVC_BROKER_")},
        text=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "ready on" in line or "Error" in line:
                break
        return "".join(lines)
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


@pytest.mark.integration
def test_recsvc_broker_starts_apache_kafka_and_says_which_java_runs_it():
    require_kafka()
    port = free_port()
    text = _broker_start(port, "--kafka-heap", "256m")
    assert f"Apache Kafka 4.1.1 (KRaft, single node) ready on 127.0.0.1:{port}" in text, text
    assert "using Java " in text and " from " in text, text


@pytest.mark.parametrize("heap", ["lots", "512", "0m", "-1g", "512 m"])
def test_a_heap_that_is_not_a_jvm_size_is_a_usage_error(heap):
    result = CliRunner().invoke(main, ["broker", "--kafka-heap", heap, "--fetch-only"])
    assert result.exit_code == 2
    assert "expected a size such as 256m, 512m or 2g" in result.output

