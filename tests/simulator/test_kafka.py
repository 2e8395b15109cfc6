"""`simulate` into the real local Kafka: every record arrives, none holds a clear email/phone."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from omnijourney.exceptions import InvalidTouchpoint
from omnijourney.settings import PrivacySettings, Settings
from omnijourney.simulator.command import SimulateOptions, run
from omnijourney.simulator.config import SimulationConfig
from omnijourney.simulator.generator import Emission, simulate
from schemas.channel import CHANNELS
from schemas.keystore import hasher_from_settings
from schemas.pii import normalize_phone
from schemas.validation import parse_touchpoint

pytestmark = pytest.mark.kafka
START = datetime(2024, 5, 1, tzinfo=UTC)


async def _read_all(
    bootstrap: str, topics: list[str], partitions: int
) -> list[tuple[str, bytes | None, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for topic in topics for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        total = sum((await consumer.end_offsets(assigned)).values())
        out: list[tuple[str, bytes | None, bytes]] = []
        while len(out) < total:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                out.extend((tp.topic, r.key, r.value) for r in records if r.value is not None)
        return out
    finally:
        await consumer.stop()


async def _delete(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()


def test_simulate_to_kafka_sends_everything_and_no_clear_pii(
    kafka_settings: Settings, kafka_bootstrap: str, tmp_path: Path
) -> None:
    privacy = PrivacySettings(pii_hash_key=SecretStr("simulator-kafka-test-key-0123456789"))
    settings = kafka_settings.model_copy(update={"privacy": privacy})
    prefix = f"test.sim.{uuid.uuid4().hex[:8]}"
    topics = [f"{prefix}.{channel}" for channel in CHANNELS]
    truth_path = tmp_path / "truth.jsonl"
    options = SimulateOptions(
        customers=50, days=7, start=START, seed=21, out_truth=truth_path, topic_prefix=prefix
    )
    stderr = io.StringIO()
    try:
        report = run(settings, options, stderr=stderr)
        partitions = settings.kafka.default_partitions
        messages = asyncio.run(_read_all(kafka_bootstrap, topics, partitions))
    finally:
        asyncio.run(_delete(kafka_bootstrap, topics))

    # the clear contact data the simulation used, from the same pure run
    config = SimulationConfig(customers=50, days=7, start=START, seed=21)
    emissions = [
        e for e in simulate(config, hasher_from_settings(settings)) if isinstance(e, Emission)
    ]
    phones = {
        normalize_phone(i["value"], "US")
        for e in emissions
        for i in (e.event or {"identities": []})["identities"]
        if i["kind"] == "phone"
    }
    assert phones, "the run should have called or texted someone"
    assert len(messages) == len(emissions)
    assert f"sent {len(emissions):,} records" in report
    assert "simulate:" in stderr.getvalue() and "100.0%" in stderr.getvalue()
    for _, key, value in messages:
        raw = value + (key or b"")
        assert b"@" not in raw and b"shopper." not in raw
        assert b"555-01" not in raw and b"7946 0" not in raw
        for phone in phones:
            assert phone[-10:].encode() not in raw, "a clear phone number reached Kafka"
    truth = truth_path.read_bytes()
    assert b"@" not in truth and not any(p[-10:].encode() in truth for p in phones)

    # what the ingest stage will see: valid events (and their copies) and the malformed ones
    received = datetime.now(UTC)
    hasher = hasher_from_settings(settings)
    ids: Counter[str] = Counter()
    refused = 0
    for _, _, value in messages:
        try:
            ids[parse_touchpoint(value, received_at=received, hasher=hasher).event_id] += 1
        except InvalidTouchpoint:
            refused += 1
    assert refused == sum(e.kind == "malformed" for e in emissions)
    assert sum(n - 1 for n in ids.values()) == sum(e.kind == "duplicate" for e in emissions)
    by_topic = Counter(topic.rsplit(".", 1)[1] for topic, _, _ in messages)
    assert by_topic["web"] > 0 and by_topic["pos"] > 0 and by_topic["crm"] > 0
