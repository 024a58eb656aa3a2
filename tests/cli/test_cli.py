from pathlib import Path

import click
from click.testing import CliRunner

from recommendation_service.cli import main
from recommendation_service.cli.reference import markdown_table, option_variables
from recommendation_service.config.builder import BuilderConfig
from recommendation_service.config.kafka import KafkaSettings, parse_kafka_options
from recommendation_service.errors import ConfigError


def test_help_lists_every_command_and_env_vars():
    result = CliRunner().invoke(main, ["builder", "--help"])
    assert result.exit_code == 0
    for text in ("--window", "--retrain-every", "RECSVC_BUILDER_WINDOW"):
        assert text in result.output
    top = CliRunner().invoke(main, ["--help"], terminal_width=200).output
    for command in ("broker", "builder", "serve", "demo", "user-interactions-producer"):
        assert command in top
    # Every command's summary fits: none is cut short with "...".
    commands = top.split("Commands:")[1]
    assert "..." not in commands, commands


def test_no_help_page_shows_a_range_of_none():
    """An unbounded float option has no range to show (click's text was "x<=None")."""
    for name in main.commands:
        page = CliRunner().invoke(main, [name, "--help"], terminal_width=200).output
        assert "None]" not in page and "<=None" not in page, (name, page)


def test_invalid_values_are_usage_errors_not_tracebacks(tmp_path):
    result = CliRunner().invoke(main, ["builder", "--window", "0", "--model-dir", str(tmp_path)])
    assert result.exit_code == 2 and "window must be >= 1" in result.output
    result = CliRunner().invoke(main, ["serve", "--workers", "0"])
    assert result.exit_code == 2 and "workers must be between 1 and 64" in result.output


def test_environment_variables_set_options(tmp_path):
    result = CliRunner().invoke(
        main,
        ["builder"],
        env={"RECSVC_BUILDER_RETRAIN_EVERY": "-5", "RECSVC_BUILDER_MODEL_DIR": str(tmp_path)},
    )
    assert result.exit_code == 2 and "retrain-every must be >= 1" in result.output


def test_training_never_outranks_the_consumer(tmp_path):
    # A thread cannot take back priority it gave up without privileges: a training thread
    # meant to run before the consumer would silently run at the consumer's niceness.
    result = CliRunner().invoke(
        main, ["builder", "--model-dir", str(tmp_path), "--nice", "10", "--train-nice", "5"]
    )
    assert result.exit_code == 2 and "train-nice must be nice..19" in result.output
    # Unset, it follows --nice: raising --nice alone is never refused.
    config = BuilderConfig(kafka=KafkaSettings(), model_dir=tmp_path, niceness=10)
    assert config.train_niceness == 10
    assert BuilderConfig(kafka=KafkaSettings(), model_dir=tmp_path).train_niceness == 5


def test_every_option_reads_the_variable_the_readme_documents(monkeypatch):
    """One rule for every command (RECSVC_<COMMAND>_<OPTION>), checked option by option."""
    rows = option_variables(main)
    assert len(rows) > 60
    root = click.Context(main, info_name="recsvc", **main.context_settings)
    for command, flags, variable in rows:
        names = command.split()[1:]  # "recsvc experiment report" -> experiment, report
        cmd, ctx = main, root
        for name in names:  # nested groups: each level adds its name
            cmd = cmd.commands[name]
            ctx = click.Context(cmd, info_name=name, parent=ctx, **cmd.context_settings)
        prefix = "_".join(["RECSVC", *names]).upper().replace("-", "_")
        assert variable.startswith(prefix + "_"), (command, flags, variable)
        param = next(p for p in cmd.params if " / ".join(p.opts) == flags)
        monkeypatch.setenv(variable, "1")
        assert param.resolve_envvar_value(ctx) == "1", (command, flags, variable)
        monkeypatch.delenv(variable)
    page = (Path(__file__).parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    regenerate = "python -m recommendation_service.cli.reference"
    assert markdown_table(main) in page, f"docs/cli.md table is stale: {regenerate}"


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


def test_the_spark_trainer_says_what_it_needs(tmp_path, monkeypatch):
    from recommendation_service.training import spark_als as spark_trainer

    monkeypatch.setattr(spark_trainer, "spark_unavailable", lambda: "pyspark is not installed")
    result = CliRunner().invoke(
        main, ["builder", "--trainer", "spark", "--model-dir", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    assert "--trainer spark: pyspark is not installed" in result.output


def test_the_kafka_lease_needs_the_model_store(tmp_path):
    result = CliRunner().invoke(main, ["builder", "--lease", "kafka", "--model-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--lease kafka needs --model-store" in result.output
    result = CliRunner().invoke(main, ["builder", "--lease-timeout", "0.5"])
    assert result.exit_code == 2 and "--lease-timeout" in result.output


def test_the_lease_follows_the_model_store_unless_chosen():
    from recommendation_service.cli.builder import lease_of

    assert lease_of("auto", "s3://b/p") == "kafka" and lease_of("auto", None) == "directory"
    assert lease_of("directory", "s3://b/p") == "directory"


def test_index_kinds_are_named_ones_kept_in_order_once(tmp_path):
    from recommendation_service.cli.builder import _ann_kinds

    assert _ann_kinds("ivf_ip, split_l2aug,ivf_ip") == ("ivf_ip", "split_l2aug")
    for wrong, said in (("hnsw_ip,faiss", "faiss"), (" , ", "none given")):
        result = CliRunner().invoke(
            main, ["builder", "--ann-kinds", wrong, "--model-dir", str(tmp_path)]
        )
        assert result.exit_code == 2 and f"--ann-kinds: {said}: expected" in result.output
