"""``recsvc experiment report``: per-variant click-through and conversion of the running
experiment, with 95% intervals and a two-proportion test against the first variant."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import click

from .options import opt

VERDICTS = {
    "differs": "differs from control (p < 0.05)",
    "no_difference": "no difference (a 10% lift would have shown)",
    "too_small": "too small to decide",
}


@click.group(short_help="A/B experiments: read their results.")
def experiment() -> None:
    """A/B experiments run by the servers' --rules-file ([experiment])."""


@experiment.command(short_help="Per-variant click-through and conversion, with tests.")
@opt("--url", default="http://127.0.0.1:5000", help="A server of the experiment.")
@opt(
    "--format",
    default="text",
    type=click.Choice(["text", "json"]),
    help="text: the report; json: the server's /experiments answer as is.",
)
@opt(
    "--timeout",
    default=10.0,
    type=click.FloatRange(0.1, 3600),
    help="Seconds to wait for the server.",
)
def report(url: str, format: str, timeout: float) -> None:
    """Print each variant's lists, click-through and conversion with 95% confidence intervals,
    the lift over the first (control) variant, a two-proportion test, and whether the sample
    is large enough to decide."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/experiments", timeout=timeout) as resp:
            body = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {url}/experiments: {exc}") from exc
    if format == "json":
        click.echo(json.dumps(body, indent=2))
        return
    click.echo(render(body))


def render(body: dict) -> str:
    """The report as text."""
    exp = body.get("experiment")
    if exp is None:
        return "No experiment runs on this server (start it with --rules-file holding one)."
    lines = [f"experiment {exp['name']} (salt {exp['salt']!r})"]
    if not body.get("tracking"):
        lines.append("no counts yet: run the builder with --impressions-topic to attribute clicks")
    shares = {v["name"]: v["share"] for v in exp["variants"]}
    total = sum(shares.values())
    for title, key, count in (
        ("click-through (lists with a click)", "click_through", "clicked_lists"),
        ("conversion (lists with a purchase)", "conversion", "converted_lists"),
    ):
        lines += ["", title, _row("variant", "share", "lists", "hits", "rate", "95% CI",
                                  "lift", "p", "verdict")]  # fmt: skip
        for name, row in body.get(key, {}).items():
            low, high = row["ci95"]
            lift = row.get("lift")
            lines.append(
                _row(
                    name,
                    f"{shares.get(name, 0) / total:.0%}",
                    f"{row['lists']:,}",
                    f"{row[count]:,}",
                    f"{row['rate']:.2%}",
                    f"{low:.2%}-{high:.2%}",
                    "" if lift is None else f"{lift:+.1%}",
                    "" if "p_value" not in row else f"{row['p_value']:.3g}",
                    _verdict(row),
                )
            )
    return "\n".join(lines)


def _verdict(row: dict) -> str:
    verdict = row.get("verdict")
    if verdict is None:
        return "(control)"
    text = VERDICTS[verdict]
    if verdict == "too_small" and row.get("lists_needed"):
        text += f": ~{row['lists_needed']:,} lists per variant needed"
    return text


def _row(*cells) -> str:
    widths = (10, 6, 9, 8, 8, 15, 8, 8)
    return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + "  " + str(cells[-1])
