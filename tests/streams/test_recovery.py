"""Two workers share the partitions; one is SIGKILLed mid-stream; the other takes over.

The final journeys must equal an undisturbed run's: the pure core over the same validated
touchpoints (its final view does not depend on the interleaving; the core tests prove it).
No touchpoint may count twice in a journey, and every repeated record on the public topics
must be a byte-identical repeat of the same key and version.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition

from schemas.contracts import PUBLIC_TOPICS
from schemas.emitter import Emitter
from schemas.pii import PiiHasher
from schemas.topics import Record
from schemas.validation import decode_touchpoint
from streams.topics import VALID_TOPIC, raw_topic_names
from tests.pipeline_support import PII_KEY, Worker, commit_ends, end_offsets, read_from
from tests.streams.support import (
    PATIENCE,
    core_final_view,
    differences,
    final_view,
    miscounted_journeys,
    people_events,
    producer_records,
    repeats_differing,
    wait_caught_up,
)

# Marked `recovery` so that it can be run alone: `pytest -m recovery` (decision 0018).
pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.recovery]

HASHER = PiiHasher(PII_KEY.encode(), "US")


async def _produce(bootstrap: str, records: list[Record]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def _outputs(bootstrap: str, starts: dict[TopicPartition, int], run: str) -> list[Any]:
    consumed = asyncio.run(read_from(bootstrap, starts))
    return [c for c in consumed if f'"{run}-'.encode() in c.value]


@pytest.mark.parametrize(
    "first_commit_interval",
    [
        pytest.param("1.0", id="committing"),
        # Killed before its first commit: the survivor takes over partitions nobody ever
        # committed, which Faust's post-recovery seek does not cover (decision 0018).
        pytest.param("600", id="never-committed"),
    ],
)
def test_a_sigkilled_worker_hands_over_without_loss_or_double_counting(
    kafka_bootstrap: str, tmp_path: Path, first_commit_interval: str
) -> None:
    run = f"{uuid.uuid4().int % 10**6}"
    events = people_events(int(run))
    records = producer_records(Emitter(HASHER), events)
    event_ids = {event["event_id"] for event in events}
    group = f"omnijourney-kill-{run}"
    asyncio.run(commit_ends(kafka_bootstrap, group, [*raw_topic_names(), VALID_TOPIC]))
    starts = asyncio.run(end_offsets(kafka_bootstrap, [*PUBLIC_TOPICS, VALID_TOPIC]))
    internal = [f"{group}.identifiers", f"{group}.customers"]
    settings = {
        "OMNIJOURNEY_WORKER__COMMIT_INTERVAL_S": "1.0",
        "OMNIJOURNEY_WORKER__LOG_LEVEL": "info",  # the logs say where a takeover stalls
        **PATIENCE,
    }
    first_settings = {**settings, "OMNIJOURNEY_WORKER__COMMIT_INTERVAL_S": first_commit_interval}
    first = Worker(kafka_bootstrap, tmp_path / "first", group_id=group, **first_settings)
    second = Worker(kafka_bootstrap, tmp_path / "second", group_id=group, **settings)
    try:
        first.wait_healthy()
        second.wait_healthy()
        asyncio.run(_produce(kafka_bootstrap, records))
        # Kill the first worker once some, not all, of the stream has come out.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen = {
                orjson.loads(c.value)["event_id"]
                for c in _outputs(kafka_bootstrap, starts, run)
                if c.topic == "journeys.touchpoints"
            }
            if len(seen) >= len(event_ids) // 4:
                break
            time.sleep(0.2)
        assert len(seen) < len(event_ids), "the stream ended before the kill: make it longer"
        first.kill()
        topics = [*raw_topic_names(), VALID_TOPIC, *internal]
        wait_caught_up(kafka_bootstrap, group, topics, timeout=240)
    finally:
        if first.process.poll() is None:
            first.stop()
        second.stop()

    consumed = _outputs(kafka_bootstrap, starts, run)
    public = [c for c in consumed if c.topic in PUBLIC_TOPICS]
    valid = [decode_touchpoint(c.value) for c in consumed if c.topic == VALID_TOPIC]
    live = [orjson.loads(c.value) for c in public]

    # Every repeat is recognizable: the same key and version carry the same bytes.
    assert repeats_differing([(c.key, c.topic, c.value) for c in public]) == []

    # The same final journeys as the undisturbed core over the same validated touchpoints.
    baseline = core_final_view(valid)
    final = final_view(live)
    assert {k for k in final if k[0] == "touch"} == {("touch", e) for e in event_ids}
    assert differences(final, baseline) == []

    # No touchpoint counted twice: a journey's count is the number of its placed touches.
    assert miscounted_journeys(final) == {}
