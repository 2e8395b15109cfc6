"""A Kafka outage during a request: 503 with Retry-After, then the same request succeeds once.

Runs its own broker (own data dir, free ports), never the shared one.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import TopicPartition

from omnijourney.collector.server import build, create_app
from omnijourney.local import kafka
from omnijourney.settings import Settings
from tests.pipeline_support import WEB_SECRET, collector_settings, free_port, fresh, read_from

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

AUTH = {"Authorization": f"Bearer {WEB_SECRET}"}


@pytest.fixture
def own_broker(kafka_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Settings of a second local broker, started here and stopped afterwards."""
    fields = {
        "bootstrap_servers": "",
        "port": free_port(),
        "controller_port": free_port(),
        "heap": "256m",
    }
    settings = kafka_settings.model_copy(
        update={
            "data_dir": tmp_path / "outage",
            "kafka": kafka_settings.kafka.model_copy(update=fields),
        }
    )
    kafka.start(settings)
    yield settings
    kafka.stop(settings)


def test_outage_gives_503_and_the_retry_commits_each_event_once(own_broker: Settings) -> None:
    bootstrap = own_broker.kafka.bootstrap
    settings = collector_settings(own_broker, bootstrap, kafka_timeout_s=3.0, retry_after_s=2)
    warmup = [fresh("web", "page_view") for _ in range(3)]
    request = orjson.dumps({"batch": [fresh("web", "page_view") for _ in range(50)]})

    async def scenario() -> None:
        collector, _ = build(settings)
        async with TestClient(TestServer(create_app(collector))) as client:
            assert await collector.delivery.wait_connected(60), collector.delivery.last_error
            first = await client.post("/v1/touchpoints", data=orjson.dumps(warmup), headers=AUTH)
            assert first.status == 202

            await asyncio.to_thread(kafka.stop, own_broker)
            down = await client.post("/v1/touchpoints", data=request, headers=AUTH)
            assert down.status == 503
            assert down.headers["Retry-After"] == "2"
            assert (await down.json())["reason"] in {"kafka_unavailable", "overloaded"}
            health = await client.get("/health")
            assert health.status == 503

            await asyncio.to_thread(kafka.start, own_broker)
            statuses = []
            for _ in range(60):  # the sender's retry loop, as a client would run it
                retry = await client.post("/v1/touchpoints", data=request, headers=AUTH)
                statuses.append(retry.status)
                if retry.status != 503:
                    break
                await asyncio.sleep(float(retry.headers["Retry-After"]))
            assert statuses[-1] == 202, statuses
            assert (await client.get("/health")).status == 200

        start = {TopicPartition("touchpoints.web", p): 0 for p in range(3)}
        committed = Counter(
            orjson.loads(r.value)["event_id"] for r in await read_from(bootstrap, start)
        )
        expected = [e["event_id"] for e in warmup] + [
            e["event_id"] for e in orjson.loads(request)["batch"]
        ]
        assert committed == Counter(expected)  # every event exactly once, nothing else

    asyncio.run(scenario())
