"""The erasures topic: created with one partition and compaction, read whole by every reader.

One partition gives every erasure a single position (its offset) that the builder's versions
and updates can be compared with. Compaction keeps each user's latest erasure for as long as
the topic exists, so a builder that loses its model directory still rebuilds a window without
them; deleting the topic forgets the erasures (never do it while events of erased users are
still in the interactions topic).
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from ..config.kafka import KafkaSettings
from ..errors import ErasureError

logger = logging.getLogger(__name__)

#: Settings of the erasures topic when it has to be created. Records are never deleted by
#: time: compaction keeps each user's latest erasure.
TOPIC_CONFIG = {"cleanup.policy": "compact", "retention.ms": "-1"}


def ensure_erasures_topic(kafka: KafkaSettings, topic: str, timeout: float = 15.0) -> None:
    """Create the erasures topic (one partition, compacted) unless it exists.

    Raises
    ------
    ErasureError
        If the cluster cannot be reached, or the topic exists with more than one partition
        (erasures would have no single order).
    """
    admin = AdminClient(kafka.client_config())
    try:
        # Every topic, not this one: asking for one topic by name creates it, with the
        # broker's default partitions, where auto-creation is on.
        meta = admin.list_topics(timeout=timeout).topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            if len(meta.partitions) != 1:
                raise ErasureError(
                    f"the erasures topic {topic} has {len(meta.partitions)} partitions; it "
                    "needs exactly one (give another name with --erasures-topic)"
                )
            return
        new = NewTopic(topic, num_partitions=1, replication_factor=-1, config=TOPIC_CONFIG)
        admin.create_topics([new])[topic].result(timeout=timeout)
        logger.info("created the erasures topic %s (one partition, compacted)", topic)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise ErasureError(f"cannot create the erasures topic {topic}: {exc}") from exc
