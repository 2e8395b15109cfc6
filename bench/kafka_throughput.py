"""Raw aiokafka throughput against the local broker: produce, consume, and both at once.

    PYTHONPATH=. python -m bench.kafka_throughput [-n 200000] [--size 300] [--partitions 3]

Starts the local broker when it is not running (and stops it again at the end), writes to
fresh topics and deletes them afterwards. MB/s counts message values only (1 MB = 10^6 B).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from omnijourney.local import kafka
from omnijourney.local.admin import ensure_topics
from omnijourney.settings import Settings, load_settings

LINGER_MS = 10
BATCH_BYTES = 256 * 1024
ACKS = "all"  # what the collector uses; on one node it costs the same as acks=1


@dataclass(frozen=True)
class Result:
    """Messages moved in elapsed seconds."""

    what: str
    messages: int
    size: int
    elapsed: float

    def line(self) -> str:
        """One row of the report."""
        rate = self.messages / self.elapsed
        mb = self.messages * self.size / 1e6 / self.elapsed
        return f"{self.what:<12} {self.elapsed:7.2f} s  {rate:10,.0f} msg/s  {mb:7.2f} MB/s"


def machine() -> str:
    """CPU count and model of this machine."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"nproc {len(os.sched_getaffinity(0))}, {model}, Python {platform.python_version()}"


def _payload(seq: int, size: int) -> bytes:
    return seq.to_bytes(8, "big") + b"x" * (size - 8)


async def produce(bootstrap: str, topic: str, n: int, size: int) -> float:
    """Send n messages of size bytes; seconds until the broker acknowledged all of them."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=ACKS, linger_ms=LINGER_MS, max_batch_size=BATCH_BYTES
    )
    await producer.start()
    try:
        started = time.perf_counter()
        pending: list[asyncio.Future[object]] = []
        for seq in range(n):
            pending.append(await producer.send(topic, _payload(seq, size)))
            if len(pending) >= 20_000:  # surface delivery errors early, keep memory flat
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, partitions: int, n: int) -> float:
    """Read n messages from the beginning of topic; seconds from first fetch to the last."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        seen = 0
        started = time.perf_counter()
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(records) for records in batches.values())
        elapsed = time.perf_counter() - started
        if seen != n:  # a fresh topic holds exactly what we produced
            raise RuntimeError(f"read {seen} messages from {topic}, expected {n}")
        return elapsed
    finally:
        await consumer.stop()


async def end_to_end(bootstrap: str, topic: str, partitions: int, n: int, size: int) -> float:
    """Produce and consume at the same time; seconds from the first send to the last read."""
    started = time.perf_counter()
    reader = asyncio.create_task(consume(bootstrap, topic, partitions, n))
    await produce(bootstrap, topic, n, size)
    await reader
    return time.perf_counter() - started


@contextlib.asynccontextmanager
async def fresh_topics(bootstrap: str, count: int, partitions: int) -> AsyncIterator[list[str]]:
    """`count` new topics for one measurement, deleted afterwards."""
    run_id = uuid.uuid4().hex[:8]
    names = [f"bench.throughput.{run_id}.{chr(ord('a') + i)}" for i in range(count)]
    await ensure_topics(bootstrap, dict.fromkeys(names, partitions))
    try:
        yield names
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(names)
        finally:
            await admin.close()


async def end_to_end_result(bootstrap: str, n: int, size: int, partitions: int) -> Result:
    """The end-to-end figure alone, on a fresh topic (the reference of the pipeline benches)."""
    async with fresh_topics(bootstrap, 1, partitions) as (topic,):
        elapsed = await end_to_end(bootstrap, topic, partitions, n, size)
    return Result("end to end", n, size, elapsed)


async def run(settings: Settings, n: int, size: int, partitions: int) -> list[Result]:
    """The three measurements on fresh topics, which are deleted afterwards."""
    bootstrap = settings.kafka.bootstrap
    async with fresh_topics(bootstrap, 2, partitions) as (first, second):
        produced = await produce(bootstrap, first, n, size)
        consumed = await consume(bootstrap, first, partitions, n)
        both = await end_to_end(bootstrap, second, partitions, n, size)
    return [
        Result("produce", n, size, produced),
        Result("consume", n, size, consumed),
        Result("end to end", n, size, both),
    ]


def main() -> None:
    """Parse arguments, make sure the broker runs, measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=300, help="value size in bytes (>= 8)")
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    if args.size < 8:
        parser.error("--size must be at least 8 bytes")

    settings = load_settings()
    started_here = kafka.running_pid(settings) is None and not settings.kafka.bootstrap_servers
    print(kafka.start(settings))
    try:
        results = asyncio.run(run(settings, args.messages, args.size, args.partitions))
    finally:
        if started_here:
            print(kafka.stop(settings))

    print(f"machine: {machine()}")
    print(
        f"setup: Kafka {settings.kafka.version} (heap {settings.kafka.heap}) at "
        f"{settings.kafka.bootstrap}, aiokafka {version('aiokafka')}, {args.messages:,} x "
        f"{args.size} B, {args.partitions} partitions, acks={ACKS}, linger {LINGER_MS} ms, "
        f"batch {BATCH_BYTES // 1024} KiB, no compression"
    )
    for result in results:
        print(result.line())


if __name__ == "__main__":
    main()
