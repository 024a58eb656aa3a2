"""recsvc evaluate: log reading and the replay on a small generated log with planted structure."""

import gzip

import pytest
from click.testing import CliRunner

from recommendation_service.cli import main
from recommendation_service.errors import ConfigError
from recommendation_service.evaluation.interaction_log import LogFormat, read_log
from recommendation_service.evaluation.replay import EvalConfig, evaluate

from ..conftest import SMALL_ALS, planted_tastes


def session_log(n_sessions=1500, seed=5):
    """Users in sessions: each session walks a few items of the user's favourite category."""
    tastes = planted_tastes(n_users=150, n_items=400, categories=4, seed=seed)
    rows = []
    t = 0
    for user, _ in tastes.events(n_sessions):
        items = tastes.by_category[tastes.favourite[user]]
        start = int(tastes.rng.integers(len(items)))
        for step in range(4):  # neighbouring items co-occur: planted sequential structure
            rows.append((user, items[(start + step) % len(items)], t))
            t += 1
    return rows


def write_log(path, rows, delimiter=",", header=True):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as fh:
        if header:
            fh.write(delimiter.join(["timestamp", "user", "item"]) + "\n")
        for user, item, t in rows:
            fh.write(delimiter.join([str(t), user, item]) + "\n")


def test_read_log_formats(tmp_path):
    rows = [("u1", "a", 3), ("u2", "b", 1), ("u1", "c", 2)]
    write_log(tmp_path / "log.csv.gz", rows)
    events, skipped = read_log(tmp_path / "log.csv.gz")
    assert [(e.user, e.item, e.ts) for e in events] == [
        ("u2", "b", 1),
        ("u1", "c", 2),
        ("u1", "a", 3),
    ]
    assert skipped == 0
    write_log(tmp_path / "log.tsv", rows, delimiter="\t", header=False)
    events, _ = read_log(tmp_path / "log.tsv", LogFormat("1", "2", "0", has_header=False))
    assert len(events) == 3
    (tmp_path / "iso.csv").write_text("when,who,what,qty\n2024-01-01T00:01:00,u,i,2\nbad,u,i,1\n")
    events, skipped = read_log(tmp_path / "iso.csv", LogFormat("who", "what", "when", "qty"))
    assert events[0].weight == 2 and events[0].ts == 1704067260.0 and skipped == 1
    with pytest.raises(ConfigError, match="not found"):
        read_log(tmp_path / "iso.csv", LogFormat(user_col="nobody"))


def test_service_beats_the_baselines_on_planted_sessions():
    from recommendation_service.data.events import Event

    events = [Event(u, i, 1.0, float(t)) for u, i, t in session_log()]
    report = evaluate(events, EvalConfig(window=5000, retrain_every=500, als=SMALL_ALS))
    assert report.scored > 400
    service = report.hit_rate("service")
    assert service > 2 * report.hit_rate("popularity")
    assert service > 2 * report.hit_rate("refit-only")
    assert report.ndcg("service") > report.ndcg("popularity")
    assert len(report.refit_seconds) >= 1


def test_evaluate_command_prints_all_methods(tmp_path):
    write_log(tmp_path / "log.csv", session_log(600))
    out = tmp_path / "figures.json"
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            str(tmp_path / "log.csv"),
            "--window",
            "3000",
            "--retrain-every",
            "300",
            "--factors",
            "16",
            "--json-out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("service", "popularity", "refit-only", "refit-only+popular", "events/s"):
        assert name in result.output
    assert '"hit_rate"' in out.read_text()


def test_evaluate_reports_bad_columns(tmp_path):
    write_log(tmp_path / "log.csv", session_log(50))
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "log.csv"), "--user-col", "x"])
    assert result.exit_code == 2 and "column 'x' not found" in result.output


def test_the_rank_stage_is_scored_side_by_side_and_can_be_turned_off():
    from recommendation_service.data.events import Event
    from recommendation_service.training.ranker_fit import RankerParams

    events = [Event(u, i, 1.0, float(t)) for u, i, t in session_log(n_sessions=2500)]
    # One refit, before the scored events: the service is its chosen ranker throughout.
    base = {"window": 8000, "retrain_every": 5000, "als": SMALL_ALS}
    report = evaluate(events, EvalConfig(**base, ranker=RankerParams(trees=30)))
    figures = report.as_dict()
    assert set(figures["channel_recall"]) == {
        "als", "follows", "neighbours", "popular", "trending", "all",
    }  # fmt: skip
    assert figures["channel_recall"]["all"] >= max(
        v for k, v in figures["channel_recall"].items() if k != "all"
    )
    assert len(figures["rankers"]) == 1
    chosen = figures["rankers"][0]["chosen"]
    assert report.hit_rate("service") == report.hit_rate(f"{chosen} ranker")
    off = evaluate(events, EvalConfig(**base, ranker=None))
    assert off.hit_rate("service") == off.hit_rate("service without rank stage")
    assert off.as_dict()["channel_recall"] == {} and off.rankers == []


def test_evaluate_prints_each_channel_s_recall_and_each_refit_s_ranker(tmp_path):
    write_log(tmp_path / "log.csv", session_log(n_sessions=1200))
    result = CliRunner().invoke(
        main, ["evaluate", str(tmp_path / "log.csv"), "--window", "5000", "--retrain-every",
               "600", "--factors", "16", "--tune", "off"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "candidate recall" in result.output and "refit 0: ranks by" in result.output
    off = CliRunner().invoke(
        main, ["evaluate", str(tmp_path / "log.csv"), "--window", "5000", "--retrain-every",
               "600", "--factors", "16", "--tune", "off", "--ranker", "off"],
    )  # fmt: skip
    assert off.exit_code == 0 and "candidate recall" not in off.output


def test_the_replay_keeps_the_rankers_between_fits_as_the_builder_does():
    from recommendation_service.data.events import Event
    from recommendation_service.training.ranker_fit import RankerParams

    events = [Event(u, i, 1.0, float(t)) for u, i, t in session_log(n_sessions=2500)]
    refit_every = len(events) // 10 // 3 + 1  # three refits over the scored tenth, plus the first
    config = EvalConfig(window=8000, retrain_every=refit_every, als=SMALL_ALS,
                        ranker=RankerParams(trees=10, every=2))  # fmt: skip
    rankers = evaluate(events, config).as_dict()["rankers"]
    assert [r["fitted"] for r in rankers] == [True, False, True, False][: len(rankers)]
    assert len(rankers) >= 3
    # A kept refit carries the rankers of the one before it, and says so.
    assert rankers[1]["reason"] == rankers[0]["reason"]
