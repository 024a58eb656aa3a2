"""The environment variable of every ``recsvc`` option, as a Markdown table for docs/cli.md.

    python -m recommendation_service.cli.reference

The names come from click's own rule (the context's ``auto_envvar_prefix`` plus the option's
parameter name), computed on real contexts, so the table cannot drift from what ``recsvc``
reads; a test compares it with docs/cli.md.
"""

from __future__ import annotations

import click

from .variables import option_variables


def markdown_table(group: click.Group) -> str:
    lines = ["| command | option | environment variable |", "| --- | --- | --- |"]
    lines += [f"| `{c}` | `{o}` | `{v}` |" for c, o, v in option_variables(group)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from . import main

    click.echo(markdown_table(main), nl=False)
