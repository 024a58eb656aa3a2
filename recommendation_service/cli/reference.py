"""The environment variable of every ``recsvc`` option, as a Markdown table for docs/cli.md.

    python -m recommendation_service.cli.reference

The names come from click's own rule (the context's ``auto_envvar_prefix`` plus the option's
parameter name), computed on real contexts, so the table cannot drift from what ``recsvc``
reads; a test compares it with docs/cli.md.
"""

from __future__ import annotations

import click


def option_variables(group: click.Group) -> list[tuple[str, str, str]]:
    """(command, option flags, environment variable) for every option of every command."""
    root = click.Context(group, info_name="recsvc", **group.context_settings)
    rows = []
    for param in group.params:
        # --version and --help act at once and read nothing from the environment.
        if isinstance(param, click.Option) and param.expose_value and not param.hidden:
            rows.append(("recsvc", " / ".join(param.opts), _variable(param, root)))
    rows += _commands(group, root, "recsvc")
    return rows


def _commands(group: click.Group, parent: click.Context, path: str) -> list:
    rows = []
    for name in sorted(group.commands):
        command = group.commands[name]
        ctx = click.Context(command, info_name=name, parent=parent, **command.context_settings)
        for param in command.params:
            if isinstance(param, click.Option) and param.expose_value and not param.hidden:
                rows.append((f"{path} {name}", " / ".join(param.opts), _variable(param, ctx)))
        if isinstance(command, click.Group):  # e.g. recsvc experiment report
            rows += _commands(command, ctx, f"{path} {name}")
    return rows


def _variable(param: click.Option, ctx: click.Context) -> str:
    if param.envvar:
        return param.envvar if isinstance(param.envvar, str) else param.envvar[0]
    # click's automatic variable (what Option.resolve_envvar_value reads).
    return f"{ctx.auto_envvar_prefix}_{param.name.upper()}"


def markdown_table(group: click.Group) -> str:
    lines = ["| command | option | environment variable |", "| --- | --- | --- |"]
    lines += [f"| `{c}` | `{o}` | `{v}` |" for c, o, v in option_variables(group)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from . import main

    click.echo(markdown_table(main), nl=False)
