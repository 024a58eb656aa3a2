"""Topics that must have exactly one partition: one order for every record in them.

The erasures topic (one position per erasure) and the builder lease topic (one owner) are
created with a single partition when missing, and refused when they exist with more.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


class TooManyPartitions(ValueError):
    """The topic exists with more than one partition."""

    def __init__(self, topic: str, partitions: int) -> None:
        super().__init__(f"{topic} has {partitions} partitions")
        self.partitions = partitions


def ensure_single_partition_topic(
    client_config: dict, topic: str, config: dict | None = None, timeout: float = 15.0
) -> bool:
    """Create ``topic`` with one partition (and ``config``) unless it exists.

    Returns
    -------
    bool
        True when this call created it.

    Raises
    ------
    TooManyPartitions
        If it exists with more than one partition.
    KafkaException
        If the cluster cannot be reached or refuses to create it.
    """
    admin = AdminClient(client_config)
    # Every topic, not this one: asking for one topic by name creates it, with the broker's
    # default partitions, where auto-creation is on.
    meta = admin.list_topics(timeout=timeout).topics.get(topic)
    if meta is not None and meta.error is None and meta.partitions:
        if len(meta.partitions) != 1:
            raise TooManyPartitions(topic, len(meta.partitions))
        return False
    try:
        new = NewTopic(topic, num_partitions=1, replication_factor=-1, config=config or {})
        admin.create_topics([new])[topic].result(timeout=timeout)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
        return False
    return True
