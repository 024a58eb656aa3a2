"""Where the interactions live and how every Kafka client of the service reaches them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import ConfigError
from .checks import require

#: librdkafka settings that make group joins take seconds instead of ~20 s, and keep a fetch
#: from idling at the broker for long (a fetch that waits for more data adds its wait to the
#: delay of a lone event: at most 50 ms instead of the 500 ms default).
#: Users override any of them with ``--kafka-option``; they suit production brokers too.
DEFAULT_CONSUMER_OPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "500",
        "fetch.wait.max.ms": "50",
        "fetch.max.bytes": "52428800",
        "max.partition.fetch.bytes": "10485760",
    }
)

# Keys the builder controls itself because its offset guarantees depend on them.
_RESERVED_CONSUMER_KEYS = frozenset(
    {"group.id", "bootstrap.servers", "enable.auto.offset.store", "enable.partition.eof"}
)


def parse_kafka_options(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Parse ``key=value`` librdkafka properties given on the command line.

    Raises
    ------
    ConfigError
        If an entry has no ``=`` or an empty key.
    """
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"Kafka option {pair!r} must look like key=value")
        options[key] = value.strip()
    return options


@dataclass(frozen=True)
class KafkaSettings:
    """Where the interactions live and how to reach them.

    Parameters
    ----------
    bootstrap_servers
        Comma-separated ``host:port`` list.
    topic
        The interactions topic.
    group_id
        Consumer group of the builder; its committed offsets mark what the window holds.
    dead_letter_topic
        Optional topic that receives a copy of every malformed message.
    options
        Extra librdkafka properties passed to every client (security, timeouts, fetch sizes).
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "interactions"
    group_id: str = "recsvc-builder"
    dead_letter_topic: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require(bool(self.bootstrap_servers.strip()), "bootstrap servers must not be empty")
        require(bool(self.topic.strip()), "topic must not be empty")
        require(bool(self.group_id.strip()), "group id must not be empty")
        require(
            self.dead_letter_topic is None or self.dead_letter_topic != self.topic,
            "the dead-letter topic must differ from the interactions topic",
        )
        reserved = _RESERVED_CONSUMER_KEYS & set(self.options)
        require(not reserved, f"these Kafka options are set by the service: {sorted(reserved)}")
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def client_config(self) -> dict[str, str]:
        """Common settings for any client (producer, admin) of this cluster."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.options}

    def consumer_config(self, group_id: str | None = None) -> dict[str, object]:
        """Consumer settings: fast-join defaults, then the user's options, then ours."""
        config: dict[str, object] = {
            **DEFAULT_CONSUMER_OPTIONS,
            "auto.offset.reset": "earliest",
            **self.client_config(),
        }
        config.update(
            {
                "group.id": group_id or self.group_id,
                # Offsets are stored only after an event is in the window; auto-commit then
                # commits exactly what was applied.
                "enable.auto.offset.store": False,
                "enable.partition.eof": False,
            }
        )
        return config
