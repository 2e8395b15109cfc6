"""A broker outage under a running worker: retried, never a dead letter, nothing lost.

Runs its own broker (own data dir, free ports), never the shared one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from omnijourney.local import kafka
from omnijourney.settings import Settings
from schemas.topics import DEADLETTER_TOPIC, VALID_TOPIC
from tests.pipeline_support import Worker, free_port, fresh, read_from

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def own_broker(kafka_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Settings of a second local broker, started here and stopped afterwards."""
    fields = {"bootstrap_servers": "", "port": free_port(), "controller_port": free_port()}
    settings = kafka_settings.model_copy(
        update={
            "data_dir": tmp_path / "broker",
            "kafka": kafka_settings.kafka.model_copy(update={**fields, "heap": "256m"}),
        }
    )
    kafka.start(settings)
    yield settings
    kafka.stop(settings)


async def _produce(bootstrap: str, count: int) -> list[str]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        events = [fresh("web", "page_view") for _ in range(count)]
        for event in events:
            await producer.send("touchpoints.web", orjson.dumps(event))
        await producer.flush()
        return [event["event_id"] for event in events]
    finally:
        await producer.stop()


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def test_worker_rides_out_a_broker_outage(own_broker: Settings, tmp_path: Path) -> None:
    bootstrap = own_broker.kafka.bootstrap
    worker = Worker(bootstrap, tmp_path / "worker", from_end=False)  # a fresh broker
    try:
        worker.wait_healthy()
        before = asyncio.run(_produce(bootstrap, 20))
        kafka.stop(own_broker)  # right away: some of them may still be in flight
        _wait(lambda: worker.health() == 503, 30, "health stays 200 with the broker down")
        assert worker.process.poll() is None
        kafka.start(own_broker)
        _wait(worker.healthy, 120, "worker did not recover after the broker came back")
        after = asyncio.run(_produce(bootstrap, 20))

        def outputs() -> tuple[list[str], int]:
            start = {
                TopicPartition(t, p): 0 for t in (VALID_TOPIC, DEADLETTER_TOPIC) for p in range(3)
            }
            records = asyncio.run(read_from(bootstrap, start))
            valid = [orjson.loads(r.value)["event_id"] for r in records if r.topic == VALID_TOPIC]
            return valid, sum(r.topic == DEADLETTER_TOPIC for r in records)

        _wait(lambda: set(before + after) <= set(outputs()[0]), 90, "events were lost")
        valid, dead_letters = outputs()
        assert dead_letters == 0  # an outage is never a dead letter
        assert set(valid) == set(before + after)  # at least once each, nothing else
    finally:
        worker.stop()
