"""The ``recsvc`` command group: one module per command, shared option sets in ``options``.

Every option can also be set by an environment variable, ``RECSVC_<COMMAND>_<OPTION>`` (see
:mod:`~recommendation_service.cli.options`; shown in ``--help``). Options are parsed and
validated once, into frozen config objects, by the command that owns them.
"""

from __future__ import annotations

import logging
import os

import click

from .. import __version__
from ..sandbox.producers import item_producer, user_interactions_producer
from .broker import broker
from .builder import builder
from .demo import demo
from .evaluate import evaluate
from .experiment import experiment
from .forget import forget
from .options import ENV_PREFIX, opt
from .serve import serve
from .variables import check_variables


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
    )


@click.group(
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        "auto_envvar_prefix": ENV_PREFIX,
    }
)
@click.version_option(__version__, prog_name="recsvc")
@opt(
    "--log-level",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Least severe log messages shown, of every process the command starts.",
)
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """Real-time recommendations from a Kafka stream of user-item interactions."""
    _setup_logging(log_level)
    if ctx.invoked_subcommand is not None:
        check_variables(main, ctx.invoked_subcommand, os.environ)


for _command in (
    broker,
    builder,
    serve,
    evaluate,
    experiment,
    forget,
    demo,
    item_producer,
    user_interactions_producer,
):
    main.add_command(_command)
