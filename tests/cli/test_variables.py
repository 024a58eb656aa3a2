"""A misspelt or renamed RECSVC_* variable stops the command instead of being ignored."""

from __future__ import annotations

from click.testing import CliRunner

from recommendation_service.cli import main


def run(env: dict, *args: str):
    return CliRunner().invoke(main, [*args], env=env)


def test_a_renamed_variable_names_its_replacement():
    result = run({"RECSVC_SERVE_KAFKA_OPTIONS": "security.protocol=SASL_SSL"}, "serve", "--help")
    assert result.exit_code == 2
    assert "RECSVC_SERVE_KAFKA_OPTIONS is now RECSVC_SERVE_KAFKA_OPTION" in result.output


def test_a_misspelt_variable_suggests_the_closest_setting():
    result = run({"RECSVC_BUILDER_WINDOWS": "5"}, "builder", "--help")
    assert result.exit_code == 2
    assert "did you mean RECSVC_BUILDER_WINDOW?" in result.output


def test_variables_of_other_commands_and_known_ones_pass():
    env = {"RECSVC_BUILDER_WINDOWS": "5", "RECSVC_SERVE_PORT": "5001",
           "RECSVC_EXPERIMENT_REPORT_URL": "http://127.0.0.1:1"}  # fmt: skip
    assert run(env, "serve", "--help").exit_code == 0
    assert run(env, "experiment", "report", "--help").exit_code == 0


def test_the_kafka_option_variable_matches_the_option():
    from recommendation_service.cli.variables import option_variables

    rows = [(c, v) for c, o, v in option_variables(main) if o == "--kafka-option"]
    assert rows and all(v.endswith("_KAFKA_OPTION") for _, v in rows)
