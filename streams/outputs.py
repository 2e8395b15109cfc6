"""A stage's outputs, produced as one record batch per topic partition and acknowledged together.

Faust's `Topic.send` wraps every message in its own future, channel and sensor calls, and
aiokafka's `send` adds a future and a partitioner call per message: at ten messages per
touchpoint that was a fifth of the worker's time. A stage's batch is sent here through
aiokafka's batch API instead: the same partitioner (murmur2 of the key, as Faust's sends and
its `use_partitioner` changelogs use), the same producer (its linger, acks, compression and
retries), and the order of a partition's messages kept.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

log = logging.getLogger(__name__)

Output = tuple[str, bytes, bytes | None]
"""(topic, key, value) of one message; a value of None is a tombstone (compacted topics)."""


def kafka_producer(app: faust.App) -> AIOKafkaProducer:
    """The aiokafka producer under the app's Faust producer (started with the app)."""
    # No public accessor: Faust's producer sends one message at a time only.
    producer: AIOKafkaProducer = app.producer._ensure_producer()  # type: ignore[attr-defined]
    return producer


@functools.lru_cache(maxsize=65_536)
def _key_hash(key: bytes) -> int:
    # murmur2 is pure Python in aiokafka, and one key goes to several topics
    return int(murmur2(key)) & 0x7FFFFFFF


def partition_of(key: bytes, partitions: Sequence[int]) -> int:
    """The partition of a keyed message: Kafka's default partitioner (murmur2 of the key)."""
    return partitions[_key_hash(key) % len(partitions)]


async def until_acked(
    attempt: Callable[[], Awaitable[Any]], what: str, *, first_s: float = 0.2, most_s: float = 10.0
) -> None:
    """Run attempt() again while the broker is away: an outage is waited out, never a crash.

    An agent that raised would leave its batch unacked and never be restarted (Faust logs it
    as crashed), so the worker would stall; repeating the whole attempt instead is harmless,
    because every consumer of these messages drops repeats (message ids, versions) and a
    repeated changelog record holds the same value.
    """
    delay = first_s
    while True:
        try:
            await attempt()
            return
        except KafkaError as exc:
            log.warning("%s failed (%r); again in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(most_s, delay * 2)


async def produce_until_acked(producer: AIOKafkaProducer, outputs: Sequence[Output]) -> None:
    """produce(), again while the broker is away (see until_acked)."""
    await until_acked(lambda: produce(producer, outputs), f"producing {len(outputs)} messages")


async def produce(producer: AIOKafkaProducer, outputs: Iterable[Output]) -> None:
    """Send the outputs and wait until the broker acknowledged every one (raises otherwise)."""
    by_partition: dict[tuple[str, int], list[tuple[bytes, bytes | None]]] = {}
    partitions: dict[str, list[int]] = {}
    for topic, key, value in outputs:
        if topic not in partitions:
            # from the producer's metadata (fetched once per topic), sorted by id
            partitions[topic] = sorted(await producer.partitions_for(topic))
        partition = partition_of(key, partitions[topic])
        by_partition.setdefault((topic, partition), []).append((key, value))
    if by_partition:
        await asyncio.gather(
            *(
                _send_partition(producer, topic, partition, messages)
                for (topic, partition), messages in by_partition.items()
            )
        )


async def _send_partition(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    messages: Sequence[tuple[bytes, bytes | None]],
) -> None:
    """One partition's messages in order, in as few record batches as fit; then their acks."""
    acks: list[Any] = []
    batch = producer.create_batch()
    for key, value in messages:
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: the next one
            acks.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)  # an empty batch takes any one
    acks.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*acks)
