"""The main job on the embedded defaults: start the stack, exercise it, report what happened."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from omnijourney.local.admin import ensure_topics
from omnijourney.settings import Settings

SMOKE_TOPIC = "omnijourney.smoke"


def _touchpoints(now: datetime) -> list[dict[str, object]]:
    """A few touchpoints of one customer across channels (ids only; no personal data)."""
    run = uuid.uuid4().hex[:8]
    base = {"received_at": now.isoformat(), "schema_version": 1}
    return [
        {
            **base,
            "event_id": f"{run}-1",
            "channel": "web",
            "type": "product_view",
            "occurred_at": now.isoformat(),
            "identities": [{"kind": "anonymous_id", "value": f"anon-{run}"}],
        },
        {
            **base,
            "event_id": f"{run}-2",
            "channel": "web",
            "type": "login",
            "occurred_at": now.isoformat(),
            "identities": [
                {"kind": "anonymous_id", "value": f"anon-{run}"},
                {"kind": "customer_id", "value": f"cust-{run}"},
            ],
        },
        {
            **base,
            "event_id": f"{run}-3",
            "channel": "pos",
            "type": "purchase",
            "occurred_at": now.isoformat(),
            "identities": [{"kind": "loyalty_id", "value": f"loy-{run}"}],
        },
    ]


async def _kafka_round_trip(settings: Settings, events: list[dict[str, object]]) -> int:
    """Produce the events and read them back; returns how many came back."""
    await ensure_topics(settings.kafka.bootstrap, {SMOKE_TOPIC: settings.kafka.default_partitions})
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(SMOKE_TOPIC, orjson.dumps(event), key=b"smoke")
    finally:
        await producer.stop()
    wanted = {str(e["event_id"]) for e in events}
    consumer = AIOKafkaConsumer(
        SMOKE_TOPIC,
        bootstrap_servers=settings.kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    seen: set[str] = set()
    try:
        async with asyncio.timeout(30):
            while not wanted <= seen:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    seen.update(str(orjson.loads(r.value)["event_id"]) for r in records if r.value)
    finally:
        await consumer.stop()
    return len(wanted & seen)


def run(settings: Settings) -> int:
    """Start Kafka and ClickHouse, round-trip touchpoints and a ClickHouse row, print a report."""
    from omnijourney.local import clickhouse, kafka
    from sinks.clickhouse import client

    print(kafka.start(settings))
    print(clickhouse.start(settings))
    now = datetime.now(UTC)
    events = _touchpoints(now)
    back = asyncio.run(_kafka_round_trip(settings, events))
    print(f"kafka: produced {len(events)} touchpoints to {SMOKE_TOPIC}, read back {back}")
    ch = client(settings)
    ch.command(
        "CREATE TABLE IF NOT EXISTS smoke_touchpoints (event_id String,"
        " channel LowCardinality(String), type LowCardinality(String),"
        " seen_at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY event_id"
    )
    ch.insert(
        "smoke_touchpoints",
        [[e["event_id"], e["channel"], e["type"], now] for e in events],
        column_names=["event_id", "channel", "type", "seen_at"],
    )
    rows = ch.query(
        "SELECT channel, count() FROM smoke_touchpoints GROUP BY channel ORDER BY channel"
    ).result_rows
    print("clickhouse: smoke_touchpoints by channel: " + ", ".join(f"{c}={n}" for c, n in rows))
    print(
        f"\nstack is up: Kafka at {settings.kafka.bootstrap}, ClickHouse at "
        f"http://{settings.clickhouse.host}:{settings.clickhouse.port}\n"
        "stop everything with: .venv/bin/omnijourney down   (or: make down)"
    )
    return 0 if back == len(events) else 1
