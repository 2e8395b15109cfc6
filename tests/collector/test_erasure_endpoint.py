"""POST /v1/privacy/erasure: the admin key, hashing at the edge, Kafka, and refusals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr, ValidationError

from omnijourney.collector.openapi import ERASURE_PATH, openapi_document
from omnijourney.collector.server import build, create_app
from omnijourney.settings import CollectorSettings, Settings, WriteKey
from schemas.pii import PiiHasher
from schemas.privacy import decode_request
from schemas.topics import PRIVACY_REQUESTS_TOPIC
from tests.pipeline_support import (
    PII_KEY,
    WEB_SECRET,
    collector_settings,
    end_offsets,
    free_port,
    read_from,
)

ADMIN_KEY = "admin-key-for-tests-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
# Unique per run, and never the example events' identifiers: a worker that shares the broker
# processes these requests and suppresses what they name (the example events would vanish).
RUN = uuid.uuid4().hex[:10]
EMAIL = f"erase.me.{RUN}@example.com"
CARD = f"LOY-ERASE-{RUN}"
BODY = {
    "identifiers": [
        {"kind": "email", "value": EMAIL},
        {"kind": "phone", "value": "+1 202-555-0188"},
        {"kind": "loyalty_id", "value": CARD},
    ],
    "suppress_future": True,
}


@asynccontextmanager
async def collector_client(
    settings: Settings, *, connect: bool = True
) -> AsyncIterator[TestClient[Any, Any]]:
    """A collector on a loopback port (connected to Kafka unless told not to wait)."""
    collector, _ = build(settings)
    async with TestClient(TestServer(create_app(collector))) as client:
        if connect:
            assert await collector.delivery.wait_connected(60), collector.delivery.last_error
        yield client


def test_the_admin_key_is_long_and_its_own() -> None:
    web = {"web": WriteKey(secret=SecretStr(WEB_SECRET), channels=("web",))}
    with pytest.raises(ValidationError, match="at least 32"):
        CollectorSettings(admin_key=SecretStr("short-admin-key"))
    with pytest.raises(ValidationError, match="differ from every write key"):
        CollectorSettings(
            write_keys={"web": WriteKey(secret=SecretStr(ADMIN_KEY), channels=("web",))},
            admin_key=SecretStr(ADMIN_KEY),
        )
    assert CollectorSettings().admin_key.get_secret_value() == ""  # none by default
    assert CollectorSettings(write_keys=web, admin_key=SecretStr(ADMIN_KEY)).admin_key


def test_503_with_retry_after_while_kafka_is_unreachable(kafka_settings: Settings) -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens: a real connection failure
    settings = collector_settings(
        kafka_settings, nowhere, admin_key=SecretStr(ADMIN_KEY), retry_after_s=7
    )

    async def scenario() -> None:
        async with collector_client(settings, connect=False) as client:
            response = await client.post(ERASURE_PATH, data=orjson.dumps(BODY), headers=ADMIN)
            assert response.status == 503
            assert response.headers["Retry-After"] == "7"
            assert (await response.json())["reason"] in {"kafka_unavailable", "overloaded"}

    asyncio.run(scenario())


def test_without_an_admin_key_the_endpoint_refuses_everyone(kafka_settings: Settings) -> None:
    settings = collector_settings(kafka_settings, f"127.0.0.1:{free_port()}")

    async def scenario() -> None:
        async with collector_client(settings, connect=False) as client:
            response = await client.post(ERASURE_PATH, data=orjson.dumps(BODY), headers=ADMIN)
            assert response.status == 403
            assert (await response.json())["reason"] == "admin_disabled"

    asyncio.run(scenario())


def test_the_document_describes_the_endpoint() -> None:
    import jsonschema

    document = openapi_document(max_events=500, max_body_bytes=1 << 20)
    operation = document["paths"][ERASURE_PATH]["post"]
    assert operation["security"] == [{"adminKey": []}]
    assert set(operation["responses"]) == {"202", "400", "401", "403", "413", "422", "503"}
    assert "Retry-After" in operation["responses"]["503"]["headers"]
    body = operation["requestBody"]["content"]["application/json"]
    validator = jsonschema.Draft202012Validator(
        {**body["schema"], "components": document["components"]}
    )
    validator.validate(BODY)
    for example in body["examples"].values():
        validator.validate(example["value"])
    assert not validator.is_valid({"identifiers": []})
    assert not validator.is_valid({**BODY, "unknown": 1})


@pytest.mark.kafka
def test_an_erasure_request_lands_hashed_and_keyed_by_its_id(
    kafka_settings: Settings, kafka_bootstrap: str
) -> None:
    settings = collector_settings(kafka_settings, kafka_bootstrap, admin_key=SecretStr(ADMIN_KEY))
    hasher = PiiHasher(PII_KEY.encode(), settings.privacy.default_phone_region)

    async def scenario() -> None:
        async with collector_client(settings) as client:
            start = await end_offsets(kafka_bootstrap, [PRIVACY_REQUESTS_TOPIC])
            response = await client.post(ERASURE_PATH, data=orjson.dumps(BODY), headers=ADMIN)
            assert response.status == 202, await response.text()
            answer = await response.json()
            retry = {**BODY, "request_id": answer["request_id"]}
            again = await client.post(ERASURE_PATH, data=orjson.dumps(retry), headers=ADMIN)
            assert (await again.json())["request_id"] == answer["request_id"]
            records = await read_from(kafka_bootstrap, start)
        assert answer["identifiers"] == 3 and answer["suppress_future"] is True
        assert [r.key for r in records] == [answer["request_id"].encode()] * 2
        request = decode_request(records[0].value)
        assert request.request_id == answer["request_id"]
        assert {(i.kind, i.value) for i in request.identifiers} == {
            ("email_hash", hasher.email_hash(EMAIL)),
            ("phone_hash", hasher.phone_hash("+1 202-555-0188")),
            ("loyalty_id", CARD),
        }
        assert request.suppress_future and request.requested_by == "collector:admin-key"
        for record in records:
            assert b"@" not in record.value and b"555-0188" not in record.value

    asyncio.run(scenario())


@pytest.mark.kafka
def test_refused_erasure_requests_produce_nothing(
    kafka_settings: Settings, kafka_bootstrap: str
) -> None:
    settings = collector_settings(kafka_settings, kafka_bootstrap, admin_key=SecretStr(ADMIN_KEY))
    body = orjson.dumps(BODY)

    async def scenario() -> None:
        async with collector_client(settings) as client:
            before = await end_offsets(kafka_bootstrap, [PRIVACY_REQUESTS_TOPIC])
            missing = await client.post(ERASURE_PATH, data=body)
            assert missing.status == 401
            assert missing.headers["WWW-Authenticate"].startswith("Bearer")
            write_key = await client.post(
                ERASURE_PATH, data=body, headers={"Authorization": f"Bearer {WEB_SECRET}"}
            )
            assert write_key.status == 403  # a write key may send touchpoints, not erasures
            wrong = await client.post(
                ERASURE_PATH, data=body, headers={"Authorization": "Bearer not-the-admin-key"}
            )
            assert wrong.status == 403
            not_json = await client.post(ERASURE_PATH, data=b"{", headers=ADMIN)
            assert not_json.status == 400
            bad = {"identifiers": [{"kind": "email", "value": "no-at-sign"}], "x": True}
            invalid = await client.post(ERASURE_PATH, data=orjson.dumps(bad), headers=ADMIN)
            assert invalid.status == 422
            errors = {(e["loc"], e["reason"]) for e in (await invalid.json())["errors"]}
            assert errors == {("identifiers.0.value", "invalid_pii"), ("x", "unknown_field")}
            assert b"no-at-sign" not in await invalid.read()
            huge = await client.post(ERASURE_PATH, data=b" " * (70 * 1024), headers=ADMIN)
            assert huge.status == 413
            after = await end_offsets(kafka_bootstrap, [PRIVACY_REQUESTS_TOPIC])
        assert after == before

    asyncio.run(scenario())
