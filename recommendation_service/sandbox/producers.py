"""The demo producers: a synthetic catalog to ``items`` and user interactions to ``interactions``.

``demo/item_producer.py`` and ``demo/user_interactions_producer.py`` are the scripts users run;
``recsvc demo`` starts the same code as child processes.
"""

from __future__ import annotations

import json
import logging
import time

import click
from confluent_kafka import KafkaException, Producer

from ..common.param_types import FiniteFloat
from ..config.kafka import KafkaSettings, parse_kafka_options
from ..config.kafka_check import check_connection
from ..errors import ConfigError, KafkaRefused
from .brokers import ensure_topic
from .synthetic import TasteModel, make_catalog

logger = logging.getLogger(__name__)


class Pacer:
    """Spaces a loop's iterations at ``rate`` per second from its start, catching up after
    slow iterations instead of drifting."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = time.monotonic()

    def ahead(self, done: int) -> float:
        """Seconds until iteration ``done + 1`` is due (<= 0: due now)."""
        return done / self.rate - (time.monotonic() - self.start)

    def wait(self, done: int) -> None:
        """Sleep until iteration ``done + 1`` is due."""
        ahead = self.ahead(done)
        if ahead > 0:
            time.sleep(ahead)


def _producer(bootstrap_servers: str, options: dict[str, str]) -> Producer:
    # Batches of up to 500 ms (two a second), as a high-throughput producer sends them: fewer
    # requests for the broker and the demo's CPU than one per message.
    return Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 500, **options})


def _delivery_failed(err, msg) -> None:
    if err is not None:
        logger.warning("delivery to %s failed: %s", msg.topic(), err)


def _produce(producer: Producer, topic: str, value: bytes, key: bytes | None = None) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=_delivery_failed)
            return
        except BufferError:  # local queue full: let deliveries drain, then retry
            producer.poll(0.1)


def publish_catalog(bootstrap_servers, topic, n_items, n_categories, seed, options) -> int:
    """Publish the catalog as JSON objects keyed by item id. Returns the number published."""
    producer = _producer(bootstrap_servers, options)
    catalog = make_catalog(n_items, n_categories, seed)
    for k, entry in enumerate(catalog):
        # Prices 5..99 and a "sale" tag on every fifth item, so filters have something to do.
        fields = {"id": entry.item, "category": entry.category, "title": entry.title}
        fields |= {"price": float(5 + (k * 37) % 95), "tags": ["sale"] if k % 5 == 0 else []}
        _produce(producer, topic, json.dumps(fields).encode(), entry.item.encode())
    remaining = producer.flush(30)
    if remaining:
        raise click.ClickException(f"{remaining} catalog messages were not delivered")
    return len(catalog)


def publish_interactions(
    bootstrap_servers,
    topic,
    n_users,
    n_items,
    n_categories,
    count,
    rate,
    seed,
    fmt,
    focus,
    options,
    show_users=3,
) -> int:
    """Publish ``count`` interactions (0 = until interrupted) at ``rate`` events/s."""
    producer = _producer(bootstrap_servers, options)
    tastes = TasteModel(make_catalog(n_items, n_categories, seed), n_users, focus, seed)
    for user in tastes.users[:show_users]:
        click.echo(f"  {user} mostly interacts with '{tastes.favourite[user]}'")
    sent = 0
    pacer = Pacer(rate) if rate > 0 else None
    batch: list[tuple[str, str]] = []
    try:
        while count == 0 or sent < count:
            if not batch:
                batch = tastes.events(1000)[::-1]
            user, item = batch.pop()
            if fmt == "json":
                value = json.dumps({"user": user, "item": item, "ts": time.time()}).encode()
            else:
                value = f"{user}:{item}".encode()
            _produce(producer, topic, value, user.encode())
            sent += 1
            if pacer is not None:
                ahead = pacer.ahead(sent)
                if ahead > 0:
                    producer.poll(0)
                    time.sleep(ahead)
            if sent % 10_000 == 0:
                producer.poll(0)
                logger.info("sent %d interactions", sent)
    except KeyboardInterrupt:
        pass
    producer.flush(30)
    return sent


_common = [
    click.option(
        "--bootstrap-servers",
        default="127.0.0.1:9092",
        show_default=True,
        show_envvar=True,
        help="Kafka bootstrap servers.",
    ),
    click.option(
        "--items",
        "n_items",
        type=click.IntRange(1),
        default=400,
        show_default=True,
        show_envvar=True,
        help="Catalog size.",
    ),
    click.option(
        "--categories",
        type=click.IntRange(1, 16),
        default=8,
        show_default=True,
        show_envvar=True,
        help="Number of categories.",
    ),
    click.option(
        "--seed",
        type=int,
        default=7,
        show_default=True,
        show_envvar=True,
        help="Random seed; use the same value for both producers.",
    ),
    click.option(
        "--kafka-option",
        "kafka_option",
        multiple=True,
        metavar="KEY=VALUE",
        show_envvar=True,
        help="Extra librdkafka property (repeatable; env: whitespace-separated).",
    ),
    click.option(
        "--create-topic/--no-create-topic",
        default=True,
        show_default=True,
        show_envvar=True,
        help="Create the topic first if it does not exist.",
    ),
]


def _kafka_options(bootstrap_servers: str, topic: str, pairs, what: str) -> dict[str, str]:
    """The producer's librdkafka options, checked against the cluster (a refusal exits)."""
    try:
        options = parse_kafka_options(pairs)  # click splits a variable's value
        settings = KafkaSettings(bootstrap_servers=bootstrap_servers, topic=topic, options=options)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        check_connection(settings, what)
    except KafkaRefused as exc:
        raise click.ClickException(str(exc)) from exc
    return options


def common_options(func):
    for option in reversed(_common):
        func = option(func)
    return func


# Run as ``recsvc item-producer`` these read RECSVC_ITEM_PRODUCER_<OPTION>; the context settings
# give the standalone scripts in demo/ the same variables.
@click.command(
    "item-producer",
    short_help="Publish the synthetic demo catalog to the items topic.",
    context_settings={"auto_envvar_prefix": "RECSVC_ITEM_PRODUCER"},
)
@common_options
@click.option(
    "--topic", default="items", show_default=True, show_envvar=True, help="Catalog topic."
)
def item_producer(bootstrap_servers, n_items, categories, seed, kafka_option, create_topic, topic):
    """Publish a synthetic catalog (ids, categories, titles) to the items topic."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    options = _kafka_options(bootstrap_servers, topic, kafka_option, "recsvc item-producer")
    try:
        if create_topic:
            ensure_topic(bootstrap_servers, topic, options=options)
        n = publish_catalog(bootstrap_servers, topic, n_items, categories, seed, options)
    except KafkaException as exc:
        raise click.ClickException(f"Kafka error: {exc}") from exc
    click.echo(f"published {n} catalog items to '{topic}'")


@click.command(
    "user-interactions-producer",
    short_help="Publish synthetic user interactions at a steady rate.",
    context_settings={"auto_envvar_prefix": "RECSVC_USER_INTERACTIONS_PRODUCER"},
)
@common_options
@click.option(
    "--topic",
    default="interactions",
    show_default=True,
    show_envvar=True,
    help="Interactions topic.",
)
@click.option(
    "--users",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    show_envvar=True,
    help="Number of synthetic users.",
)
@click.option(
    "--count",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    show_envvar=True,
    help="Interactions to send; 0 sends until interrupted.",
)
@click.option(
    "--rate",
    type=FiniteFloat(0),
    default=200.0,
    show_default=True,
    show_envvar=True,
    help="Events per second; 0 sends as fast as possible.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    show_envvar=True,
    help="text = 'user:item', json = {user, item, ts}.",
)
@click.option(
    "--focus",
    type=FiniteFloat(0, 1),
    default=0.85,
    show_default=True,
    show_envvar=True,
    help="Share of a user's interactions in their favourite category.",
)
def user_interactions_producer(
    bootstrap_servers,
    n_items,
    categories,
    seed,
    kafka_option,
    create_topic,
    topic,
    users,
    count,
    rate,
    fmt,
    focus,
):
    """Publish interactions of synthetic users who each favour one category."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    options = _kafka_options(
        bootstrap_servers, topic, kafka_option, "recsvc user-interactions-producer"
    )
    try:
        if create_topic:
            ensure_topic(bootstrap_servers, topic, options=options)
        sent = publish_interactions(
            bootstrap_servers,
            topic,
            users,
            n_items,
            categories,
            count,
            rate,
            seed,
            fmt,
            focus,
            options,
        )
    except KafkaException as exc:
        raise click.ClickException(f"Kafka error: {exc}") from exc
    click.echo(f"published {sent} interactions to '{topic}'")
