"""The Kafka broker the service starts itself, and the topic helper every Kafka client shares.

``recsvc broker``, ``recsvc demo`` and the tests run Apache Kafka in KRaft mode
(:class:`~recommendation_service.sandbox.kafka_broker.ApacheKafkaBroker`) on the user's Java
17+ or the pip one, from jars fetched once. Production points ``--bootstrap-servers`` at its
own cluster instead.
"""

from __future__ import annotations

import time

from .broker_process import BrokerProcess
from .kafka_broker import ApacheKafkaBroker

__all__ = ["ENGINE_CHOICES", "ApacheKafkaBroker", "BrokerProcess", "ensure_topic"]

#: What ``--engine`` accepts. Apache Kafka is the one engine; ``auto``, the default before it
#: was, still means it so that scripts naming it keep working.
ENGINE_CHOICES = ("kafka", "auto")


def ensure_topic(bootstrap_servers: str, topic: str, partitions: int = 1, options=None) -> None:
    """Create ``topic`` unless it exists (idempotent, safe to race)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, **(options or {})})
    if topic in admin.list_topics(timeout=10).topics:
        return
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    try:
        future[topic].result(timeout=15)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    # A new topic's leader is elected asynchronously on a real cluster: wait until every
    # partition has one, so a producer or consumer started right after does not race it.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic, timeout=5).topics.get(topic)
        if (
            meta is not None
            and meta.error is None
            and len(meta.partitions) >= partitions
            and all(p.leader >= 0 for p in meta.partitions.values())
        ):
            return
        time.sleep(0.05)
