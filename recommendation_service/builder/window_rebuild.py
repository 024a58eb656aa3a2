"""Rebuilding the window from the topic when the builder (re)starts.

For every newly assigned partition the builder reads the messages just before its committed
position -- enough of them to hold W valid events -- with a separate, group-less consumer, so
that after a restart the window holds exactly what it held before, and nothing is counted twice:
the live consumer resumes at the committed offset, where the replay stopped.

The replay reads up to the committed offset, the one position the builder knows was applied. A
partition shorter than that (a topic recreated, a broker that lost its log) shows as the end of
the partition below the wanted offset, or as OFFSET_OUT_OF_RANGE when it starts past the end.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from ..config.kafka import KafkaSettings
from ..data.events import Event, parse_event
from ..errors import MalformedEvent

logger = logging.getLogger(__name__)

_OUT_OF_RANGE = {KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE}


@dataclass(frozen=True)
class ReplayRange:
    """Replay partition ``partition`` of ``topic`` backwards from ``end`` (exclusive) to ``low``."""

    topic: str
    partition: int
    low: int
    end: int


@dataclass(frozen=True)
class ReplayResult:
    """Rebuilt events, oldest first, and where the live consumer must resume per partition."""

    events: list[Event]
    resume: dict[tuple[str, int], int]


class _PartitionShorter(Exception):
    """The partition ends before the committed offset: the broker lost data."""


def _read_segment(
    consumer: Consumer, topic: str, partition: int, start: int, end: int, timeout: float
) -> list[Message]:
    """Messages with offsets in [start, end) of one partition, in order."""
    consumer.assign([TopicPartition(topic, partition, start)])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    next_offset = start
    while next_offset < end:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"replay of {topic}[{partition}] stalled at offset {next_offset} (wanted {end})"
            )
        for msg in consumer.consume(num_messages=10_000, timeout=0.5):
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF and msg.offset() < end:
                    raise _PartitionShorter(msg.offset())
                if error.code() in _OUT_OF_RANGE:
                    raise _PartitionShorter(-1)
                if error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("replay error on %s[%d]: %s", topic, partition, error)
                continue
            if msg.offset() >= end:
                next_offset = end
                break
            messages.append(msg)
            next_offset = msg.offset() + 1
        # Offsets can have gaps (transaction markers, compaction): trust the fetch position.
        position = consumer.position([TopicPartition(topic, partition)])[0].offset
        next_offset = max(next_offset, position)
    return messages


def _replay_partition(consumer, r: ReplayRange, window: int, parse, timeout: float):
    """The last ``window`` valid events of one range, as (ts, partition, offset, event)."""
    events: list[tuple[float, int, int, Event]] = []
    seg_end, need = r.end, window
    while need > 0 and seg_end > r.low:
        seg_start = max(r.low, seg_end - need)
        batch = []
        for msg in _read_segment(consumer, r.topic, r.partition, seg_start, seg_end, timeout):
            ts = msg.timestamp()[1] / 1000.0
            try:
                event = parse(msg.value(), ts, r.partition, msg.offset())
            except MalformedEvent:
                continue  # counted when it was first consumed, or erased
            batch.append((ts, r.partition, msg.offset(), event))
        events[:0] = batch
        need -= len(batch)
        seg_end = seg_start
    return events[-window:]


def replay(
    settings: KafkaSettings,
    ranges: list[ReplayRange],
    window: int,
    *,
    max_bytes: int,
    max_id_length: int,
    timeout: float = 120.0,
    erased: Callable[[str, int, int], bool] | None = None,
) -> ReplayResult:
    """Read back the last ``window`` valid events before each range's end.

    Malformed messages are skipped (they were counted when first consumed); segments are read
    further back until each partition yields ``window`` valid events or reaches ``low``. A
    partition that turns out shorter than its committed offset (an in-memory broker that
    restarted, or a topic that was recreated) contributes nothing, and the live consumer resumes
    at its beginning: everything the broker now holds is new. Events ``erased(user,
    partition, offset)`` says were erased are skipped like malformed ones.
    """
    config = settings.consumer_config(group_id=f"{settings.group_id}.replay")
    config.update({"enable.partition.eof": True, "auto.offset.reset": "error"})
    consumer = Consumer(config)

    def parse(value, ts, partition, offset):
        event = parse_event(value, ts, max_bytes=max_bytes, max_id_length=max_id_length)
        if erased is not None and erased(event.user, partition, offset):
            raise MalformedEvent("erased")
        return event

    per_partition = []
    resume: dict[tuple[str, int], int] = {}
    try:
        for r in ranges:
            key = (r.topic, r.partition)
            try:
                events = _replay_partition(consumer, r, window, parse, timeout)
                resume[key] = r.end
            except _PartitionShorter as short:
                logger.warning(
                    "%s[%d] ends at %s, before the committed offset %d: the broker lost data; "
                    "consuming it from offset %d as new events",
                    r.topic,
                    r.partition,
                    short.args[0] if short.args[0] >= 0 else "?",
                    r.end,
                    r.low,
                )
                events, resume[key] = [], r.low
            per_partition.append(events)
            logger.info(
                "replayed %d events of %s[%d] before offset %d",
                len(events),
                r.topic,
                r.partition,
                resume[key],
            )
    finally:
        consumer.close()
    merged = list(heapq.merge(*per_partition, key=lambda e: (e[0], e[1], e[2])))
    return ReplayResult([item[3] for item in merged[-window:]], resume)


def verify_position(settings: KafkaSettings, topic: str, partition: int, position: int) -> bool:
    """Whether the partition still holds the message just before ``position``.

    False means the broker lost data (an in-memory broker restarted, a topic was recreated):
    the offsets the builder holds no longer name the events it consumed.
    """
    if position <= 0:
        return True
    config = settings.consumer_config(group_id=f"{settings.group_id}.replay")
    config.update({"enable.partition.eof": True, "auto.offset.reset": "error"})
    consumer = Consumer(config)
    try:
        _read_segment(consumer, topic, partition, position - 1, position, timeout=30.0)
    except _PartitionShorter:
        return False
    finally:
        consumer.close()
    return True


def plan_assignment(
    consumer: Consumer,
    committed: list[TopicPartition],
    settings: KafkaSettings,
    positions: dict[tuple[str, int], int],
) -> tuple[dict[tuple[str, int], int], list[ReplayRange], dict[tuple[str, int], int]]:
    """Decide, for newly assigned partitions, where to resume and what to replay.

    Parameters
    ----------
    consumer
        The group consumer (for watermarks).
    committed
        The assigned partitions with their committed offsets.
    settings
        Kafka settings (``auto.offset.reset`` decides where a partition without a commit starts).
    positions
        The builder's own positions: partitions it already holds in its window.

    Returns
    -------
    resume, ranges, skipped
        Where to resume the partitions the window already holds, the ranges to replay for
        the others, and how many offsets per partition were deleted before being consumed.
    """
    reset_latest = str(settings.consumer_config()["auto.offset.reset"]) in ("latest", "end")
    resume: dict[tuple[str, int], int] = {}
    skipped: dict[tuple[str, int], int] = {}
    ranges = []
    for tp in committed:
        key = (tp.topic, tp.partition)
        if key in positions:
            # The window already holds this partition up to our own position, unless the
            # broker lost it meanwhile: then everything it holds now is new.
            try:
                intact = verify_position(settings, tp.topic, tp.partition, positions[key])
            except TimeoutError as exc:  # cannot tell: keep what we have
                logger.error("could not verify %s[%d]: %s", tp.topic, tp.partition, exc)
                intact = True
            if intact:
                resume[key] = positions[key]
                continue
            low, _ = consumer.get_watermark_offsets(tp, timeout=30)
            logger.warning(
                "%s[%d] no longer holds offset %d: the broker lost data; consuming it "
                "from offset %d as new events",
                tp.topic,
                tp.partition,
                positions[key],
                low,
            )
            resume[key] = low
            continue
        low, high = consumer.get_watermark_offsets(tp, timeout=30)
        if tp.offset >= 0:
            end = max(tp.offset, low)
            if tp.offset < low:
                # Retention or DeleteRecords removed records the group never consumed: they
                # are gone, so the window starts at the log's new beginning.
                logger.warning(
                    "%s[%d]: offsets %d..%d were deleted (retention or DeleteRecords) before "
                    "this group consumed them; skipping %d offsets, resuming at %d",
                    tp.topic,
                    tp.partition,
                    tp.offset,
                    low - 1,
                    low - tp.offset,
                    low,
                )
                skipped[(tp.topic, tp.partition)] = low - tp.offset
        else:  # no committed offset yet: start where auto.offset.reset says
            end = high if reset_latest else low
        ranges.append(ReplayRange(tp.topic, tp.partition, low, end))
    return resume, ranges, skipped
