"""The erasures topic: created with one partition and compaction, read whole by every reader.

One partition gives every erasure a single position (its offset) that the builder's versions
and updates can be compared with. Compaction keeps each user's latest erasure for as long as
the topic exists, so a builder that loses its model directory still rebuilds a window without
them; deleting the topic forgets the erasures (never do it while events of erased users are
still in the interactions topic).
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException

from ..common.single_partition_topics import TooManyPartitions, ensure_single_partition_topic
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
    try:
        created = ensure_single_partition_topic(kafka.client_config(), topic, TOPIC_CONFIG, timeout)
    except TooManyPartitions as exc:
        raise ErasureError(
            f"the erasures topic {topic} has {exc.partitions} partitions; it needs exactly one "
            "(give another name with --erasures-topic)"
        ) from exc
    except KafkaException as exc:
        raise ErasureError(f"cannot create the erasures topic {topic}: {exc}") from exc
    if created:
        logger.info("created the erasures topic %s (one partition, compacted)", topic)
