"""The collector in-process against the real Kafka broker: what lands, what does not."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from omnijourney.collector.server import build, create_app
from omnijourney.settings import Settings
from schemas.examples import examples
from streams.topics import raw_topic_names
from tests.pipeline_support import (
    CLEAR_EMAIL,
    POS_SECRET,
    WEB_SECRET,
    collector_settings,
    end_offsets,
    fresh,
    read_from,
)

pytestmark = pytest.mark.kafka

WEB_AUTH = {"Authorization": f"Bearer {WEB_SECRET}"}
POS_AUTH = {"Authorization": f"Bearer {POS_SECRET}"}


@asynccontextmanager
async def collector_client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """A collector on a loopback port, connected to Kafka."""
    collector, _ = build(settings)
    async with TestClient(TestServer(create_app(collector))) as client:
        assert await collector.delivery.wait_connected(60), collector.delivery.last_error
        yield client


@pytest.fixture(scope="module")
def settings(kafka_settings: Settings, kafka_bootstrap: str) -> Settings:
    return collector_settings(kafka_settings, kafka_bootstrap)


def _web_events() -> list[dict[str, Any]]:
    return [fresh("web", event["type"]) for event in examples() if event["channel"] == "web"]


def test_web_batch_lands_on_the_web_topic_hashed_and_keyed(settings: Settings) -> None:
    bootstrap = settings.kafka.bootstrap
    events = _web_events()

    async def scenario() -> None:
        async with collector_client(settings) as client:
            start = await end_offsets(bootstrap, ["touchpoints.web"])
            response = await client.post(
                "/v1/touchpoints",
                data=orjson.dumps({"batch": events, "sent_at": "2024-05-01T10:00:05+02:00"}),
                headers=WEB_AUTH,
            )
            assert response.status == 202, await response.text()
            body = await response.json()
            assert body["accepted"] == len(events)
            records = await read_from(bootstrap, start)
        ours = {e["event_id"] for e in events}
        mine = [r for r in records if orjson.loads(r.value)["event_id"] in ours]
        assert Counter(orjson.loads(r.value)["event_id"] for r in mine) == Counter(ours)
        for record in mine:
            assert CLEAR_EMAIL not in record.value and CLEAR_EMAIL not in (record.key or b"")
            assert b"@" not in record.value  # no address of any kind, not even scrubbed ones
            assert record.timestamp_type == 1  # LogAppendTime: the broker stamps received_at
            value = orjson.loads(record.value)
            assert value["channel"] == "web"
            assert "received_at" not in value  # the producer input form
        login = next(orjson.loads(r.value) for r in mine if b'"login"' in r.value)
        kinds = {ident["kind"] for ident in login["identities"]}
        assert "email_hash" in kinds and "email" not in kinds
        keys = {r.key for r in mine}
        assert b"customer_id:CUST-000123" in keys

    asyncio.run(scenario())


def test_pos_key_writing_a_web_event_gets_403_and_nothing_is_produced(
    settings: Settings,
) -> None:
    bootstrap = settings.kafka.bootstrap
    topics = raw_topic_names()

    async def scenario() -> None:
        async with collector_client(settings) as client:
            before = await end_offsets(bootstrap, topics)
            response = await client.post(
                "/v1/touchpoints",
                data=orjson.dumps([fresh("pos", "purchase"), fresh("web", "page_view")]),
                headers=POS_AUTH,
            )
            assert response.status == 403
            body = await response.json()
            assert body["reason"] == "forbidden_channel"
            assert [(e["index"], e["loc"]) for e in body["errors"]] == [(1, "channel")]
            assert "'web'" in body["errors"][0]["msg"]
            # the same key may write its own channel
            ok = await client.post(
                "/v1/touchpoints", data=orjson.dumps(fresh("pos", "purchase")), headers=POS_AUTH
            )
            assert ok.status == 202
            after = await end_offsets(bootstrap, topics)
        changed = {tp.topic for tp in before if after[tp] != before[tp]}
        assert changed == {"touchpoints.pos"}  # only the allowed request produced

    asyncio.run(scenario())


def test_refused_requests_produce_nothing(settings: Settings) -> None:
    bootstrap = settings.kafka.bootstrap
    topics = raw_topic_names()
    limit = settings.collector.max_body_bytes

    async def scenario() -> None:
        async with collector_client(settings) as client:
            before = await end_offsets(bootstrap, topics)
            event = orjson.dumps(fresh("web", "page_view"))
            missing = await client.post("/v1/touchpoints", data=event)
            assert missing.status == 401
            assert missing.headers["WWW-Authenticate"].startswith("Bearer")
            unknown = await client.post(
                "/v1/touchpoints", data=event, headers={"Authorization": "Bearer not-a-key-at-all"}
            )
            assert unknown.status == 401
            assert (await unknown.json())["reason"] == "unauthorized"
            huge = await client.post(
                "/v1/touchpoints", data=b"[" + b" " * limit + b"]", headers=WEB_AUTH
            )
            assert huge.status == 413

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted on reading
                yield b"["
                for _ in range(limit // 65536 + 1):
                    yield b" " * 65536
                yield b"]"

            chunked = await client.post("/v1/touchpoints", data=chunks(), headers=WEB_AUTH)
            assert chunked.status == 413
            assert (await chunked.json())["reason"] == "too_large"
            bad = fresh("web", "page_view")
            bad["occurred_at"] = "2024-05-01T10:00:00"  # naive
            invalid = await client.post(
                "/v1/touchpoints",
                data=orjson.dumps([fresh("web", "search"), bad]),
                headers=WEB_AUTH,
            )
            assert invalid.status == 422
            errors = (await invalid.json())["errors"]
            assert {(e["index"], e["loc"], e["reason"]) for e in errors} == {
                (1, "occurred_at", "naive_timestamp")
            }
            not_json = await client.post("/v1/touchpoints", data=b"{oops", headers=WEB_AUTH)
            assert not_json.status == 400
            after = await end_offsets(bootstrap, topics)
        assert after == before

    asyncio.run(scenario())


def test_health_openapi_and_docs(settings: Settings) -> None:
    async def scenario() -> None:
        async with collector_client(settings) as client:
            health = await client.get("/health")
            assert health.status == 200
            assert (await health.json())["kafka"] == "connected"
            document = await client.get("/openapi.json")
            assert document.status == 200
            assert "/v1/touchpoints" in (await document.json())["paths"]
            docs = await client.get("/docs")
            assert docs.status == 200 and docs.content_type == "text/html"
            wrong_method = await client.get("/v1/touchpoints")
            assert wrong_method.status == 405

    asyncio.run(scenario())
