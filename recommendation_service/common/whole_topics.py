"""Reading whole topics without a consumer group: every partition from its first offset.

The catalog, the experiment tracker and the servers' updates feed each rebuild their state
from the log at every start, so they commit nothing and assign themselves every partition.
"""

from __future__ import annotations

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


def assign_from_beginning(consumer: Consumer, topics: list[str]) -> bool:
    """Assign every partition of ``topics`` from the beginning; False (nothing assigned) while
    one of them is missing or has no partitions yet.

    Raises
    ------
    confluent_kafka.KafkaException
        When the cluster cannot be asked for the topics' metadata.
    """
    parts = []
    for topic in topics:
        meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return False
        parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
    consumer.assign(parts)
    return True
