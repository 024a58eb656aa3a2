"""Refusing a misspelt or renamed ``RECSVC_*`` variable instead of silently ignoring it.

Click reads the variables of a command's options and ignores every other one, so a typo
(``RECSVC_BUILDER_WINDOWS``) or a variable of an earlier release
(``RECSVC_BUILDER_KAFKA_OPTIONS``, now ``RECSVC_BUILDER_KAFKA_OPTION`` after its option)
would leave a setting at its default -- for security options, a client that cannot connect.
A command refuses to start when a variable with its prefix names none of its options.
The names come from click's own rule (the context's ``auto_envvar_prefix`` plus the option's
parameter name), computed on real contexts, so they cannot drift from what ``recsvc`` reads.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import click

from .options import ENV_PREFIX


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


#: Variables of earlier releases and what replaced them (said in the error).
RENAMED = {"KAFKA_OPTIONS": "KAFKA_OPTION"}


def check_variables(group: click.Group, command: str, environ: Mapping[str, str]) -> None:
    """Raise a usage error naming every ``RECSVC_<COMMAND>_*`` variable in ``environ`` that
    no option of ``command`` (or its subcommands) reads."""
    prefix = f"{ENV_PREFIX}_{command.upper().replace('-', '_')}_"
    known = {v for c, _, v in option_variables(group) if c.split()[1:2] == [command]}
    problems = []
    for name in sorted(environ):
        if not name.startswith(prefix) or name in known:
            continue
        tail = name[len(prefix) :]
        if tail in RENAMED and prefix + RENAMED[tail] in known:
            problems.append(f"{name} is now {prefix + RENAMED[tail]}")
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{name} is not a setting of recsvc {command}{hint}")
    if problems:
        raise click.UsageError("; ".join(problems) + ". Every option's variable: recsvc "
                               f"{command} --help, or docs/cli.md.")  # fmt: skip
