"""Helpers of the sink tests: settings of an isolated run, producing, waiting, counting."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client
from pydantic import SecretStr

from omnijourney.local.admin import ensure_topics
from omnijourney.settings import Settings
from schemas.contracts import SINK_TOPICS, TOPIC_OF_RECORD, public_record
from schemas.topics import DEADLETTER_TOPIC
from sinks import rows
from sinks.clickhouse import client
from sinks.migrations import migrate
from sinks.sink import Sink

CORE_SAMPLE = Path(__file__).parent / "data" / "core_sample.jsonl"
"""to_dict() of every record of a run of the real stitching core (make_core_sample.py)."""

TABLES = (
    rows.TOUCHPOINTS,
    rows.SESSIONS,
    rows.JOURNEYS,
    rows.LINKS,
    rows.MERGES,
    rows.REJECTIONS,
    rows.ALIASES,
    rows.DEAD_LETTERS,
    rows.ANONYMOUS,
)


def isolated(base: Settings, **sink: Any) -> Settings:
    """Settings of one test: its own database, topics (prefixed) and consumer group."""
    run = uuid.uuid4().hex[:10]
    ch = base.clickhouse.model_copy(update={"database": f"sink_{run}"})
    options: dict[str, Any] = {
        "group_id": f"sink-{run}",
        "topics": tuple(f"t{run}.{topic}" for topic in SINK_TOPICS),
        "flush_interval_s": 0.2,
        "health_port": 0,
        "retry_initial_s": 0.2,
        "retry_max_s": 2.0,
    }
    options.update(sink)
    return base.model_copy(update={"clickhouse": ch, "sink": base.sink.model_copy(update=options)})


def on_instance(settings: Settings, instance: Settings) -> Settings:
    """The same test settings, but talking to another ClickHouse server."""
    ch = instance.clickhouse.model_copy(
        update={"database": settings.clickhouse.database, "password": SecretStr("")}
    )
    return settings.model_copy(update={"clickhouse": ch, "data_dir": instance.data_dir})


def topic(settings: Settings, public: str) -> str:
    """The test's name of a public topic."""
    return next(t for t in settings.sink.topics if t.endswith("." + public))


def prepare(settings: Settings, *, stop_merges: bool = True) -> Client:
    """Migrate the test database; stop merges so counts without FINAL show every insert."""
    migrate(settings)
    conn = client(settings, autogenerate_session_id=False)
    if stop_merges:
        for table in TABLES:
            conn.command(f"SYSTEM STOP MERGES {table}")
    return conn


async def create_topics(settings: Settings, partitions: int = 3) -> None:
    """Create the test's topics."""
    await ensure_topics(settings.kafka.bootstrap, dict.fromkeys(settings.sink.topics, partitions))


def messages(
    settings: Settings, records: Iterable[dict[str, Any]]
) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of core records, as the pipeline publishes them."""
    out = []
    for record in records:
        published = public_record(record)
        out.append((topic(settings, published.topic), published.key, published.value))
    return out


def raw_message(settings: Settings, record_type: str, value: bytes) -> tuple[str, bytes, bytes]:
    """(topic, key, value) of arbitrary bytes on the topic of a record type."""
    return (topic(settings, TOPIC_OF_RECORD[record_type]), b"broken", value)


def dead_letter_message(settings: Settings, value: bytes) -> tuple[str, bytes, bytes]:
    """(topic, key, value) of a dead letter of an earlier stage."""
    return (topic(settings, DEADLETTER_TOPIC), b"ingest", value)


async def produce(settings: Settings, items: Iterable[tuple[str, bytes, bytes]]) -> int:
    """Produce and wait for the acknowledgements; how many were produced."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(t, value, key=key) for t, key, value in items]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float, what: str
) -> None:
    """Poll until the condition holds (fail with `what` after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = condition()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


def settled(sink: Sink, expected_records: int) -> bool:
    """The sink read every record and committed every batch."""
    return sink.stats.records >= expected_records and sink.buffers.held() == (0, 0)


async def run_until(sink: Sink, done: Callable[[], bool], timeout: float, what: str) -> None:
    """Run a sink until `done()`, then stop it cleanly."""
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    try:
        await wait_for(lambda: task.done() or done(), timeout, what)
        if task.done():
            task.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def counts(conn: Client, final: bool = False) -> dict[str, int]:
    """Rows of every table, with or without FINAL."""
    suffix = " FINAL" if final else ""
    return {t: int(conn.command(f"SELECT count() FROM {t}{suffix}")) for t in TABLES}


KEYS = {
    rows.TOUCHPOINTS: "customer_id, occurred_at, event_id, version",
    rows.SESSIONS: "session_id, version",
    rows.JOURNEYS: "journey_id, version",
    rows.LINKS: "customer_id, identifier_kind, identifier_value",
    rows.MERGES: "alias_id, survivor_id",
    rows.REJECTIONS: "customer_id, event_id, identifier_kind, identifier_value, rule",
    rows.ALIASES: "alias_id, survivor_id",
    rows.DEAD_LETTERS: "dead_letter_id",
    rows.ANONYMOUS: "channel, occurred_at, event_id",
}
"""What identifies one row of each table (with its version): it must never be there twice."""


def doubled(conn: Client) -> dict[str, int]:
    """Tables holding a row twice (without FINAL), and how many such rows."""
    found = {}
    for table, key in KEYS.items():
        n = int(
            conn.command(
                f"SELECT count() FROM (SELECT {key}, count() AS n FROM {table} "
                f"GROUP BY {key} HAVING n > 1)"
            )
        )
        if n:
            found[table] = n
    return found


async def committed(settings: Settings) -> dict[tuple[str, int], tuple[int, str]]:
    """The sink group's committed (offset, metadata) per partition of its topics."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(settings.sink.group_id)
    finally:
        await admin.close()
    return {
        (tp.topic, tp.partition): (om.offset, om.metadata)
        for tp, om in found.items()
        if tp.topic in settings.sink.topics
    }


async def lag(settings: Settings) -> int:
    """Records of the test's topics not yet committed by the sink group."""
    from omnijourney.local.admin import end_offsets

    ends = await end_offsets(settings.kafka.bootstrap, settings.sink.topics)
    assert {tp.topic for tp in ends} == set(settings.sink.topics), "a topic of the test is missing"
    done = await committed(settings)
    return sum(
        end - max(0, done.get((tp.topic, tp.partition), (0, ""))[0]) for tp, end in ends.items()
    )


async def wait_committed(settings: Settings, timeout: float, what: str) -> None:
    """Wait until the sink group has committed every record of the test's topics."""

    async def caught_up() -> bool:
        return await lag(settings) == 0

    await wait_for(caught_up, timeout, what)


def unique_touches(count: int, start: int = 0) -> list[dict[str, Any]]:
    """`count` enriched touchpoints with distinct keys and one version each (nothing collapses)."""
    from tests.sinks.story import at, touch

    records = []
    for n in range(start, start + count):
        records.append(
            touch(
                f"u{n:06d}",
                "web",
                "page_view",
                at(1 + n % 28, n % 24, n % 60),
                [("anonymous_id", f"ck-{n}")],
                customer=f"c1{n:09d}",
                journey=f"JU{n}",
                position=1,
                previous=None,
                version=1,
            )
        )
    return records
