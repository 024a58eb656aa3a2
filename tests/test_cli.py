from click.testing import CliRunner

from recommendation_service.cli import main
from recommendation_service.config import KafkaSettings, parse_kafka_options
from recommendation_service.errors import ConfigError


def test_help_lists_every_command_and_env_vars():
    result = CliRunner().invoke(main, ["builder", "--help"])
    assert result.exit_code == 0
    for text in ("--window", "--retrain-every", "RECSVC_WINDOW", "RECSVC_BOOTSTRAP_SERVERS"):
        assert text in result.output
    top = CliRunner().invoke(main, ["--help"]).output
    for command in ("broker", "builder", "serve", "demo", "user-interactions-producer"):
        assert command in top


def test_invalid_values_are_usage_errors_not_tracebacks(tmp_path):
    result = CliRunner().invoke(main, ["builder", "--window", "0", "--model-dir", str(tmp_path)])
    assert result.exit_code == 2 and "window must be >= 1" in result.output
    result = CliRunner().invoke(main, ["serve", "--workers", "0"])
    assert result.exit_code == 2 and "workers must be between 1 and 64" in result.output


def test_environment_variables_set_options(tmp_path):
    result = CliRunner().invoke(
        main, ["builder"], env={"RECSVC_RETRAIN_EVERY": "-5", "RECSVC_MODEL_DIR": str(tmp_path)}
    )
    assert result.exit_code == 2 and "retrain-every must be >= 1" in result.output


def test_kafka_options_pass_through_but_guarded_keys_are_refused():
    options = parse_kafka_options(["security.protocol=SASL_SSL", "sasl.mechanism = PLAIN"])
    settings = KafkaSettings(options=options)
    config = settings.consumer_config()
    assert config["security.protocol"] == "SASL_SSL" and config["sasl.mechanism"] == "PLAIN"
    assert config["enable.auto.offset.store"] is False
    for bad in (["no-equals"], ["=value"]):
        try:
            parse_kafka_options(bad)
        except ConfigError:
            continue
        raise AssertionError(f"{bad} accepted")
    try:
        KafkaSettings(options={"enable.auto.offset.store": "true"})
    except ConfigError as exc:
        assert "set by the service" in str(exc)
    else:
        raise AssertionError("reserved key accepted")


def test_user_options_override_consumer_defaults():
    config = KafkaSettings(options={"session.timeout.ms": "45000"}).consumer_config()
    assert config["session.timeout.ms"] == "45000"
