"""``recsvc forget USER``: erase a user from the service, for operators (no server needed)."""

from __future__ import annotations

import json

import click

from ..config.kafka import KafkaSettings, parse_kafka_options
from ..data.erasures import erasures_topic_for
from ..erasure.requests import request_erasure
from ..errors import ErasureError
from .options import (
    config_or_exit,
    erasures_topic_option,
    kafka_options,
    kafka_or_exit,
    split_env_list,
)


@click.command(short_help="Erase a user: the builder and every server forget them.")
@click.argument("user")
@kafka_options[0]
@kafka_options[1]
@kafka_options[2]
@erasures_topic_option
def forget(user, bootstrap_servers, topic, kafka_option, erasures_topic) -> None:
    """Record the erasure of USER on the erasures topic, as DELETE /users/{user} does.

    The builder drops USER's events from its window (and from every window it rebuilds) and
    its next version has no row for them; servers answer USER as unknown. Events of USER
    produced after this are a new user. Prints the erasure as JSON.
    """
    kafka = config_or_exit(
        lambda: KafkaSettings(
            bootstrap_servers=bootstrap_servers,
            topic=topic,
            options=parse_kafka_options(split_env_list(kafka_option)),
        )
    )
    if not user.strip():
        raise click.UsageError("USER must be a non-empty user id")
    kafka_or_exit(kafka, "recsvc forget")
    name = erasures_topic_for(topic, erasures_topic)
    try:
        position, erasure = request_erasure(kafka, name, user)
    except ErasureError as exc:
        raise click.ClickException(str(exc)) from exc
    before = {str(p): o for p, o in sorted(erasure.before.items())}
    click.echo(json.dumps({"user": user, "erased_at": erasure.erased_at, "position": position,
                           "events_before": before, "topic": name}))  # fmt: skip
