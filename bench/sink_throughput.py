"""The ClickHouse sink: throughput (rows/s from Kafka into the embedded ClickHouse) and freshness
(time from a touchpoint's received_at until a query sees it, at a moderate steady rate).

    PYTHONPATH=. python -m bench.sink_throughput [--rows 200000] [--rate 1000] [--seconds 30]

Starts the local Kafka broker and the embedded ClickHouse when they are not running (and stops
them again at the end); uses fresh topics, consumer groups and databases, dropped afterwards.
The sink runs in this process with its default settings (flush_interval_s 1.0), next to the
producer and the poller: everything shares the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from bench._machine import describe
from omnijourney.local import clickhouse, kafka
from omnijourney.local.admin import ensure_topics
from omnijourney.settings import Settings, load_settings
from schemas.contracts import SINK_TOPICS
from sinks.clickhouse import client
from sinks.migrations import migrate
from sinks.sink import Sink

CHANNELS = ("web", "app", "pos", "callcenter", "email")
TYPES = ("page_view", "product_view", "add_to_cart", "purchase")


def iso(moment: datetime) -> str:
    """As the stitching core writes times."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def touchpoint(n: int, received: datetime) -> dict[str, Any]:
    """An enriched touchpoint record as the core publishes it."""
    kind = TYPES[n % len(TYPES)]
    purchase = kind == "purchase"
    return {
        "record_type": "enriched_touchpoint",
        "schema_version": 1,
        "event_id": f"b{n:09d}",
        "channel": CHANNELS[n % len(CHANNELS)],
        "type": kind,
        "occurred_at": iso(received - timedelta(seconds=n % 7)),
        "received_at": iso(received),
        "identities": [
            {"kind": "anonymous_id", "value": f"ck-{n % 50_000}"},
            {"kind": "customer_id", "value": f"cust-{n % 20_000}"},
        ],
        "consent": {"analytics": True, "personalization": True, "marketing": False},
        "value": f"{(n % 9000) / 100:.2f}" if purchase else None,
        "currency": "EUR" if purchase else None,
        "properties": {"product_id": f"P-{n % 700}", "price": (n % 9000) / 100, "page": "/p"},
        "customer_id": f"c{n % 20_000:012d}",
        "session_id": f"s{n // 8:012d}",
        "journey_id": f"j{n // 20:012d}",
        "position": n % 20 + 1,
        "previous_channel": CHANNELS[(n - 1) % len(CHANNELS)] if n % 20 else None,
        "late": False,
        "version": n // 20_000 + 1,
    }


def isolated(base: Settings, tag: str) -> Settings:
    """Settings of one run: own database, topics and group; the sink's defaults otherwise."""
    run = f"{tag}_{uuid.uuid4().hex[:8]}"
    ch = base.clickhouse.model_copy(update={"database": f"bench_{run}"})
    sink = base.sink.model_copy(
        update={
            "group_id": f"bench-{run}",
            "topics": tuple(f"b{run}.{topic}" for topic in SINK_TOPICS),
            "health_port": 0,
        }
    )
    return base.model_copy(update={"clickhouse": ch, "sink": sink})


async def _produce_all(settings: Settings, records: list[tuple[bytes, bytes]], topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap, linger_ms=20, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def throughput(settings: Settings, rows: int, partitions: int) -> None:
    """Pre-fill the topic, then time the sink copying everything into ClickHouse."""
    topic = settings.sink.topics[0]
    await ensure_topics(settings.kafka.bootstrap, dict.fromkeys(settings.sink.topics, partitions))
    received = datetime.now(UTC)
    records = [touchpoint(n, received) for n in range(rows)]
    await _produce_all(
        settings, [(r["customer_id"].encode(), orjson.dumps(r)) for r in records], topic
    )
    sink = Sink(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    await sink.ready.wait()
    began = time.perf_counter()
    while not (sink.stats.records >= rows and sink.buffers.held() == (0, 0)):
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - began
    stop.set()
    await task
    conn = client(settings, autogenerate_session_id=False)
    landed = conn.command("SELECT count() FROM touchpoints FINAL")
    conn.close()
    print(
        f"throughput: {rows:,} touchpoints in {elapsed:.2f} s = {rows / elapsed:,.0f} rows/s "
        f"({sink.stats.batches} batches, {partitions} partitions, landed {landed:,})"
    )


async def freshness(settings: Settings, rate: int, seconds: float, partitions: int) -> None:
    """Produce at a steady rate; poll ClickHouse; latency = first seen - received_at."""
    topic = settings.sink.topics[0]
    await ensure_topics(settings.kafka.bootstrap, dict.fromkeys(settings.sink.topics, partitions))
    sink = Sink(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    await sink.ready.wait()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, linger_ms=5)
    await producer.start()
    pending: dict[str, datetime] = {}  # produced, not yet seen by a query
    latencies: list[float] = []
    done = asyncio.Event()
    poll_s = 0.05

    async def produce() -> None:
        began, n = time.monotonic(), 0
        while time.monotonic() - began < seconds:
            due = int((time.monotonic() - began) * rate)
            while n < due:
                now = datetime.now(UTC)
                record = touchpoint(n, now)
                pending[record["event_id"]] = now
                await producer.send(topic, orjson.dumps(record), key=record["customer_id"].encode())
                n += 1
            await asyncio.sleep(0.01)
        await producer.flush()
        done.set()

    async def poll() -> None:
        conn = client(settings, autogenerate_session_id=False)
        try:
            while not (done.is_set() and not pending):
                if pending:
                    oldest = min(pending.values()).strftime("%Y-%m-%d %H:%M:%S.%f")
                    answer = await asyncio.to_thread(
                        conn.query,
                        "SELECT event_id FROM touchpoints "
                        "WHERE received_at >= {t:DateTime64(6, 'UTC')}",
                        parameters={"t": oldest},
                    )
                    now = datetime.now(UTC)
                    for (event_id,) in answer.result_rows:
                        received = pending.pop(event_id, None)
                        if received is not None:
                            latencies.append((now - received).total_seconds())
                await asyncio.sleep(poll_s)
        finally:
            conn.close()

    try:
        await asyncio.wait_for(asyncio.gather(produce(), poll()), seconds + 120)
    finally:
        await producer.stop()
        stop.set()
        await task
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    print(
        f"freshness at {rate:,} touchpoints/s for {seconds:.0f} s ({len(ordered):,} records, "
        f"poll every {poll_s * 1000:.0f} ms): p50 {pct(50):.2f} s, p90 {pct(90):.2f} s, "
        f"p99 {pct(99):.2f} s, max {ordered[-1]:.2f} s, mean {statistics.fmean(ordered):.2f} s; "
        f"goal p99 <= 2 s: {'met' if pct(99) <= 2.0 else 'NOT met'}"
    )


def run(rows: int, rate: int, seconds: float, partitions: int) -> None:
    """Both measurements, on fresh topics and databases."""
    base = load_settings()
    kafka_started = kafka.running_pid(base) is None and not base.kafka.bootstrap_servers
    ch_started = base.clickhouse.embedded and clickhouse.process(base).pid() is None
    print(kafka.start(base))
    print(clickhouse.start(base))
    runs = [isolated(base, "tp"), isolated(base, "fr")]
    try:
        admin = client(base, database="default", autogenerate_session_id=False)
        print(
            f"embedded ClickHouse {admin.server_version} (chdb {version('chdb')}), "
            f"clickhouse-connect {version('clickhouse-connect')}, aiokafka {version('aiokafka')}"
        )
        admin.close()
        print(f"machine: {describe()}")
        print(
            f"sink: batch_rows {base.sink.batch_rows:,}, flush_interval_s "
            f"{base.sink.flush_interval_s}"
        )
        for settings in runs:
            migrate(settings)
        asyncio.run(throughput(runs[0], rows, partitions))
        asyncio.run(freshness(runs[1], rate, seconds, partitions))
    finally:
        admin = client(base, database="default", autogenerate_session_id=False)
        for settings in runs:
            admin.command(f"DROP DATABASE IF EXISTS `{settings.clickhouse.database}`")
        admin.close()
        if ch_started:
            print(clickhouse.stop(base))
        if kafka_started:
            print(kafka.stop(base))


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="touchpoints for throughput")
    parser.add_argument("--rate", type=int, default=1_000, help="touchpoints/s for freshness")
    parser.add_argument("--seconds", type=float, default=30.0, help="freshness run length")
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    run(args.rows, args.rate, args.seconds, args.partitions)


if __name__ == "__main__":
    main()
