"""Every option of every command, given values people mistype: a usage message, never a
traceback.

Each value is parsed and validated by the real command; only the step that would start
something long-running (a builder, the HTTP server, a broker, the demo, a producer's send loop, the
replay itself) is replaced by one that stops the run, since reaching it means the values were
accepted. ``evaluate`` reads its log for real (the delimiter and column options act there).
"""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from recommendation_service.cli import main


class Accepted(Exception):
    """The command got past parsing and validation and would now start running."""


def _stop(*_args, **_kwargs):
    raise Accepted


#: Where each command would begin its real work (module, attribute).
RUN_STEPS = [
    ("recommendation_service.builder.model_builder", "ModelBuilder"),
    ("recommendation_service.server.granian_runner", "serve"),
    # recsvc broker's first step: finding the Java that would run Apache Kafka.
    ("recommendation_service.common.java_runtime", "find_java"),
    ("recommendation_service.sandbox.demo_runner", "run_demo"),
    ("recommendation_service.sandbox.producers", "publish_catalog"),
    ("recommendation_service.sandbox.producers", "publish_interactions"),
    ("recommendation_service.sandbox.producers", "ensure_topic"),
    ("recommendation_service.evaluation.replay", "evaluate"),
    # The start-up check that the cluster takes the Kafka settings (then forget's erasure).
    ("recommendation_service.cli.options", "check_connection"),
    ("recommendation_service.sandbox.producers", "check_connection"),
]

#: What people type by mistake (or on purpose, like a backslash-t for tabs).
VALUES = [
    "", " ", "abc", "-1", "0", "1.5", "nan", "inf", "-inf", "1e400", "99999999999999999999",
    "\\t", "\t", "a=b=c", "=", "x,,y", "s3://", "http://", "/nonexistent/dir/file", "é", "0x10",
]  # fmt: skip


def _leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def _cases():
    for path, command in _leaf_commands(main):
        for param in command.params:
            if isinstance(param, click.Option) and not param.is_flag and param.opts:
                yield pytest.param(path, param.opts[-1], id=f"{' '.join(path)} {param.opts[-1]}")


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "log.csv"
    rows = [f"u{i % 7},i{i % 11},{1_600_000_000 + i}" for i in range(60)]
    path.write_text("user,item,timestamp\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(("path", "option"), list(_cases()))
def test_no_option_value_ends_in_a_traceback(path, option, monkeypatch, tmp_path, log_file):
    for module, attribute in RUN_STEPS:
        monkeypatch.setattr(f"{module}.{attribute}", _stop)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    positional = [str(log_file)] if path == ("evaluate",) else []
    for value in VALUES:
        result = runner.invoke(main, [*path, option, value, *positional], env={})
        error = result.exception
        if error is None or isinstance(error, (SystemExit, Accepted)):
            assert "Traceback" not in result.output
            if result.exit_code not in (0, None) and not isinstance(error, Accepted):
                assert result.output.strip(), f"{option} {value!r}: exit without a message"
            continue
        raise AssertionError(
            f"recsvc {' '.join(path)} {option} {value!r} raised {type(error).__name__}: {error}"
        ) from error


def test_a_backslash_t_delimiter_means_tab(tmp_path):
    path = tmp_path / "u.data"
    rows = [f"u{i % 7}\ti{i % 11}\t{1_600_000_000 + i}" for i in range(300)]
    path.write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(
        main,
        ["evaluate", str(path), "--delimiter", "\\t", "--no-header", "--user-col", "0",
         "--item-col", "1", "--time-col", "2", "--window", "200", "--retrain-every", "100",
         "--factors", "4", "--iterations", "2", "--tune", "off"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "300 events (0 unreadable rows skipped)" in result.output
