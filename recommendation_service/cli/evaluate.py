"""``recsvc evaluate``: replay evaluation of a log file."""

from __future__ import annotations

from pathlib import Path

import click

from ..common.param_types import Separator
from ..errors import ConfigError
from .options import (
    als_params,
    config_or_exit,
    decay_params,
    model_options,
    opt,
    ranker_options,
    ranker_params,
    realtime_options,
    realtime_params,
    sequence_options,
    sequence_params,
    tune_params,
    tuning_options,
)


@click.command(short_help="Replay a log file and score the recommendations.")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@opt("--user-col", default="user", help="User column: name or 0-based index.")
@opt("--item-col", default="item", help="Item column: name or index.")
@opt("--time-col", default="timestamp", help="Time column: name or index.")
@opt("--weight-col", default=None, help="Optional weight column.")
@opt(
    "--delimiter",
    default=None,
    type=Separator(),
    help="Field separator: one character, or \\t / tab for tabs (default: by file name).",
)
@opt("--header/--no-header", default=True, help="First row names columns.")
@opt(
    "--test-fraction",
    default=0.1,
    type=click.FloatRange(0.001, 0.999),
    help="Share of the newest events that are scored.",
)
@opt(
    "--max-test-events",
    default=0,
    type=click.IntRange(0),
    help="Score only this many test events (0 = all).",
)
@opt(
    "--json-out",
    default=None,
    type=click.Path(path_type=Path),
    help="Also write the figures as JSON here.",
)
@model_options
@realtime_options
@sequence_options
@tuning_options
@ranker_options
def evaluate(log, **opts) -> None:
    """Replay LOG (CSV/TSV, .gz accepted) and score the service against baselines."""
    import json

    from tqdm import tqdm

    from ..evaluation.interaction_log import LogFormat, read_log
    from ..evaluation.replay import BASELINES, METHODS, EvalConfig
    from ..evaluation.replay import evaluate as run_evaluation

    fmt = LogFormat(
        opts["user_col"],
        opts["item_col"],
        opts["time_col"],
        opts["weight_col"],
        opts["delimiter"],
        opts["header"],
    )
    config = config_or_exit(
        lambda: EvalConfig(
            window=opts["window"],
            retrain_every=opts["retrain_every"],
            als=als_params(opts),
            realtime=realtime_params(opts),
            sequence=sequence_params(opts),
            decay=decay_params(opts),
            test_fraction=opts["test_fraction"],
            max_test_events=opts["max_test_events"],
            tuning=tune_params(opts),
            ranker=ranker_params(opts),
        )
    )
    try:
        events, skipped = read_log(log, fmt)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    n_test = len(events) - int(len(events) * (1 - config.test_fraction))
    if config.max_test_events:
        n_test = min(n_test, config.max_test_events)
    click.echo(f"{len(events)} events ({skipped} unreadable rows skipped); scoring {n_test}")
    with tqdm(total=n_test, unit="ev", disable=None) as bar:
        report = run_evaluation(events, config, progress=bar.update)
    figures = report.as_dict()
    pop = report.hit_rate("popularity")
    seed = report.hit_rate("refit-only")
    click.echo(f"\n{'method':<28}{'HR@10':>9}{'NDCG@10':>9}")
    for method in METHODS:
        click.echo(f"{method:<28}{report.hit_rate(method):>9.4f}{report.ndcg(method):>9.4f}")
    if report.channel_hits:
        recall = ", ".join(f"{c} {report.channel_recall(c):.3f}" for c in report.channel_hits)
        click.echo(f"candidate recall (scored events whose item a channel brought): {recall}")
    best = max(BASELINES, key=report.hit_rate)
    click.echo(f"best baseline: {best}")
    service = report.hit_rate("service")
    if pop and seed:
        click.echo(
            f"\nservice / popularity: {service / pop:.2f}x   "
            f"service / refit-only: {service / seed:.2f}x"
        )
    click.echo(
        f"{figures['scored_events']} scored of {figures['test_events']} test events, "
        f"{figures['events_per_second']} events/s, {figures['refits']} refits, "
        f"{figures['refit_seconds_mean']} s per refit"
    )
    for r in figures["rankers"]:
        kept = "" if r.get("fitted", True) else "kept from an earlier refit: "
        click.echo(f"refit {r['refit']}: ranks by {r['chosen']} ({kept}{r['reason']})")
    for choice in figures["tuning_choices"]:
        settings = ", ".join(
            f"{k} {v:g}" for k, v in choice.items() if k != "refits" and v is not None
        )
        click.echo(f"tuning chose {settings} for {choice['refits']} fit(s)")
    if opts["json_out"]:
        figures["config"] = {
            "window": config.window,
            "retrain_every": config.retrain_every,
            "als": vars(config.als),
            "realtime": vars(config.realtime),
            "sequence": None
            if config.sequence is None
            else {"distance": config.sequence.distance, **config.sequence.weights.as_dict()},
            "tune": opts["tune"],
            "ranker": vars(config.ranker),
        }
        opts["json_out"].write_text(json.dumps(figures, indent=2))
